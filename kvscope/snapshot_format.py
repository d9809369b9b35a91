"""The ``.kvs`` folder format and its validating reader (used by ``KVSnapshot.save`` and ``.load``).

A snapshot folder holds two regular files (other files are ignored; a symbolic link anywhere in it is refused):

- ``tensors.safetensors``: the tensors (see ``KVSnapshot``), never pickle.
- ``snapshot.json``, the manifest: ``format_version`` 2, model facts, token strings, ``n_layers``, the
  tensor names, ``files`` (SHA-256 and size of the tensor file), ``nonfinite`` (names of the tensors
  that hold NaN or infinite values; every other tensor is finite) and ``manifest_sha256``: the SHA-256 of
  the manifest itself (canonical JSON: sorted keys, no spaces, ASCII, that key left out). The checksums
  catch damage and careless edits; they are not a signature, so the reader also validates everything.

Reading checks, before anything large is allocated: no symlink in the folder; the manifest's size,
JSON, version, checksum and every field's type and range (model facts within the bounds of
``kvscope.configcheck.CONFIG_LIMITS``, ``n_layers`` equal to the model's layers); the tensor file's size and
checksum; the safetensors header (bounded length) with every tensor's name, dtype (float32, float16 or
bfloat16 for keys, values, queries and attention; int64/bool for ids) and shape against the model facts
and token count, and its byte range against the file. Only then are the tensors read, and their values
checked (finite unless listed in ``nonfinite``; token ids below ``vocab_size``; positions and counts not
negative). Any failure raises ``CorruptSnapshotError``: "snapshot PATH is corrupted: WHAT".

Older snapshots: ``format_version`` 1 (kvscope 0.1) had a checksum of the tensor file only and no
``nonfinite`` list. It is still read, with every check above except the manifest checksum; a version-1
snapshot holding non-finite values is refused (it cannot say they were there when it was saved).
Saving always writes version 2, so ``KVSnapshot.load(old).save(new)`` upgrades one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any

from kvscope.errors import CorruptSnapshotError, UsageError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
TENSOR_FILE = "tensors.safetensors"
META_FILE = "snapshot.json"
LAYERED = ("keys", "values", "pre_rope_keys", "queries")
SINGLE = ("token_ids", "special", "positions", "attention_received", "attention_counts")
MAX_META_BYTES = 16 * 1024 * 1024  # parsing takes ~30x the text in memory (100 MB took 2.9 GB)
MAX_MAGNITUDE = 1e12  # no KV cache holds larger values; squares and sums of them must stay finite in float32
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_POSITIONS = 10_000_000
FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
DTYPES = {**FLOAT_DTYPES, "I64": 8, "BOOL": 1}
_INT_NAMES = {"token_ids": "I64", "positions": "I64", "special": "BOOL", "attention_counts": "I64"}
_INFO_TYPES = {
    "name": str,
    "architecture": str,
    "layers": int,
    "q_heads": int,
    "kv_heads": int,
    "head_dim": int,
    "hidden_size": int,
    "vocab_size": int,
    "rope_theta": (float, int, type(None)),
    "max_positions": int,
    "dtype": str,
    "parameters": int,
    "kv_bytes_per_token": int,
    "tied_embeddings": bool,
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_digest(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its ``manifest_sha256``."""
    return {**meta, "manifest_sha256": manifest_digest(meta)}


# ----------------------------------------------------------------------------- manifest


def _regular(src: Path, name: str, limit: int) -> os.stat_result:
    try:
        st = os.lstat(src / name)
    except FileNotFoundError:
        raise CorruptSnapshotError(src, f"{name} is missing") from None
    if stat.S_ISLNK(st.st_mode):
        raise CorruptSnapshotError(src, f"{name} is a symbolic link (refused)")
    if not stat.S_ISREG(st.st_mode):
        raise CorruptSnapshotError(src, f"{name} is not a regular file")
    if st.st_size > limit:
        raise CorruptSnapshotError(src, f"{name} is {st.st_size:,} bytes, over the limit of {limit:,}")
    return st


