"""Tampered and damaged snapshots: each refused as "snapshot PATH is corrupted: WHAT" (exit code 2),
quickly and before any large allocation. Valid variations (float16, recorded NaN, format 1) still load."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kvscope.errors import CorruptSnapshotError, UsageError
from kvscope.snapshot import META_FILE, TENSOR_FILE, KVSnapshot
from kvscope.snapshot_format import seal, sha256_file
from tests.helpers import odd_snapshot as make_snapshot


def edit_meta(folder: Path, fn, reseal: bool = True) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    fn(meta)
    (folder / META_FILE).write_text(json.dumps(seal(meta) if reseal else meta))


def reseal_file(folder: Path) -> None:
    f = folder / TENSOR_FILE
    edit_meta(folder, lambda m: m["files"].update({TENSOR_FILE: {"sha256": sha256_file(f), "bytes": f.stat().st_size}}))


def edit_tensors(folder: Path, fn) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / TENSOR_FILE))
    fn(tensors)
    save_file(tensors, str(folder / TENSOR_FILE))
    edit_meta(folder, lambda m: m.update(tensors=sorted(tensors)))
    reseal_file(folder)


def edit_header(folder: Path, fn) -> None:
    """Rewrite the safetensors header in place (the data bytes stay)."""
    raw = (folder / TENSOR_FILE).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    fn(header)
    text = json.dumps(header).encode()
    (folder / TENSOR_FILE).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    reseal_file(folder)


def model_field(key, value):
    return lambda f: edit_meta(f, lambda m: m["model"].update({key: value}))


def set_tensor(name, fn):
    return lambda f: edit_tensors(f, lambda t: t.update({name: fn(t[name])}))


def nan_at(t, value=float("nan")):
    t = t.clone()
    t.view(-1)[0] = value
    return t


def symlink_tensor_file(f: Path) -> None:
    target = f.parent / "elsewhere.safetensors"
    os.replace(f / TENSOR_FILE, target)
    os.symlink(target, f / TENSOR_FILE)


def truncate(f: Path, n: int, reseal: bool) -> None:
    (f / TENSOR_FILE).write_bytes((f / TENSOR_FILE).read_bytes()[:n])
    if reseal:
        reseal_file(f)


# name -> (tamper(folder), fragment of the message after "corrupted: ")
VARIANTS = {
    "manifest_edited_without_checksum": (
        lambda f: edit_meta(f, lambda m: m.update(text="edited"), reseal=False),
        "does not match its checksum (manifest_sha256)",
    ),
    "n_layers_huge": (lambda f: edit_meta(f, lambda m: m.update(n_layers=10**12)), "n_layers = 1,000,000,000,000 but"),
    "n_layers_string": (lambda f: edit_meta(f, lambda m: m.update(n_layers="2")), "n_layers is str"),
    "model_layers_huge": (
        lambda f: edit_meta(f, lambda m: (m["model"].update(layers=10**12), m.update(n_layers=10**12))),
        "model.layers = 1,000",
    ),
    "kv_heads_zero": (model_field("kv_heads", 0), "model.kv_heads = 0 is outside"),
    "head_dim_string": (model_field("head_dim", "3"), "model.head_dim is str"),
    "head_dim_bool": (model_field("head_dim", True), "model.head_dim is bool"),
    "q_heads_not_multiple": (model_field("q_heads", 3), "not a multiple of kv_heads"),
    "vocab_size_missing": (lambda f: edit_meta(f, lambda m: m["model"].pop("vocab_size")), "lacks 'vocab_size'"),
    "tokens_count": (lambda f: edit_meta(f, lambda m: m["tokens"].pop()), "token_ids has shape [5], expected [4]"),
    "tokens_not_strings": (lambda f: edit_meta(f, lambda m: m["tokens"].__setitem__(0, 7)), "tokens must be"),
    "text_not_string": (lambda f: edit_meta(f, lambda m: m.update(text=5)), "text is int"),
    "manifest_is_a_list": (lambda f: (f / META_FILE).write_text("[1, 2]"), "not a JSON object"),
    "manifest_nan_constant": (
        lambda f: (f / META_FILE).write_text(
            (f / META_FILE).read_text().replace('"rope_theta": 10000.0', '"rope_theta": NaN')
        ),
        "not valid JSON",
    ),
    "manifest_deep_nesting": (lambda f: (f / META_FILE).write_text("[" * 200_000), "not valid JSON"),
    "keys_wrong_head_dim": (set_tensor("keys.0", lambda t: torch.zeros(2, 5, 4)), "keys.0 has shape [2, 5, 4]"),
    "values_extra_head": (set_tensor("values.1", lambda t: torch.zeros(3, 5, 3)), "values.1 has shape [3, 5, 3]"),
    "keys_more_positions_than_tokens": (set_tensor("keys.1", lambda t: torch.zeros(2, 9, 3)), "keys.1 has shape"),
    "queries_wrong_heads": (set_tensor("queries.0", lambda t: torch.zeros(2, 5, 3)), "queries.0 has shape"),
    "keys_int8": (set_tensor("keys.0", lambda t: t.to(torch.int8)), "keys.0 has unsupported dtype I8"),
    "keys_float64": (set_tensor("keys.0", lambda t: t.double()), "keys.0 has unsupported dtype F64"),
    "token_ids_float": (set_tensor("token_ids", lambda t: t.float()), "token_ids has dtype F32, expected I64"),
    "values_nan_unrecorded": (set_tensor("values.0", nan_at), "values.0 holds NaN or infinite values"),
    "attention_inf_unrecorded": (
        set_tensor("attention_received", lambda t: nan_at(t, float("inf"))),
        "attention_received holds NaN",
    ),
    "token_id_beyond_vocab": (set_tensor("token_ids", lambda t: t + 100), "token_ids outside [0, vocab_size 10)"),
    "negative_position": (set_tensor("positions", lambda t: t - 1), "positions holds negative values"),
    "unknown_tensor": (lambda f: edit_tensors(f, lambda t: t.update({"bias.0": torch.zeros(1)})), "unexpected tensor"),
    "queries_one_layer_missing": (
        lambda f: edit_tensors(f, lambda t: t.pop("queries.1")),
        "queries is present for 1 of 2 layers",
    ),
    "nonfinite_names_unknown": (lambda f: edit_meta(f, lambda m: m.update(nonfinite=["nope"])), "nonfinite names"),
    "tensor_file_truncated": (lambda f: truncate(f, 100, reseal=False), "is 100 bytes, the manifest says"),
    "tensor_file_truncated_resealed": (lambda f: truncate(f, 100, reseal=True), "declares a header of"),
    "tensor_file_flipped_byte": (
        lambda f: (f / TENSOR_FILE).write_bytes((f / TENSOR_FILE).read_bytes()[:-7] + b"\x00" * 7),
        "does not match its checksum",
    ),
    "header_length_huge": (
        lambda f: ((f / TENSOR_FILE).write_bytes(struct.pack("<Q", 2**60) + b"{}" * 64), reseal_file(f)),
        "declares a header of 1,152,921",
    ),
    "header_shape_huge": (
        lambda f: edit_header(f, lambda h: h["keys.0"].update(shape=[2, 10**9, 3])),
        "keys.0 does not fit its byte range",
    ),
    "tensor_file_missing": (lambda f: (f / TENSOR_FILE).unlink(), "tensors.safetensors is missing"),
    "tensor_file_symlink": (symlink_tensor_file, "tensors.safetensors is a symbolic link"),
    "symlink_inside": (lambda f: os.symlink("/etc/passwd", f / "extra"), "extra is a symbolic link"),
}


def tampered(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / f"{name}.kvs"
    make_snapshot().save(folder)
    VARIANTS[name][0](folder)
    return folder


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_tampered_snapshot_is_refused_as_corrupted(tmp_path, name):
    folder = tampered(tmp_path, name)
    t0 = time.perf_counter()
    with pytest.raises(CorruptSnapshotError) as err:
        KVSnapshot.load(folder)
    seconds = time.perf_counter() - t0
    message = str(err.value)
    assert message.startswith(f"snapshot {folder} is corrupted: ") and "\n" not in message
    assert VARIANTS[name][1] in message, message
    assert err.value.exit_code == 2 and seconds < 2.0


@pytest.mark.slow
def test_memory_stays_bounded_for_every_variant(tmp_path):
    """All variants in a fresh process: peak resident memory grows by under 64 MiB over the baseline."""
    script = (
        "import resource, sys, json; from pathlib import Path\n"
        "import tests.unit.test_snapshot_tamper as t\n"
        "from kvscope.snapshot import KVSnapshot\n"
        "from kvscope.errors import CorruptSnapshotError\n"
        "root = Path(sys.argv[1]); folders = [t.tampered(root, n) for n in sorted(t.VARIANTS)]\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "refused = 0\n"
        "for f in folders:\n"
        "    try: KVSnapshot.load(f)\n"
        "    except CorruptSnapshotError: refused += 1\n"
        "growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base\n"
        "print(json.dumps({'growth_kib': growth, 'refused': refused}))\n"
    )
    (tmp_path / "ok").mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=env["PYTHONPATH"],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["refused"] == len(VARIANTS)
    assert result["growth_kib"] < 64 * 1024, result


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_tensors_load(tmp_path, dtype):
    snap = make_snapshot()
    snap.keys = [k.to(dtype) for k in snap.keys]
    snap.save(tmp_path / "h.kvs")
    # numpy has no bfloat16: read as float32 (exact), so every analysis can use it (issue 19)
    assert KVSnapshot.load(tmp_path / "h.kvs").keys[0].dtype == (torch.float32 if dtype == torch.bfloat16 else dtype)


def test_recorded_nonfinite_values_load(tmp_path):
    make_snapshot().save(tmp_path / "s.kvs")  # keys.1 holds a NaN
    meta = json.loads((tmp_path / "s.kvs" / META_FILE).read_text())
    assert meta["nonfinite"] == ["keys.1", "pre_rope_keys.1"]
    assert torch.isnan(KVSnapshot.load(tmp_path / "s.kvs").keys[1]).any()


def to_format_1(folder: Path) -> None:
    def downgrade(m):
        m.update(format_version=1, sha256=m.pop("files")[TENSOR_FILE]["sha256"])
        del m["nonfinite"], m["manifest_sha256"]

    edit_meta(folder, downgrade, reseal=False)


def test_format_1_snapshots_still_load_and_upgrade_on_save(tmp_path):
    snap = make_snapshot()
    snap.keys[1] = torch.nan_to_num(snap.keys[1])
    snap.pre_rope_keys = [k * 2 for k in snap.keys]
    snap.save(tmp_path / "old.kvs")
    to_format_1(tmp_path / "old.kvs")
    loaded = KVSnapshot.load(tmp_path / "old.kvs")
    assert torch.equal(loaded.keys[1], snap.keys[1])
    loaded.save(tmp_path / "new.kvs")
    assert json.loads((tmp_path / "new.kvs" / META_FILE).read_text())["format_version"] == 2


def test_format_1_with_nan_is_refused_and_unknown_versions_named(tmp_path):
    make_snapshot().save(tmp_path / "old.kvs")
    to_format_1(tmp_path / "old.kvs")
    with pytest.raises(CorruptSnapshotError, match="keys.1 holds NaN"):
        KVSnapshot.load(tmp_path / "old.kvs")
    edit_meta(tmp_path / "old.kvs", lambda m: m.update(format_version=3))
    with pytest.raises(UsageError, match="has format_version 3; .* reads format_version 1, 2"):
        KVSnapshot.load(tmp_path / "old.kvs")
