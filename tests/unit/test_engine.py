"""The one engine (``kvscope.prune.engine``) without a model: the grid (names, order, duplicates refused),
settings given to the strategies that declare them, and one ratio check behind prune, bench and
``ks.compress``, in the library and on the command line."""

from __future__ import annotations

import pytest

import kvscope as ks
from kvscope.errors import UsageError
from kvscope.prune import sweep_pruning
from kvscope.prune.engine import BENCH, SWEEP, build_grid, check_ratio, configure, parse_pairs
from kvscope.prune.strategies import STRATEGIES, make_strategy
from tests.helpers import assert_one_line_error, run_cli

BAD_RATIOS = (0, 1, 1.5, "x", True, -0.5)


def test_the_grid_is_baseline_then_strategy_by_ratio_then_kivi():
    grid = build_grid(["knorm", "snapkv"], [0.25, 0.5], ["K4V4", "K2V2R0"])
    assert [c.name for c in grid.configs] == [
        "baseline",
        "knorm@0.25",
        "knorm@0.5",
        "snapkv@0.25",
        "snapkv@0.5",
        "kivi@K4V4G32R128",
        "kivi@K2V2G32R0",
    ]
    assert [c.method for c in grid.configs] == ["baseline", "knorm", "knorm", "snapkv", "snapkv", "kivi", "kivi"]
    assert [c.ratio for c in grid.configs[1:5]] == [0.25, 0.5, 0.25, 0.5] and grid.configs[5].ratio is None
    assert grid.configs[3].label == "snapkv ratio=0.25" and grid.configs[5].label == "kivi@K4V4G32R128"
    assert grid.applied == {"knorm": {}, "snapkv": {}}


def test_the_defaults_are_the_commands_own_and_cover_every_strategy():
    assert SWEEP.ratios == (0.25, 0.5, 0.75, 0.9) and SWEEP.quantize == ("K8V8", "K4V4", "K2V2")
    assert BENCH.ratios == (0.5,) and BENCH.quantize == ("K4V4", "K2V2")
    names = [c.name for c in build_grid().configs]
    assert names == ["baseline", *(f"{s}@0.5" for s in STRATEGIES), "kivi@K4V4G32R128", "kivi@K2V2G32R128"]


@pytest.mark.parametrize(
    "args, words",
    [
        ((["knorm", "snapkv", "knorm"], [0.5], []), "strategies lists knorm twice"),
        ((["knorm"], [0.5, 0.50], []), "ratios lists 0.5 twice"),
        ((["knorm"], [0.5], ["K4V4", "K4V4G32"]), "quantize lists K4V4G32R128 twice"),
        (([make_strategy("snapkv"), make_strategy("snapkv", window=64)], [0.5], []), "strategies lists snapkv"),
    ],
)
def test_the_grid_refuses_a_value_given_twice(args, words):
    with pytest.raises(UsageError, match=words):
        build_grid(*args)


def test_settings_go_to_every_strategy_that_declares_them():
    grid = build_grid(["snapkv", "knorm", "pyramidkv"], [0.5], [], {"window": "64", "rounding": "floor"})
    assert grid.applied == {
        "snapkv": {"window": 64, "rounding": "floor"},  # text from a command line converted to the setting's type
        "knorm": {"rounding": "floor"},
        "pyramidkv": {"window": 64, "rounding": "floor"},
    }
    snap, knorm, pyramid = (c.strategy for c in grid.configs[1:])
    assert (snap.window, snap.rounding, pyramid.window, knorm.rounding) == (64, "floor", 64, "floor")
    made = build_grid([make_strategy("snapkv", kernel=3)], [0.5], [], {"window": 8}).configs[1].strategy
    assert (made.window, made.kernel) == (8, 3)  # a made strategy keeps its own settings and takes the run's


def test_a_setting_no_chosen_strategy_declares_is_refused():
    with pytest.raises(UsageError, match=r"settings: window is declared by none of the strategies chosen \(knorm\)"):
        build_grid(["knorm"], [0.5], [], {"window": 64})
    with pytest.raises(UsageError, match="window must be int"):
        build_grid(["snapkv"], [0.5], [], {"window": "wide"})
    assert build_grid(["knorm"], [0.5], [], {"window": None}).applied == {"knorm": {}}  # a flag not given