def read_manifest(src: Path) -> dict[str, Any]:
    """The validated manifest of snapshot folder ``src``."""
    if not os.path.lexists(src):
        from kvscope.errors import InputNotFoundError

        raise InputNotFoundError(f"{src} is not a kvscope snapshot: it does not exist")
    if not src.is_dir() or not os.path.lexists(src / META_FILE):
        raise UsageError(f"{src} is not a kvscope snapshot (expected a folder with {META_FILE})")
    for entry in os.scandir(src):
        if entry.is_symlink():
            raise CorruptSnapshotError(src, f"{entry.name} is a symbolic link (refused)")
    _regular(src, META_FILE, MAX_META_BYTES)
    try:
        meta = json.loads((src / META_FILE).read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptSnapshotError(src, f"{META_FILE} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(meta, dict):
        raise CorruptSnapshotError(src, f"{META_FILE} is not a JSON object")
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        from kvscope import __version__

        raise UsageError(
            f"snapshot {src} has format_version {version!r}; this kvscope ({__version__}) "
            f"reads format_version {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if version >= 2 and meta.get("manifest_sha256") != manifest_digest(meta):
        raise CorruptSnapshotError(src, f"{META_FILE} does not match its checksum (manifest_sha256)")
    check_fields(meta, src)
    return meta


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _field(meta: dict, key: str, kind: Any, src: Path, where: str = "") -> Any:
    if key not in meta:
        raise CorruptSnapshotError(src, f"{where or META_FILE} lacks {key!r}")
    value = meta[key]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is int)
    if not ok:
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise CorruptSnapshotError(src, f"{where}{key} is {type(value).__name__}, expected {names}")
    return value


def check_model(model: Any, src: Path) -> None:
    """Types and ranges of the model facts (the bounds of ``kvscope.configcheck.CONFIG_LIMITS``)."""
    from kvscope.configcheck import INFO_LIMITS

    if not isinstance(model, dict):
        raise CorruptSnapshotError(src, "model is not a JSON object")
    for key, kind in _INFO_TYPES.items():
        _field(model, key, kind, src, "model.")
    for key, (low, high) in INFO_LIMITS.items():
        if not low <= model[key] <= high:
            raise CorruptSnapshotError(src, f"model.{key} = {model[key]:,} is outside [{low:,}, {high:,}]")
    if model["q_heads"] % model["kv_heads"]:
        raise CorruptSnapshotError(
            src, f"model.q_heads {model['q_heads']} is not a multiple of kv_heads {model['kv_heads']}"
        )
    theta = model["rope_theta"]
    if theta is not None and not (math.isfinite(theta) and theta > 0):
        raise CorruptSnapshotError(src, f"model.rope_theta = {theta} is not a positive number")
    if model["dtype"] not in ("float32", "float16", "bfloat16", "float64"):
        raise CorruptSnapshotError(src, f"model.dtype {model['dtype'][:40]!r} is not a known dtype")


def check_fields(meta: dict[str, Any], src: Path) -> None:
    """Every manifest field: type, range, and ``n_layers`` against the model facts."""
    check_model(_field(meta, "model", dict, src), src)
    tokens = _field(meta, "tokens", list, src)
    if not 1 <= len(tokens) <= MAX_POSITIONS or not all(isinstance(t, str) for t in tokens):
        raise CorruptSnapshotError(src, f"tokens must be 1 to {MAX_POSITIONS:,} strings")
    n = _field(meta, "n_layers", int, src)
    if n != meta["model"]["layers"]:
        raise CorruptSnapshotError(src, f"n_layers = {n:,} but model.layers = {meta['model']['layers']}")
    names = _field(meta, "tensors", list, src)
    if not all(isinstance(t, str) for t in names) or len(set(names)) != len(names):
        raise CorruptSnapshotError(src, "tensors must be a list of distinct names")
    _field(meta, "text", str, src)
    if not isinstance(meta.get("meta", {}), dict):
        raise CorruptSnapshotError(src, "meta is not a JSON object")
    if meta["format_version"] >= 2:
        files = _field(meta, "files", dict, src)
        entry = _field(files, TENSOR_FILE, dict, src, "files.")
        _field(entry, "sha256", str, src, f"files.{TENSOR_FILE}.")
        _field(entry, "bytes", int, src, f"files.{TENSOR_FILE}.")
        flagged = _field(meta, "nonfinite", list, src)
        if not set(flagged) <= set(names):
            raise CorruptSnapshotError(src, "nonfinite names tensors that are not in the file")
    else:
        _field(meta, "sha256", str, src)


# ----------------------------------------------------------------------------- tensor file


def expected_shapes(meta: dict[str, Any], names: list[str]) -> dict[str, tuple]:
    """Shape rule per tensor name: a tuple of ints, ``None`` in the position axis of keys/values
    (a sliding-window layer holds 1..P positions). Raises ``KeyError`` for a name not in the format."""
    m, n, p = meta["model"], meta["n_layers"], len(meta["tokens"])
    kv, q, d = m["kv_heads"], m["q_heads"], m["head_dim"]
    rules: dict[str, tuple] = {
        "token_ids": (p,),
        "special": (p,),
        "positions": (p,),
        "attention_received": (n, kv, p),
        "attention_counts": (n, p),
    }
    for i in range(n):
        rules |= {
            f"keys.{i}": (kv, None, d),
            f"values.{i}": (kv, None, d),
            f"pre_rope_keys.{i}": (kv, p, d),
            f"queries.{i}": (q, p, d),
        }
    unknown = sorted(set(names) - set(rules))
    if unknown:
        raise KeyError(unknown[0])
    wanted = set(names)
    return {name: rule for name, rule in rules.items() if name in wanted}


def read_header(path: Path, size: int, src: Path) -> dict[str, dict[str, Any]]:
    """The safetensors header (name -> dtype, shape, data_offsets), bounded and checked against ``size``."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptSnapshotError(src, f"{TENSOR_FILE} is truncated")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise CorruptSnapshotError(src, f"{TENSOR_FILE} declares a header of {length:,} bytes")
        try:
            header = json.loads(f.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise CorruptSnapshotError(src, f"{TENSOR_FILE} has an unreadable header") from None
    if not isinstance(header, dict):
        raise CorruptSnapshotError(src, f"{TENSOR_FILE} has an unreadable header")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - length
    for name, entry in header.items():
        _check_entry(name, entry, data_bytes, src)
    return header


def _check_entry(name: str, entry: Any, data_bytes: int, src: Path) -> None:
    if isinstance(entry, dict) and entry.get("dtype") not in DTYPES:
        raise CorruptSnapshotError(
            src,
            f"tensor {name[:60]} has unsupported dtype {str(entry.get('dtype'))[:12]} "
            "(keys and values must be F32, F16 or BF16)",
        )
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("shape"), list)
        and all(type(s) is int and 0 <= s < 2**40 for s in entry["shape"])
        and isinstance(entry.get("data_offsets"), list)
        and len(entry["data_offsets"]) == 2
        and all(type(o) is int for o in entry["data_offsets"])
    )
    if not ok:
        raise CorruptSnapshotError(src, f"tensor {name[:60]!r} has an invalid header entry")
    start, end = entry["data_offsets"]
    numel = math.prod(entry["shape"])
    if not 0 <= start <= end <= data_bytes or end - start != numel * DTYPES[entry["dtype"]]:
        raise CorruptSnapshotError(src, f"tensor {name} does not fit its byte range in {TENSOR_FILE}")


def check_header(header: dict[str, dict], meta: dict[str, Any], src: Path) -> None:
    """Names, dtypes and shapes of the tensors against the manifest and model facts."""
    names = meta["tensors"]
    if sorted(header) != sorted(names):
        extra = sorted(set(header) ^ set(names))[:3]
        raise CorruptSnapshotError(src, f"the tensor file and {META_FILE} list different tensors ({', '.join(extra)})")
    n = meta["n_layers"]
    required = ["token_ids", "special", "positions"] + [f"{kv}.{i}" for kv in ("keys", "values") for i in range(n)]
    missing = [r for r in required if r not in header]
    if missing:
        raise CorruptSnapshotError(src, f"missing tensor(s): {', '.join(missing[:4])}")
    for group in ("pre_rope_keys", "queries"):
        present = [i for i in range(n) if f"{group}.{i}" in header]
        if present and len(present) != n:
            raise CorruptSnapshotError(src, f"{group} is present for {len(present)} of {n} layers")
    if ("attention_received" in header) != ("attention_counts" in header):
        raise CorruptSnapshotError(src, "attention_received and attention_counts must come together")
    try:
        rules = expected_shapes(meta, names)
    except KeyError as exc:
        raise CorruptSnapshotError(src, f"unexpected tensor {str(exc)[:60]}") from None
    for name, rule in rules.items():
        _check_tensor(name, header[name], rule, src, meta)


def _check_tensor(name: str, entry: dict, rule: tuple, src: Path, meta: dict) -> None:
    base = name.split(".")[0]
    want = _INT_NAMES.get(base)
    if (want and entry["dtype"] != want) or (not want and entry["dtype"] not in FLOAT_DTYPES):
        allowed = want or "F32, F16 or BF16"
        raise CorruptSnapshotError(src, f"tensor {name} has dtype {entry['dtype']}, expected {allowed}")
    shape = entry["shape"]
    ok = len(shape) == len(rule) and all(r is None or s == r for s, r in zip(shape, rule))
    if ok and base in ("keys", "values"):
        ok = 1 <= shape[1] <= len(meta["tokens"])
    if not ok:
        shown = ", ".join("P_l" if r is None else str(r) for r in rule)
        raise CorruptSnapshotError(src, f"tensor {name} has shape {shape[:6]}, expected [{shown}]")


def check_values(tensors: dict[str, Any], meta: dict[str, Any], src: Path) -> None:
    """Values: finite unless listed in ``nonfinite``; ids, positions and counts in range; keys and values
    of a layer of equal shape."""
    import torch

    flagged = set(meta["nonfinite"]) if meta["format_version"] >= 2 else set()  # format 1 records none
    for name, t in tensors.items():
        if not t.is_floating_point():
            continue
        if name not in flagged and not bool(torch.isfinite(t).all()):
            raise CorruptSnapshotError(
                src, f"tensor {name} holds NaN or infinite values that {META_FILE} does not record"
            )
        big = float(t.float().nan_to_num(0.0, 0.0, 0.0).abs().max()) if t.numel() else 0.0
        if big > MAX_MAGNITUDE:
            raise CorruptSnapshotError(
                src, f"tensor {name} holds a value of magnitude {big:.3g}, over {MAX_MAGNITUDE:g}"
            )
    for i in range(meta["n_layers"]):
        if tensors[f"keys.{i}"].shape != tensors[f"values.{i}"].shape:
            raise CorruptSnapshotError(src, f"keys.{i} and values.{i} differ in shape")
    vocab = meta["model"]["vocab_size"]
    ids = tensors["token_ids"]
    if bool((ids < 0).any()) or bool((ids >= vocab).any()):
        raise CorruptSnapshotError(src, f"token_ids outside [0, vocab_size {vocab})")
    for name in ("positions", "attention_counts"):
        if name in tensors and bool((tensors[name] < 0).any()):
            raise CorruptSnapshotError(src, f"{name} holds negative values")


def read_tensors(src: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Check the tensor file (size, checksum, header) and read it; then check the values."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = src / TENSOR_FILE
    limit = meta["files"][TENSOR_FILE]["bytes"] if meta["format_version"] >= 2 else 1 << 50
    st = _regular(src, TENSOR_FILE, limit)
    if meta["format_version"] >= 2 and st.st_size != limit:
        raise CorruptSnapshotError(src, f"{TENSOR_FILE} is {st.st_size:,} bytes, the manifest says {limit:,}")
    digest = meta["files"][TENSOR_FILE]["sha256"] if meta["format_version"] >= 2 else meta["sha256"]
    header = read_header(path, st.st_size, src)
    check_header(header, meta, src)
    if sha256_file(path) != digest:
        raise CorruptSnapshotError(src, f"{TENSOR_FILE} does not match its checksum")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptSnapshotError(src, str(exc)[:160]) from None
    check_values(tensors, meta, src)
    # numpy has no bfloat16: such tensors are read as float32 (exact); float16 and float32 stay as saved
    return {n: t.float() if t.dtype == torch.bfloat16 else t for n, t in tensors.items()}


def nonfinite_names(tensors: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors holding NaN or infinite values (recorded at save time)."""
    import torch

    return sorted(n for n, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
