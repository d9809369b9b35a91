"""Bad and hostile input across every command: exit code 2 (caller's mistake) with exactly one line on
stderr naming the option or file, no traceback, and nothing created on disk. Run in-process (fast);
the signal cases run one subprocess. ``{in}`` is a folder of prepared bad inputs, ``{new}`` a path
that does not exist yet, ``{out}`` an existing empty output folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run_cli


def _config(**changes):
    from kvscope.models import tiny_config

    cfg = tiny_config().to_dict()
    cfg.update(changes)
    return cfg


MODEL_FOLDERS = {  # name -> (config.json content, extra files)
    "zero_heads": (lambda: _config(num_attention_heads=0), {}),
    "negative_hidden": (lambda: _config(hidden_size=-64), {}),
    "string_layers": (lambda: _config(num_hidden_layers="2"), {}),
    "bool_layers": (lambda: _config(num_hidden_layers=True), {}),
    "float_layers": (lambda: _config(num_hidden_layers=2.0), {}),
    "huge_layers": (lambda: _config(num_hidden_layers=200_000), {}),
    "huge_heads": (lambda: _config(num_attention_heads=40_000, num_key_value_heads=40_000), {}),
    "huge_hidden": (lambda: _config(hidden_size=10_000_000), {}),
    "huge_vocab": (lambda: _config(vocab_size=10**9), {}),
    "kv_not_divisor": (lambda: _config(num_key_value_heads=3), {}),
    "nested_zero_heads": (lambda: {"model_type": "x", "text_config": _config(num_attention_heads=0)}, {}),
    "pickle_weights": (lambda: _config(), {"pytorch_model.bin": b"\x80\x04K\x01."}),
    "no_weights": (lambda: _config(), {}),
    "config_is_a_list": (lambda: [1, 2], {}),
    "bad_json": (None, {"config.json": b"{not json"}),
    "no_config": (None, {}),
    "huge_experts": (lambda: _config(num_local_experts=100_000), {}),  # issue 19
    "deep_config": (None, {"config.json": b"[" * 100_000 + b"]" * 100_000}),
    "broken_remote_code": (
        lambda: _config(auto_map={"AutoConfig": "conf.BrokenConfig", "AutoModelForCausalLM": "conf.Broken"}),
        {"conf.py": b"raise NameError('this model code is broken')\n"},
    ),
}


def make_inputs(root: Path) -> None:
    """The prepared bad inputs under ``root`` (``{in}``)."""
    from tests.helpers import odd_snapshot as make_snapshot

    root.mkdir()
    (root / "bad_utf8.txt").write_bytes(b"caf\xe9 \xff\xfe")
    (root / "empty.txt").write_text("   \n")
    (root / "prompt.txt").write_text("hello")
    with open(root / "big.txt", "wb") as f:  # sparse: 51 MB of size, no disk
        f.truncate(51 * 1024 * 1024)
    os.mkfifo(root / "fifo")
    os.symlink("/dev/null", root / "null_link")
    (root / "plain_dir").mkdir()
    (root / "plain_dir" / "keep.txt").write_text("x")
    for name, (config, files) in MODEL_FOLDERS.items():
        folder = root / name
        folder.mkdir()
        if config is not None:
            (folder / "config.json").write_text(json.dumps(config()))
        for fname, data in files.items():
            (folder / fname).write_bytes(data)
        if name not in ("pickle_weights", "no_weights", "bad_json", "no_config"):
            (folder / "model.safetensors").write_bytes(b"")
    ok = make_snapshot()
    ok.keys[1], ok.pre_rope_keys[1] = ok.keys[1].nan_to_num(), ok.pre_rope_keys[1].nan_to_num()
    ok.save(root / "ok.kvs")
    make_snapshot().save(root / "corrupt.kvs")
    meta = json.loads((root / "corrupt.kvs" / "snapshot.json").read_text())
    meta["n_layers"] = 10**12
    (root / "corrupt.kvs" / "snapshot.json").write_text(json.dumps(meta))
    (root / "gsm.jsonl").write_bytes(b'{"question": "1+1", "answer": "#### 2"}\n\xff\n')
    # issue 25
    no_attention = make_snapshot(extras=False)
    no_attention.keys[1] = no_attention.keys[1].nan_to_num()  # no NaN warning: the one line is the error
    no_attention.save(root / "no_attention.kvs")
    (root / "empty_dir").mkdir()
    _issue_19_inputs(root)


def _issue_19_inputs(root: Path) -> None:
    """Deep JSON, a scalar and a NaN ground truth, a too-long --data item; snapshots the loader used to
    accept and the analyses then crashed on; a format-1 snapshot whose
    ``nonfinite`` (not a format-1 field) lists a NaN; a manifest over the size bound."""
    from kvscope.snapshot_format import META_FILE, TENSOR_FILE
    from tests.unit.test_snapshot import make_snapshot

    deep = b"[" * 100_000 + b"]" * 100_000
    (root / "deep.jsonl").write_bytes(deep + b"\n")
    (root / "deep.json").write_bytes(deep)
    (root / "scalar_gt.json").write_text('{"delta_loglik": 5}')
    (root / "nan_gt.json").write_text('{"delta_loglik": [NaN, 1.0, 2.0]}')
    item = {"context": "word " * 20_000, "question": "Which word?", "answer": "word"}
    (root / "long.jsonl").write_text(json.dumps(item) + "\n")
    gsm = {"question": "word " * 20_000, "answer": "#### 2"}
    (root / "long_gsm.jsonl").write_text(json.dumps(gsm) + "\n")
    short, long = {"text": "a short first prompt"}, {"text": "word " * 1000}  # 5,000 tiny tokens; it takes 4,096
    (root / "long_prompts.jsonl").write_text(json.dumps(short) + "\n" + json.dumps(long) + "\n")
    make_snapshot().save(root / "nan.kvs")  # kvscope's own save of a NaN cache
    big = make_snapshot()
    big.keys, big.pre_rope_keys = [k.nan_to_num() for k in big.keys], [k.nan_to_num() for k in big.pre_rope_keys]
    big.keys[0][..., 0] = 3.0e38
    big.save(root / "huge_values.kvs")
    make_snapshot().save(root / "v1_nan.kvs")
    meta = json.loads((root / "v1_nan.kvs" / META_FILE).read_text())
    meta.update(format_version=1, sha256=meta.pop("files")[TENSOR_FILE]["sha256"])
    del meta["manifest_sha256"]
    (root / "v1_nan.kvs" / META_FILE).write_text(json.dumps(meta))
    make_snapshot().save(root / "big_manifest.kvs")
    with open(root / "big_manifest.kvs" / META_FILE, "r+b") as f:
        f.truncate(17 * 1024 * 1024)


T = ["-m", "tiny"]
U = "\udcff\udcfe"  # bytes that were not UTF-8 on the command line arrive as lone surrogates

# (argv, fragment of the one error line); every case exits 2.
CASES: list[tuple[list[str], str]] = [
    # info: model names, devices, dtypes and model configs
    (["info", "--model", "no such model!"], "'embedded', 'tiny'"),
    (["info", "--model", ""], "cannot load model ''"),
    (["info", *T, "--device", "bogus"], "unknown --device 'bogus'"),
    (["info", *T, "--device", "cuda:99"], "--device cuda:99"),
    (["info", *T, "--device", "cpu:1"], "unknown --device 'cpu:1'"),
    (["info", *T, "--device", "cuda;rm"], "unknown --device"),
    (["info", *T, "--dtype", "float8"], "unknown dtype 'float8'"),
    (["info", *T, "--device-map", "everywhere"], "unknown --device-map 'everywhere'"),
    (["capture", *T, "--prompt", "hi", "-o", "{new}.kvs", "--device-map", "x"], "unknown --device-map"),
    (["info", *T, "--bogus"], "No such option"),
    (["info", "--model", "{in}/zero_heads"], "num_attention_heads = 0 must be at least 1"),
    (["info", "--model", "{in}/negative_hidden"], "hidden_size = -64 must be at least 1"),
    (["info", "--model", "{in}/string_layers"], "num_hidden_layers is '2', not an integer"),
    (["info", "--model", "{in}/bool_layers"], "num_hidden_layers is True, not an integer"),
    (["info", "--model", "{in}/float_layers"], "num_hidden_layers is 2.0, not an integer"),
    (["info", "--model", "{in}/huge_layers"], "num_hidden_layers = 200,000 is implausible"),
    (["info", "--model", "{in}/huge_heads"], "num_attention_heads = 40,000 is implausible"),
    (["info", "--model", "{in}/huge_hidden"], "hidden_size = 10,000,000 is implausible"),
    (["info", "--model", "{in}/huge_vocab"], "vocab_size = 1,000,000,000 is implausible"),
    (["info", "--model", "{in}/kv_not_divisor"], "not a multiple of num_key_value_heads 3"),
    (["info", "--model", "{in}/nested_zero_heads"], "num_attention_heads = 0"),
    (["info", "--model", "{in}/pickle_weights"], "only pickle weights (pytorch_model.bin)"),
    (["info", "--model", "{in}/no_weights"], "no *.safetensors weights"),
    (["info", "--model", "{in}/config_is_a_list"], "not a JSON object"),
    (["info", "--model", "{in}/bad_json"], "not valid JSON"),
    (["info", "--model", "{in}/no_config"], "cannot read --model"),
    (["info", "--model", "{in}/prompt.txt"], "is not a model folder"),
    (["info", "--model", "nobody/nothing-xyz"], "hub may be unreachable"),
    (["nosuchcommand"], "No such command"),
    # capture: prompts, input files, output locations
    (["capture", *T, "--prompt", "hi"], "Missing option '-o'"),
    (["capture", *T, "--prompt", "  ", "-o", "{new}.kvs"], "prompt is empty"),
    (["capture", *T, "--prompt", U, "-o", "{new}.kvs"], "--prompt is not valid UTF-8"),
    (["capture", *T, "--prompt-file", "{in}/missing.txt", "-o", "{new}.kvs"], "--prompt-file {in}/missing.txt"),
    (["capture", *T, "--prompt-file", "{in}/bad_utf8.txt", "-o", "{new}.kvs"], "not valid UTF-8 text (byte 3)"),
    (["capture", *T, "--prompt-file", "/dev/zero", "-o", "{new}.kvs"], "not a regular file"),
    (["capture", *T, "--prompt-file", "{in}/fifo", "-o", "{new}.kvs"], "not a regular file"),
    (["capture", *T, "--prompt-file", "{in}/big.txt", "-o", "{new}.kvs"], "over the limit of 52,428,800"),
    (["capture", *T, "--prompt-file", "{in}", "-o", "{new}.kvs"], "is a directory"),
    (["capture", *T, "--prompt-file", "{in}/empty.txt", "-o", "{new}.kvs"], "prompt is empty"),
    (["capture", *T, "--prompt", "a", "--prompt-file", "{in}/prompt.txt", "-o", "{new}.kvs"], "not both"),
    (["capture", *T, "--prompt", "hi", "-o", "{new}/deeper/a.kvs"], "does not exist"),
    (["capture", *T, "--prompt", "hi", "-o", "{in}/prompt.txt"], "not a kvscope snapshot"),
    (["capture", *T, "--prompt", "hi", "-o", "{in}/plain_dir"], "not a kvscope snapshot"),
    (["capture", *T, "--prompt", "hi", "-o", ""], "not a kvscope snapshot"),
    (["capture", *T, "--prompt", "hi", "-o", "{new}.kvs", "--device", "bogus"], "unknown --device"),
    (["capture", *T, "--prompt", "hi", "-o", "{new}.kvs", "--dtype", "int8"], "unknown dtype"),
    (["capture", *T, "--prompt", "x" * 5000, "-o", "{new}.kvs"], "--truncate"),
    (["capture", "--model", "{in}/zero_heads", "--prompt", "hi", "-o", "{new}.kvs"], "num_attention_heads = 0"),
    (["capture", "--model", "{in}/pickle_weights", "--prompt", "hi", "-o", "{new}.kvs"], "pickle"),
    (["capture", *T, "--prompt", "hi", "-o", "{new}.kvs", "--attention=yes"], "does not take a value"),
    # analyze (into an existing output folder; see MORE_CASES for new folders)
    (["analyze", "--snapshot", "{in}/corrupt.kvs", "--out", "{out}"], "is corrupted: snapshot.json does not match"),
    (["analyze", "--snapshot", "{in}/missing.kvs", "--out", "{out}"], "is not a kvscope snapshot"),
    (["analyze", "--snapshot", "{in}/plain_dir", "--out", "{out}"], "is not a kvscope snapshot"),
    (["analyze", "--snapshot", "{in}/ok.kvs", "--prompt", "hi", "--out", "{out}"], "give only one of"),
    (["analyze", "--snapshot", "{in}/ok.kvs", "--layer", "9", "--out", "{out}"], "layer 9 is out of range"),
    (
        ["analyze", "--snapshot", "{in}/ok.kvs", "--ground-truth", "{in}/missing.json", "--out", "{out}"],
        "cannot read ground truth",
    ),
    (["analyze", "--format", "jpg"], "'jpg' is not one of"),
    (["analyze", "--sink-share", "0"], "--sink-share"),
    (["analyze", "--sparsity-threshold", "-1"], "--sparsity-threshold"),
    (["analyze", "--threads", "abc"], "'abc' is not a valid integer"),
    (["analyze", "--prompts", "{in}/missing.jsonl", "--out", "{out}"], "missing.jsonl"),
    (["compare", "{in}/ok.kvs"], "Missing argument"),
    (["compare", "{in}/ok.kvs", "{in}/missing.kvs", "--out", "{new}"], "is not a kvscope snapshot"),
    (["compare", "{in}/ok.kvs", "{in}/corrupt.kvs", "--out", "{new}"], "is corrupted"),
    (["analyze", *T, "--threads", "0", "--out", "{out}"], "--threads must be at least 1"),
    (["analyze", *T, "--prompt-file", "/dev/zero", "--out", "{out}"], "not a regular file"),
    (["analyze", *T, "--prompt-file", "{in}/bad_utf8.txt", "--out", "{out}"], "not valid UTF-8"),
    (["analyze", *T, "--prompt", U, "--out", "{out}"], "--prompt is not valid UTF-8"),
    (["analyze", *T, "--device", "bogus", "--out", "{out}"], "unknown --device"),
    (["analyze", "--model", "{in}/huge_layers", "--out", "{out}"], "implausible"),
    # prune (single mode writes no files)
    (["prune", *T, "--strategy", "nope"], "nope"),
    (["prune", *T, "--strategy", "knorm", "--ratio", "1.5"], "ratio"),
    (["prune", *T, "--ratio", "0.5"], "--ratio needs --strategy"),
    (["prune", *T, "--quantize", "K9Q"], "K9Q"),
    (["prune", *T, "--repeats", "0"], "--repeats must be at least 1"),
    (["prune", *T, "--sweep", "--scan", "layers"], "only one of"),
    (["prune", *T, "--sweep", "--strategy", "knorm"], "chooses its own configurations"),
    (["prune", *T, "--prune_layers", "a,b"], "comma-separated integers"),
    (["prune", *T, "--scan", "bogus"], "'bogus' is not one of"),
    (["prune", *T, "--continuation", "  "], "continuation is empty"),
    (["prune", *T, "--prompt-file", "/dev/zero"], "not a regular file"),
    (["prune", *T, "--prompt-file", "{in}/fifo"], "not a regular file"),
    (["prune", *T, "--prompt", U], "--prompt is not valid UTF-8"),
    (["prune", *T, "--device", "bogus"], "unknown --device"),
    (["prune", "--model", "{in}/negative_hidden"], "hidden_size = -64"),
    # caching
    (["caching", *T, "--new-tokens", "0"], "--new-tokens"),
    (["caching", *T, "--repeats", "100"], "--repeats"),
    (["caching", *T, "--second-prompt", " "], "--second-prompt is empty"),
    (["caching", *T, "--prompt", U], "--prompt is not valid UTF-8"),
    (["caching", *T, "--out", "{in}/prompt.txt"], "is a file"),
    (["caching", *T, "--device", "bogus", "--out", "{out}"], "unknown --device"),
    # memory (no model is loaded)
    (["memory", "--batch", "0"], "--batch must be between"),
    (["memory", "--context", "-1"], "--context must be between"),
    (["memory", "--tp", "0"], "--tp must be between"),
    (["memory", "--page", "0"], "--page must be between"),
    (["memory", "--kv-dtype", "fp3"], "--kv-dtype 'fp3' is not valid"),
    (["memory", "--weight-dtype", "q1"], "--weight-dtype 'q1' is not valid"),
    (["memory", "--mode", "bogus"], "--mode 'bogus' is not valid"),
    (["memory", "--tokens", "99999", "--context", "1024"], "--tokens must be between"),
    (["memory", "--activation-gib", "-1", "--json"], "--activation-gib"),
    (["memory", "--batch", "x"], "'x' is not a valid integer"),
    (["memory", "--export", "{new}/deeper/m.html"], "does not exist"),
    (["memory", "--export", "{in}"], "is a directory"),
    # mas
    (["mas"], "Missing option '--method'"),
    (["mas", "--method", "bogus"], "'bogus' is not one of"),
    (["mas", "--method", "baseline", "--top_p", "0"], "--top-p"),
    (["mas", "--method", "baseline", "--temperature", "-1"], "--temperature"),
    (["mas", "--method", "baseline", "--max_samples", "0"], "--samples must be positive"),
    (["mas", "--method", "baseline", "--latent_steps", "-1"], "--latent-steps must be >= 0"),
    (["mas", "--method", "baseline", "--task", "gsm8k", "--data", "{in}/missing.jsonl"], "missing.jsonl"),
    # analyze-fixes (issue 23 item 8): --prompts refuses the options only one prompt uses
    (["analyze", *T, "--prompts", "default", "--scan", "--out", "{out}"], "--scan applies to one prompt"),
    (["analyze", *T, "--prompts", "default", "--cache-norm", "log", "--out", "{out}"], "--cache-norm applies to one"),
]

# Cases that check a fix in one command's own code (argv, fragment, that command's area).
MORE_CASES: list[tuple[list[str], str, str]] = [
    (["analyze", "--snapshot", "{in}/corrupt.kvs", "--out", "{new}"], "is corrupted", "analyze"),
    (["analyze", "--snapshot", "{in}/missing.kvs"], "is not a kvscope snapshot", "analyze"),
    (["analyze", *T, "--prompt-file", "/dev/zero", "--out", "{new}"], "not a regular file", "analyze"),
    (["analyze", *T, "--device", "bogus", "--out", "{new}"], "unknown --device", "analyze"),
    (["analyze", "--snapshot", "{in}/ok.kvs", "--layer", "9", "--out", "{new}"], "layer 9 is out of range", "analyze"),
    (["caching", *T, "--device", "bogus", "--out", "{new}"], "unknown --device", "caching"),
    (["caching", *T, "--layer", "99", "--out", "{new}"], "--layer", "caching"),
    (["caching", "--model", "{in}/zero_heads", "--out", "{new}"], "num_attention_heads = 0", "caching"),
    (["memory", "--port", "99999"], "--port", "memory"),
    (["memory", "--port", "-1"], "--port", "memory"),
    (["memory", "--model", "{in}/zero_heads/config.json", "--json"], "num_attention_heads", "memory"),
    (["memory", "--model", "{in}/string_layers/config.json", "--json"], "num_hidden_layers", "memory"),
    (["mas", "--method", "baseline", *T, "--device", "bogus", "--out", "{new}"], "unknown --device", "mas"),
    (["mas", "--method", "baseline", "--task", "gsm8k", "--data", "/dev/zero"], "not a regular file", "mas"),
    (["mas", "--method", "baseline", "--task", "gsm8k", "--data", "{in}/gsm.jsonl"], "UTF-8", "mas"),
    (["mas", "--method", "baseline", "--task", "gsm8k", "--data", "{in}/fifo"], "not a regular file", "mas"),
    (["mas", "--method", "baseline", "--knn_percentage", "2", "--knn_filter"], "--knn-percentage must be in", "mas"),
    (["bench", *T, "--task", "nope"], "nope", "bench"),
    (["bench", *T, "--samples", "0"], "--samples", "bench"),
    (["bench", *T, "--device", "bogus", "--out", "{new}"], "unknown --device", "bench"),
    (["bench", "--model", "{in}/zero_heads"], "num_attention_heads = 0", "bench"),
    (["bench", *T, "--out", "{in}/prompt.txt"], "prompt.txt", "bench"),
    # issue 25
    (["view", "{in}/no_attention.kvs", "--export", "{new}.html"], "has no attention data", "view"),
    (["view", "{in}/empty_dir"], "holds no bench.json or samples.jsonl", "view"),
    (["view", "{in}/missing.kvs"], "does not exist", "view"),
    (["view", "{in}/prompt.txt"], "is not a snapshot .kvs folder", "view"),
    (["view", "{in}/corrupt.kvs", "--export", "{new}.html"], "is corrupted", "view"),
    (["view", "{in}/ok.kvs", "--strategies", "nope"], "--strategies: unknown nope", "view"),
    (["view", "{in}/ok.kvs", "--step", "0"], "--step must be between", "view"),
    (["view", "{in}/ok.kvs", "--port", "70000"], "--port must be between", "view"),
    (["view", "{in}/ok.kvs", "--export", "{new}/deeper/v.html"], "does not exist", "view"),
    (["view", "{in}/ok.kvs", "--export", "{in}"], "is a directory", "view"),
    # issue 19: --out never deletes what kvscope did not write; the last hostile inputs
    (["bench", *T, "-o", "{in}/plain_dir"], "holds files kvscope did not write", "nothing-lost"),
    (["analyze", *T, "-o", "{in}/plain_dir"], "{in}/plain_dir: the folder holds files", "nothing-lost"),
    (["compare", "{in}/ok.kvs", "{in}/ok.kvs", "-o", "{in}/plain_dir"], "did not write", "nothing-lost"),
    (["mas", "--method", "baseline", *T, "--out", "{in}/plain_dir"], "did not write", "nothing-lost"),
    (["caching", *T, "--out", "{in}/plain_dir"], "did not write", "nothing-lost"),
    (["prune", *T, "--sweep", "--out", "{in}/plain_dir"], "did not write", "nothing-lost"),
    (["compare", "{in}/ok.kvs", "{in}/ok.kvs", "-o", "{in}/ok.kvs"], "it is the input", "nothing-lost"),
    (["analyze", "--snapshot", "{in}/ok.kvs", "-o", "{in}/ok.kvs"], "it is the input", "nothing-lost"),
    (["analyze", "--snapshot", "{in}/ok.kvs", "-o", "{in}"], "it holds the input", "nothing-lost"),
    (
        ["mas", "--method", "baseline", "--task", "gsm8k", "--data", "{in}/gsm.jsonl", "--out", "{in}"],
        "holds the input",
        "nothing-lost",
    ),
    (["bench", *T, "--data", "{in}/gsm.jsonl", "-o", "{in}"], "holds the input", "nothing-lost"),
    (["mas", "--method", "baseline", "--charts", "{new}", "--out", "{new}"], "the same folder", "nothing-lost"),
    (["bench", *T, "--ratios", "0.5,0.5,0.50"], "ratios lists 0.5 twice", "nothing-lost"),
    (["bench", *T, "--strategies", "snapkv,knorm,snapkv"], "strategies lists snapkv twice", "nothing-lost"),
    (["bench", *T, "--quantize", "K4V2,K4V2"], "quantize lists", "nothing-lost"),
    (["memory", "--export", "/dev/null"], "not a regular file", "nothing-lost"),
    (["memory", "--export", "{in}/fifo"], "not a regular file", "nothing-lost"),
    (["memory", "--export", "{in}/null_link"], "not a regular file", "nothing-lost"),
    (["memory", "--list", "--export", "{new}.html"], "does not go with --export", "nothing-lost"),
    (["compare", "{in}/nan.kvs", "{in}/ok.kvs", "-o", "{new}"], "nan.kvs holds NaN", "nothing-lost"),
    (["analyze", "--snapshot", "{in}/nan.kvs", "-o", "{new}"], "snapshot {in}/nan.kvs holds NaN", "nothing-lost"),
    (["analyze", "--snapshot", "{in}/huge_values.kvs", "-o", "{new}"], "magnitude 3e+38", "nothing-lost"),
    (["compare", "{in}/v1_nan.kvs", "{in}/ok.kvs", "-o", "{new}"], "does not record", "nothing-lost"),
    (["analyze", "--snapshot", "{in}/big_manifest.kvs", "-o", "{new}"], "over the limit of 16,777,216", "nothing-lost"),
    (["bench", *T, "--samples", "1000000000"], "--samples must be at most 100,000", "nothing-lost"),
    (["mas", "--method", "baseline", "--max_samples", "1000000000"], "at most 100,000", "nothing-lost"),
    (["bench", *T, "--data", "{in}/long.jsonl", "-o", "{new}"], "--data item 1 has", "nothing-lost"),
    (["bench", *T, "--data", "{in}/fifo", "-o", "{new}"], "not a regular file", "nothing-lost"),
    (
        ["mas", "--method", "baseline", *T, "--task", "gsm8k", "--data", "{in}/long_gsm.jsonl", "--out", "{new}"],
        "problem 1 has",
        "nothing-lost",
    ),
    (["analyze", *T, "--prompts", "{in}/big.txt", "-o", "{new}"], "over the limit of 52,428,800", "nothing-lost"),
    (["analyze", *T, "--prompts", "{in}/deep.jsonl", "-o", "{new}"], "line 1 is not JSON", "nothing-lost"),
    (["info", "--model", "{in}/deep_config"], "nested too deep", "nothing-lost"),
    (["info", "--model", "{in}/huge_experts"], "num_local_experts = 100,000 is implausible", "nothing-lost"),
    (["memory", "--model", "{in}/deep.json", "--json"], "cannot parse config", "nothing-lost"),
    (
        ["analyze", "--snapshot", "{in}/ok.kvs", "--ground-truth", "{in}/deep.json", "-o", "{new}"],
        "cannot read ground truth",
        "nothing-lost",
    ),
    (
        ["analyze", "--snapshot", "{in}/ok.kvs", "--ground-truth", "{in}/scalar_gt.json", "-o", "{new}"],
        "delta_loglik must be a list of numbers",
        "nothing-lost",
    ),
    (
        ["analyze", "--snapshot", "{in}/ok.kvs", "--ground-truth", "{in}/nan_gt.json", "-o", "{new}"],
        "delta_loglik holds NaN",
        "nothing-lost",
    ),
    (["info", "--model", "{in}/broken_remote_code", "--trust-remote-code"], "model's own code", "nothing-lost"),
    (
        ["analyze", *T, "--prompts", "{in}/long_prompts.jsonl", "-o", "{new}"],
        "prompt 2 of 2 has 5,000 tokens but the model takes at most 4,096: shorten it or pass --truncate",
        "nothing-lost",
    ),
    # engine
    (
        ["bench", *T, "--strategies", "knorm,h2o", "--setting", "window=64", "-o", "{new}"],
        "--setting: window is declared by none of the strategies chosen (knorm, h2o)",
        "nothing-lost",
    ),
    # kvpress: a press named without the extra installed (where it is installed: a press kvscope cannot run)
    (
        ["bench", *T, "--strategies", "kvpress:KnormPress" if find_spec("kvpress") is None else "kvpress:AdaKVPress"],
        "pip install 'kvscope[kvpress]'" if find_spec("kvpress") is None else "kvpress:AdaKVPress does not rank",
        "kvpress",
    ),
]


CASES += [(a, f) for a, f, _ in MORE_CASES]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    make_inputs(root / "in")
    return root


def run_case(prepared: Path, tmp_path: Path, monkeypatch, capsys, argv: list[str], fragment: str) -> None:
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    out.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("KVSCOPE_CACHE", str(tmp_path / "cache"))
    subs = {"{in}": str(prepared / "in"), "{new}": str(tmp_path / "new"), "{out}": str(out)}
    for key, value in subs.items():
        argv = [a.replace(key, value) for a in argv]
        fragment = fragment.replace(key, value)
    before, inputs_before = _tree(tmp_path), _tree(prepared)
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(err, code, 2)
    assert fragment in err, err
    assert _tree(tmp_path) == before, "a file or folder was left behind"
    assert _tree(prepared) == inputs_before


def _id(argv: list[str]) -> str:
    return " ".join(a if len(a) < 30 else a[:27] + "..." for a in argv).encode("ascii", "replace").decode()


@pytest.mark.parametrize("argv,fragment", CASES, ids=[_id(c[0]) for c in CASES])
def test_bad_input_exits_2_with_one_line(prepared, tmp_path, monkeypatch, capsys, argv, fragment):
    run_case(prepared, tmp_path, monkeypatch, capsys, argv, fragment)


def test_the_table_covers_every_command():
    from kvscope.cli import COMMANDS

    covered = {argv[0] for argv, _ in CASES}
    assert set(COMMANDS) <= covered and len(CASES) >= 80


# ----------------------------------------------------------------------------- signals


def _hooked(tmp_path: Path, signame: str, step: str) -> int:
    """Run a capture in-process whose snapshot write receives ``signame`` at ``step``; return the exit code."""
    import kvscope.fileio as fileio

    sig = getattr(signal, signame)

    def hook(s):
        if s == step:
            os.kill(os.getpid(), sig)

    fileio.crash_hook = hook
    try:
        from kvscope.cli import main

        main(["capture", "-m", "tiny", "--prompt", "hello", "-o", str(tmp_path / "new" / "s.kvs")])
    except SystemExit as exc:
        return int(exc.code)
    finally:
        fileio.crash_hook = None
    return 0


def _default_signals() -> None:
    """What a process started from an interactive shell has: Ctrl+C raises KeyboardInterrupt, SIGTERM and
    SIGHUP at their defaults (a launcher running the suite in the background may have them ignored)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.fixture
