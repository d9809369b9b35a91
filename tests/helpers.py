"""Test helpers shared across tiers: the CLI runner, synthetic snapshot factories and shared checks."""

from __future__ import annotations

import os

import torch

import kvscope.fileio
from kvscope.models import ModelInfo
from kvscope.snapshot import KVSnapshot


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``kvscope`` in-process; return (exit code, stdout, stderr)."""
    from kvscope.cli import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:  # main exits only on errors or --help/--version
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err: str, code: int, expected_code: int) -> None:
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kvscope: error:"), err
    assert "Traceback" not in err


def make_info(layers: int, kv_heads: int, head_dim: int, q_heads: int | None = None) -> ModelInfo:
    q = q_heads or kv_heads * 2
    return ModelInfo(
        name="synthetic",
        architecture="LlamaForCausalLM",
        layers=layers,
        q_heads=q,
        kv_heads=kv_heads,
        head_dim=head_dim,
        hidden_size=q * head_dim,
        vocab_size=256,
        rope_theta=10000.0,
        max_positions=8192,
        dtype="float32",
        parameters=0,
        kv_bytes_per_token=2 * layers * kv_heads * head_dim * 4,
    )


def causal_attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``[q_head, P, P]`` causal softmax(q k^T / sqrt(d)); q_head h reads kv_head h // group."""
    group = q.shape[0] // k.shape[0]
    kk = k.repeat_interleave(group, dim=0)
    scores = q @ kk.transpose(-1, -2) / q.shape[-1] ** 0.5
    mask = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def make_snapshot(
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    tokens: list[str] | None = None,
    attention: bool = True,
    queries: bool = True,
    q_heads: int | None = None,
    seed: int = 0,
) -> KVSnapshot:
    """A snapshot from given K/V ``[kv_head, P, head_dim]``; attention computed exactly from random
    queries (when asked), so attention_received is consistent with the queries."""
    kv_heads, n, d = keys[0].shape
    info = make_info(len(keys), kv_heads, d, q_heads)
    tokens = tokens or [f"t{i}" for i in range(n)]
    gen = torch.Generator().manual_seed(seed)
    qs = [torch.randn(info.q_heads, n, d, generator=gen) for _ in keys]
    received = counts = None
    if attention:
        group = info.group_size
        rec = [causal_attention(q, k).sum(1).reshape(kv_heads, group, n).sum(1) for q, k in zip(qs, keys)]
        received = torch.stack(rec)
        counts = (group * (n - torch.arange(n))).float().expand(len(keys), n).clone()
    return KVSnapshot(
        keys=[k.float() for k in keys],
        values=[v.float() for v in values],
        token_ids=torch.arange(n),
        tokens=tokens,
        special=torch.zeros(n, dtype=torch.bool),
        positions=torch.arange(n),
        info=info,
        text="".join(tokens),
        queries=qs if queries else None,
        attention_received=received,
        attention_counts=counts,
    )


def random_snapshot(layers: int = 3, kv_heads: int = 2, n: int = 12, d: int = 8, seed: int = 0, **kw) -> KVSnapshot:
    gen = torch.Generator().manual_seed(seed)
    keys = [torch.randn(kv_heads, n, d, generator=gen) for _ in range(layers)]
    values = [torch.randn(kv_heads, n, d, generator=gen) for _ in range(layers)]
    return make_snapshot(keys, values, seed=seed, **kw)


ODD_INFO = ModelInfo(
    name="synthetic",
    architecture="llama",
    layers=2,
    q_heads=4,
    kv_heads=2,
    head_dim=3,
    hidden_size=12,
    vocab_size=10,
    rope_theta=10000.0,
    max_positions=64,
    dtype="float32",
    parameters=1,
    kv_bytes_per_token=2 * 2 * 2 * 3 * 4,
)


