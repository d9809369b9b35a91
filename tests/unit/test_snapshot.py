"""KVSnapshot files: bit-identical round trips and clear errors for damaged files (no model)."""

from __future__ import annotations

import json

import pytest
import torch

from kvscope.errors import KvscopeError, UsageError
from kvscope.snapshot import FORMAT_VERSION, META_FILE, TENSOR_FILE, KVSnapshot
from tests.helpers import odd_snapshot as make_snapshot


def assert_identical(a: KVSnapshot, b: KVSnapshot) -> None:
    for name in ("keys", "values", "pre_rope_keys", "queries"):
        la, lb = getattr(a, name), getattr(b, name)
        assert (la is None) == (lb is None)
        for x, y in zip(la or [], lb or []):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.view(torch.int32).equal(y.view(torch.int32)), name  # bit-identical, NaN and -0.0 too
    for name in ("token_ids", "special", "positions", "attention_received", "attention_counts"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name
    assert a.tokens == b.tokens and a.text == b.text and a.info == b.info


@pytest.mark.parametrize("extras", [True, False])
def test_round_trip_is_bit_identical(tmp_path, extras):
    snap = make_snapshot(extras)
    snap.save(tmp_path / "s.kvs")
    assert_identical(snap, KVSnapshot.load(tmp_path / "s.kvs"))


def test_overwrite_replaces_old_snapshot(tmp_path):
    make_snapshot(True).save(tmp_path / "s.kvs")
    new = make_snapshot(False)
    new.save(tmp_path / "s.kvs")
    assert_identical(new, KVSnapshot.load(tmp_path / "s.kvs"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.kvs"]  # no temp folders left behind


def test_metadata_has_format_version_and_no_pickle(tmp_path):
    make_snapshot().save(tmp_path / "s.kvs")
    meta = json.loads((tmp_path / "s.kvs" / META_FILE).read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert sorted(p.name for p in (tmp_path / "s.kvs").iterdir()) == [META_FILE, TENSOR_FILE]


def test_flipped_byte_is_reported_as_corruption(tmp_path):
    make_snapshot().save(tmp_path / "s.kvs")
    f = tmp_path / "s.kvs" / TENSOR_FILE
    data = bytearray(f.read_bytes())
    data[-7] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(KvscopeError, match="corrupted"):
        KVSnapshot.load(tmp_path / "s.kvs")


def test_truncated_tensor_file_is_reported(tmp_path):
    make_snapshot().save(tmp_path / "s.kvs")
    f = tmp_path / "s.kvs" / TENSOR_FILE
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(KvscopeError, match="corrupted"):
        KVSnapshot.load(tmp_path / "s.kvs")


def test_unknown_format_version(tmp_path):
    make_snapshot().save(tmp_path / "s.kvs")
    meta_path = tmp_path / "s.kvs" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(KvscopeError, match="format_version 99"):
        KVSnapshot.load(tmp_path / "s.kvs")


def test_missing_tensor_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    from kvscope.snapshot_format import seal, sha256_file

    make_snapshot().save(tmp_path / "s.kvs")
    folder = tmp_path / "s.kvs"
    tensors = load_file(str(folder / TENSOR_FILE))
    del tensors["values.1"]
    save_file(tensors, str(folder / TENSOR_FILE))
    meta = json.loads((folder / META_FILE).read_text())
    meta["files"][TENSOR_FILE] = {
        "sha256": sha256_file(folder / TENSOR_FILE),
        "bytes": (folder / TENSOR_FILE).stat().st_size,
    }
    meta["tensors"] = sorted(tensors)
    (folder / META_FILE).write_text(json.dumps(seal(meta)))
    with pytest.raises(KvscopeError, match="corrupted: missing tensor.*values.1"):
        KVSnapshot.load(folder)


def test_bad_json_and_not_a_snapshot(tmp_path):
    make_snapshot().save(tmp_path / "s.kvs")
    (tmp_path / "s.kvs" / META_FILE).write_text("{not json")
    with pytest.raises(KvscopeError, match="not valid JSON"):
        KVSnapshot.load(tmp_path / "s.kvs")
    with pytest.raises(UsageError, match="not a kvscope snapshot"):
        KVSnapshot.load(tmp_path / "nothing.kvs")


def test_unwritable_destination_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        make_snapshot().save(tmp_path / "no" / "such" / "s.kvs")
    (tmp_path / "file.kvs").write_text("x")
    with pytest.raises(UsageError, match="not a kvscope snapshot"):
        make_snapshot().save(tmp_path / "file.kvs")


def test_mean_attention_divides_by_counts():
    snap = make_snapshot()
    expected = snap.attention_received / snap.attention_counts.unsqueeze(1).float()
    assert torch.allclose(snap.mean_attention(), expected)


@pytest.mark.parametrize("step", ["tmp", "written", "swap", "swapped"])
def test_crash_during_save_leaves_old_or_new_snapshot(tmp_path, step):
    import os

    import kvscope.fileio as fileio
    from tests.helpers import crash_in_child

    dest = tmp_path / "s.kvs"
    old, new = make_snapshot(True), make_snapshot(False)
    old.save(dest)
    crash_in_child(step, lambda: new.save(dest))
    fileio.clean_stale(dest)  # what the next run does first
    loaded = KVSnapshot.load(dest)  # complete: validated, checksums match
    assert_identical(old if step in ("tmp", "written", "swap") else new, loaded)
    assert os.listdir(tmp_path) == ["s.kvs"]


def test_repr_is_short_and_html_is_a_table():
    snap = make_snapshot()
    text = repr(snap)
    assert text == (
        "KVSnapshot(model='synthetic', tokens=5, layers=2, kv_heads=2, head_dim=3, "
        "extras=[attention, pre_rope_keys, queries])"
    )
    html = snap._repr_html_()
    assert html.startswith("<table>") and "&lt;script&gt;" in html and "<script>" not in html
    assert "<td style='text-align:left'>2 x 2 x 3</td>" in html