def test_parse_pairs_and_shortcuts():
    assert parse_pairs(["window=64", "skip-layers = 2"], {"rounding": "floor", "window": None}) == {
        "window": "64",
        "skip_layers": "2",
        "rounding": "floor",
    }
    with pytest.raises(UsageError, match="settings takes KEY=VALUE"):
        parse_pairs(["window"])
    with pytest.raises(UsageError, match="window is given twice"):
        parse_pairs(["window=64"], {"window": "32"})


@pytest.mark.parametrize("ratio", BAD_RATIOS)
def test_one_ratio_check_behind_prune_bench_and_compress(ratio):
    """The same error, from the same function, whichever command asks (ks.compress also takes 0)."""
    with pytest.raises(UsageError) as engine:
        check_ratio(ratio)
    assert engine.value.param == "ratio" and str(engine.value).startswith("ratio must be strictly between 0 and 1")
    calls = [
        lambda: build_grid(["knorm"], [ratio], []),  # bench
        lambda: sweep_pruning(None, None, ratios=(ratio,)),  # prune --sweep: refused before the model is read
        lambda: configure("knorm", ratio),  # one configuration (ks.compare_pruning's check)
    ]
    if ratio != 0:  # ks.compress: the same error, which says that it also takes 0
        also = str(engine.value).replace("0 and 1", "0 and 1 (or 0: keep everything)")
        calls.append((lambda: ks.compress(None, "knorm", ratio=ratio), also))
    for call in calls:
        call, message = call if isinstance(call, tuple) else (call, str(engine.value))
        with pytest.raises(UsageError) as err:
            call()
        assert type(err.value) is UsageError and err.value.param == "ratio" and str(err.value) == message


def test_compress_takes_ratio_0_to_keep_everything():
    assert check_ratio(0, zero=True) == 0.0 and configure("knorm", 0, zero=True).ratio == 0.0
    with pytest.raises(UsageError, match=r"\(or 0: keep everything\)"):
        ks.compress(None, "knorm", ratio=1.0)


@pytest.mark.parametrize(
    "argv",
    [["prune", "-m", "tiny", "--strategy", "knorm", "--ratio", "1.5"], ["bench", "-m", "tiny", "--ratios", "1.5"]],
)
def test_prune_and_bench_print_the_same_ratio_error(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(err, code, 2)
    flag = "--ratio" if argv[0] == "prune" else "ratio"  # flag_message spells the parameter as prune's flag
    assert f"{flag} must be strictly between 0 and 1, the fraction of prompt tokens evicted; got 1.5" in err


def test_bench_refuses_an_undeclared_setting_before_loading_a_model(capsys, tmp_path, monkeypatch):
    import kvscope.cli.bench as cli_bench

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli_bench, "load", no_load)
    monkeypatch.chdir(tmp_path)
    for extra, words in (
        (["--strategies", "knorm", "--setting", "window=64"], "--setting: window is declared by none"),
        (["--strategies", "knorm", "--snapkv-window", "64"], "--setting: window is declared by none"),
        (["--setting", "rounding=ceil", "--rounding", "floor"], "rounding is given twice"),
        (["--setting", "window"], "--setting takes KEY=VALUE"),
    ):
        code, _, err = run_cli(["bench", "-m", "tiny", "--out", str(tmp_path / "o"), *extra], capsys)
        assert_one_line_error(err, code, 2)
        assert words in err and not (tmp_path / "o").exists()


def test_one_configuration_for_ks_compress():
    c = configure("snapkv", 0.5, quantize="K4V4", settings={"window": 8})
    assert (c.method, c.ratio, c.budget, c.strategy.window, c.quant.label) == ("snapkv", 0.5, None, 8, "K4V4G32R128")
    assert c.name == c.label == "snapkv(window=8) ratio=0.5 kivi@K4V4G32R128"
    assert configure("h2o", budget=64).label == "h2o budget=64" and configure(quantize="K2V2").method == "kivi"
    for kw, words in (
        (dict(strategy="h2o"), "give ratio"),
        (dict(ratio=0.5), "need a strategy"),
        (dict(strategy="h2o", budget=0), "budget must be a positive integer"),
        (dict(strategy=make_strategy("h2o"), ratio=0.5, settings={"rounding": "floor"}), "go into the strategy"),
        (dict(), "nothing to do"),
    ):
        with pytest.raises(UsageError, match=words):
            configure(**kw)
