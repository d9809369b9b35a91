"""Atomic file writes: a reader never sees a half-written output file.

Every writer goes to a temporary file in the destination folder, then ``os.replace``s it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from kvscope.errors import UsageError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or raise a one-line ``UsageError`` if it cannot be written."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {p}: {exc.strerror or exc}") from None
    if not os.access(p, os.W_OK):
        raise UsageError(f"output directory {p} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is renamed onto ``dest``.

    On any exception the temporary file is removed and ``dest`` is left untouched.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {dest}: directory {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or ".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``dest``."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN is written as null)."""
    return write_text(dest, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and NaN/inf floats to plain JSON values."""
    import math

    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest`` whole.

    A multi-file output (analyze, bench, caching, mas) is written into the yielded folder, so ``dest``
    never mixes two runs: it holds the complete old output until the new one is swapped in. On any
    exception the temporary folder is removed and ``dest`` is left as it was.
    """
    import shutil

    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    ensure_dir(parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, dest: Path) -> None:
    """Move folder ``src`` onto ``dest`` (removing what ``dest`` held before)."""
    import shutil

    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)