def odd_snapshot(extras: bool = True) -> KVSnapshot:
    """A 2-layer, 5-token snapshot with odd values (NaN, -0.0, unicode and markup tokens) for file tests."""
    g = torch.Generator().manual_seed(0)
    keys = [torch.randn(2, 5, 3, generator=g) for _ in range(2)]
    values = [torch.randn(2, 5, 3, generator=g) for _ in range(2)]
    keys[1][0, 0, 0] = float("nan")  # odd values must survive too
    values[0][1, 2, 1] = -0.0
    snap = KVSnapshot(
        keys=keys,
        values=values,
        token_ids=torch.tensor([5, 1, 2, 3, 4]),
        tokens=["<s>", "a", " ü", "\n", "<script>"],
        special=torch.tensor([1, 0, 0, 0, 0]).bool(),
        positions=torch.arange(5),
        info=ODD_INFO,
        text="a ü\n<script>",
    )
    if extras:
        snap.pre_rope_keys = [k * 2 for k in keys]
        snap.queries = [torch.randn(4, 5, 3, generator=g) for _ in range(2)]
        snap.attention_received = torch.rand(2, 2, 5, generator=g)
        snap.attention_counts = torch.tensor([[10, 8, 6, 4, 2]] * 2)
    return snap


def png_ok(path) -> bool:
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return False
    img = mpimg.imread(path)
    return img.ndim == 3 and float(img[..., :3].std()) > 0.01


def crash_in_child(step: str, fn) -> None:
    """Run ``fn`` in a forked child that dies (os._exit, no cleanup at all) at write step ``step``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            kvscope.fileio.crash_hook = lambda s: os._exit(9) if s == step else None
            fn()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9, f"the child never reached step {step}"


def check_metrics(doc: dict, n_tokens: int) -> None:
    """The metrics.json schema: top-level keys and the numbers the report leads with."""
    assert doc["schema_version"] == 2 and isinstance(doc["kvscope_version"], str)
    for key in ("layers", "kv_heads", "q_heads", "head_dim", "name"):
        assert key in doc["model"]
    assert doc["prompt"]["tokens"] == n_tokens
    from kvscope.analyze.figure_registry import FIGURES

    assert set(doc["figures"]) == set(FIGURES)
    head = doc["headline"]
    assert head["tokens"] == n_tokens and isinstance(head["verdict"], str)
    assert set(head["median_partial_spearman_vs_attention"]) == {"magnitude", "key_norm", "value_norm"}
    assert head["verdict_control"] == "partial Spearman given position"
    an = doc["analyses"]
    L, H = doc["model"]["layers"], doc["model"]["kv_heads"]
    assert len(an["layer_stats"]["sparsity_k"]) == L
    assert len(an["pruning"]["head"]) == L and len(an["pruning"]["head"][0]) == H
    assert len(an["tokens"]["tokens"]) == n_tokens and len(an["tokens"]["sink"]) == n_tokens
    assert an["quantization"]["bits"] == [8, 4, 3, 2] and an["quantization"]["sixteen_bit"] == "float16"
    assert len(an["importance"]["layer_partial"]["key_norm"]) == L


def all_figure_files() -> list[str]:
    """Every PNG ``kvscope analyze`` writes (a figure may be written under several names)."""
    from kvscope.analyze.figure_registry import FIGURES

    return [f"{stem}.png" for spec in FIGURES.values() for stem in spec.files]


def check_result_contract(result, out, files: list[str] | None = None) -> None:
    """Every part of the result contract (``kvscope.kit.results``) on one result: a one-line repr of at most
    200 characters, a ``_repr_html_`` under 1 MB, ``to_dict`` as JSON, ``figures()`` as Matplotlib figures,
    and ``save(out)`` returning exactly the files it wrote (``files`` when given), all present, while a
    second save keeps a file another command wrote there."""
    import json

    from matplotlib.figure import Figure

    from kvscope.fileio import atomic_dir, to_jsonable

    text = repr(result)
    assert "\n" not in text and len(text) <= 200, text
    page = result._repr_html_()
    assert isinstance(page, str) and len(page.encode()) < 1_000_000
    json.dumps(to_jsonable(result.to_dict()), allow_nan=False)
    assert all(isinstance(f, Figure) for f in result.figures().values())
    written = result.save(out)
    assert all(p.is_file() for p in written) and len(set(written)) == len(written)
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != ".kvscope-out.json"}
    assert {str(p.relative_to(out)) for p in written} == on_disk
    if files is not None:
        assert [p.name for p in written] == files
    with atomic_dir(out, command="another command") as tmp:
        (tmp / "theirs.txt").write_text("kept")
    assert result.save(out) == written and (out / "theirs.txt").read_text() == "kept"