def default_signals():
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    _default_signals()
    yield
    for s, handler in old.items():
        signal.signal(s, handler)


@pytest.mark.slow
@pytest.mark.parametrize("signame,code", [("SIGINT", 130), ("SIGHUP", 129)])
def test_interrupt_during_save_exits_with_its_code_and_leaves_nothing(tmp_path, capsys, default_signals, signame, code):
    (tmp_path / "new").mkdir()
    assert _hooked(tmp_path, signame, "written") == code
    err = capsys.readouterr().err
    assert_one_line_error(err, code, code)
    assert os.listdir(tmp_path / "new") == []


def _captures_in_a_child(tmp_path: Path, signames: tuple[str, ...], ignore: bool) -> tuple[dict, str]:
    """In a fresh Python process, one capture per signal, each receiving it while its snapshot is written:
    with the signals at their interactive-shell defaults, or (``ignore``) each ignored by the caller.
    Returns the exit codes by signal and the child's stderr."""
    script = (
        "import sys, json, signal; from pathlib import Path\n"
        "from tests.integration.test_bad_input import _default_signals, _hooked\n"
        "_default_signals(); codes = {}\n"
        f"for sig in {signames!r}:\n"
        f"    if {ignore!r}: signal.signal(getattr(signal, sig), signal.SIG_IGN)\n"
        "    d = Path(sys.argv[1]) / sig; (d / 'new').mkdir(parents=True)\n"
        "    codes[sig] = _hooked(d, sig, 'written')\n"
        f"    assert not {ignore!r} or signal.getsignal(getattr(signal, sig)) == signal.SIG_IGN, sig\n"
        "print(json.dumps(codes))\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, cwd=root, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.slow
def test_real_signals_during_capture_save_leave_nothing_behind(tmp_path):
    """A real process receives SIGTERM, SIGINT (Ctrl+C) and SIGHUP while a snapshot's files are being
    written (three captures in turn): exits 143, 130 and 129, one line each, no temporary left."""
    codes, stderr = _captures_in_a_child(tmp_path, ("SIGTERM", "SIGINT", "SIGHUP"), ignore=False)
    assert codes == {"SIGTERM": 143, "SIGINT": 130, "SIGHUP": 129}
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [
        "kvscope: error: terminated by SIGTERM",
        "kvscope: error: interrupted",
        "kvscope: error: terminated by SIGHUP",
    ], stderr
    for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
        assert os.listdir(tmp_path / sig / "new") == [], sig


@pytest.mark.slow
def test_signals_the_caller_ignores_stay_ignored(tmp_path):
    """``nohup kvscope ...`` ignores SIGHUP (and a launcher may ignore SIGTERM): the CLI must not put
    its own handler over that, so a hangup during the save changes nothing and the snapshot is written."""
    codes, _ = _captures_in_a_child(tmp_path, ("SIGTERM", "SIGHUP"), ignore=True)
    assert codes == {"SIGTERM": 0, "SIGHUP": 0}
    for sig in ("SIGTERM", "SIGHUP"):
        assert os.listdir(tmp_path / sig / "new") == ["s.kvs"], sig


# issue 25
def test_view_on_a_port_in_use_exits_2_with_one_line(prepared, tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        argv = ["view", "{in}/ok.kvs", "--port", port, "--no-browser"]
        run_case(prepared, tmp_path, monkeypatch, capsys, argv, f"cannot listen on 127.0.0.1:{port}")


# decodetask: bench --task streaming (issue 21 part 3), in a table of its own so that appending it here does not
# change the ids of the table above; CASES (the count the README states) includes it.
S = ["bench", *T, "--task", "streaming"]
DECODETASK_CASES = [
    ([*S, "--budgets", "0", "-o", "{new}"], "--budgets must hold positive integers, got 0"),
    ([*S, "--budgets", "64,-8", "-o", "{new}"], "--budgets must hold positive integers, got -8"),
    ([*S, "--budgets=-3", "-o", "{new}"], "--budgets must hold positive integers, got -3"),
    ([*S, "--budgets", "1.5", "-o", "{new}"], "--budgets must hold positive integers such as 64,128; got '1.5'"),
    ([*S, "--budgets", "64,64", "-o", "{new}"], "--budgets lists a budget twice"),
    ([*S, "--budgets", ",", "-o", "{new}"], "--budgets takes a comma-separated list"),
    (["bench", *T, "--budgets", "64", "-o", "{new}"], "--budgets goes with --task streaming"),
    ([*S, "--task", "passkey", "-o", "{new}"], "--task streaming runs alone"),
    ([*S, "--ratios", "0.5", "-o", "{new}"], "--ratios does not apply to --task streaming"),
    ([*S, "--strategies", "snapkv", "-o", "{new}"], "--strategies for the streaming task are window, streaming"),
    ([*S, "--context-tokens", "8", "-o", "{new}"], "--context-tokens for the streaming task must be 16..8192"),
    ([*S, "--samples", "0", "-o", "{new}"], "--samples (streams) must be 1..64, got 0"),
]
CASES = CASES + DECODETASK_CASES


@pytest.mark.parametrize("argv,fragment", DECODETASK_CASES, ids=[_id(c[0]) for c in DECODETASK_CASES])
def test_decodetask_bad_input_exits_2_with_one_line(prepared, tmp_path, monkeypatch, capsys, argv, fragment):
    run_case(prepared, tmp_path, monkeypatch, capsys, argv, fragment)
