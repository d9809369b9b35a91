"""Safe reading and atomic writing: a reader never sees a half-written output, a bad input is one sentence.

Writing (Linux semantics, process crashes; power-loss durability would need fsync and is not promised):

- ``atomic_path(dest)`` / ``write_text`` / ``write_json``: a temporary file beside ``dest``, then one
  ``rename`` onto it. ``dest`` holds the complete old file or the complete new one, never a mix.
- ``atomic_dir(dest)``: a multi-file output is written into a temporary folder beside ``dest`` and swapped
  in whole with ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+, via ctypes), so ``dest`` is never missing
  and never mixes two runs. Where the exchange is unavailable (another OS, a file system without it) the
  fallback is two renames: ``dest`` to a backup ``.NAME.PID-old.tmp``, then the new folder to ``dest``; a
  crash between the two leaves the backup, which the next run moves back before doing anything else.
- Ownership (``kvscope.outdir``): ``atomic_dir(dest, command=...)`` replaces only what that command wrote
  there before (a marker file, ``.kvscope-out.json``, records it); other entries are carried into the
  new folder, an empty folder is filled in place, a non-empty folder without the marker is refused
  unless ``force``. ``check_out_dir(..., command=, inputs=)`` makes the same checks before any work.
- Temporaries are named ``.NAME.PID-XXXX.tmp`` (PID of the writer). A run writing ``NAME`` first removes
  the temporaries of writers that are no longer alive (stale ones from a crash or a kill), so none
  accumulates; those of kvscope 0.1 (``.NAME.XXXXXXXX[.tmp]``, ``.NAME.old[.PID]``, no PID to check)
  once they are an hour old. A folder created for the output is removed again when the run fails.

Reading: ``read_text_input(path, option)`` accepts only a regular file under ``MAX_INPUT_BYTES`` that is
valid UTF-8 (FIFOs, devices such as ``/dev/zero`` and folders are refused before any read).
``check_out_dir`` / ``check_out_file`` validate an output location without creating anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kvscope import outdir
from kvscope.errors import UsageError
from kvscope.outdir import exchange

MAX_INPUT_BYTES = 50 * 1024 * 1024  # prompt, continuation and data files: 50 MB
LEGACY_AGE_S = 3600  # temporaries named by kvscope 0.1 (no PID) are removed once this old

# Tests set this to a function called with the name of each write step ("tmp", "written", "swap",
# "moved-old", "swapped"); raising (or os._exit) there simulates a crash between two steps.
crash_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


# ----------------------------------------------------------------------------- reading inputs


def read_text_input(path: str | os.PathLike, option: str, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` given with ``option`` (e.g. ``"--prompt-file"``).

    Refused with a one-line ``UsageError`` naming ``option`` and the file: a missing or unreadable
    file, anything that is not a regular file (folder, FIFO, socket, ``/dev/zero``), a file over
    ``limit`` bytes, text that is not UTF-8. Nothing is read before those checks pass.
    """
    where = f"{option} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc.strerror or exc}", param=option) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(
                f"cannot read {where}: not a regular file (folders, FIFOs and devices are refused)", param=option
            )
        if st.st_size > limit:
            raise UsageError(f"cannot read {where}: {st.st_size:,} bytes is over the limit of {limit:,}", param=option)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc.strerror or exc}", param=option) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UsageError(
            f"cannot read {where}: it grew over the limit of {limit:,} bytes while being read", param=option
        )
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read {where}: not valid UTF-8 text (byte {exc.start})", param=option) from None


def check_utf8(text: str, option: str) -> str:
    """``text`` if it encodes as UTF-8; command-line bytes that were not UTF-8 arrive as lone
    surrogates and are refused with a ``UsageError`` naming ``option``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{option} is not valid UTF-8 text (character {exc.start})", param=option) from None
    return text


# ----------------------------------------------------------------------------- output locations


def _nearest_existing(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not os.path.lexists(p):
        p = p.parent
    return p


def check_out_dir(
    path: str | os.PathLike,
    option: str = "out",
    *,
    command: str | None = None,
    force: bool = False,
    inputs: tuple | list = (),
) -> Path:
    """Check that folder ``path`` exists and is writable, or could be created; create nothing.

    With ``command``, also what ``atomic_dir`` will check after the work (``kvscope.outdir.plan``: a
    non-empty folder kvscope did not write is refused unless ``force``), and that ``path`` is not, and
    does not hold, one of ``inputs``. Every refusal is a one-line ``UsageError`` naming ``option``.
    """
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise UsageError(f"cannot write {option} {p}: it exists and is not a folder", param=option)
    base = _nearest_existing(p)
    if not base.is_dir():
        raise UsageError(f"cannot write {option} {p}: {base} is not a folder", param=option)
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {option} {p}: {base} is not writable", param=option)
    if command is not None:
        outdir.check_inputs(p, list(inputs), command, option)
        outdir.plan(p, command, force, option)
    return p


def check_out_file(path: str | os.PathLike, option: str) -> Path:
    """Check that file ``path`` can be written (its folder exists and is writable, and ``path`` is absent or
    a regular file, or a link to one: never a device, FIFO or socket); create nothing."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"cannot write {option} {p}: it is a folder", param=option)
    _check_regular(p, f"{option} {p}")
    if not parent.is_dir():
        raise UsageError(f"cannot write {option} {p}: directory {parent} does not exist", param=option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {option} {p}: directory {parent} is not writable", param=option)
    return p


def _check_regular(p: Path, where: str) -> None:
    """Refuse replacing anything but a regular file (``/dev/null``, a FIFO, a link to one)."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return  # absent, or a dangling link: replaced by a new file
    except OSError as exc:
        raise UsageError(f"cannot write {where}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {where}: it is not a regular file (devices, FIFOs and sockets are refused)")


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


def _missing_parents(parent: Path) -> list[Path]:
    """The folders of ``parent`` that do not exist yet (outermost first)."""
    missing = []
    p = Path(os.path.abspath(parent))
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    return list(reversed(missing))


def _remove_created(created: list[Path]) -> None:
    for p in reversed(created):
        with contextlib.suppress(OSError):
            p.rmdir()  # only if still empty


# ----------------------------------------------------------------------------- temporaries


def _tmp_name(dest: Path, tag: str, suffix: str = "") -> str:
    return f".{dest.name}.{os.getpid()}-{tag}.tmp{suffix}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def _older_than(p: Path, seconds: float) -> bool:
    import time

    try:
        return time.time() - os.lstat(p).st_mtime > seconds
    except OSError:
        return False


_remove = outdir.remove


def clean_stale(dest: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``dest`` left by writers that died; restore a backup if ``dest`` is missing.

    Returns what was removed. A temporary of a live process (another run in progress) is left alone.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.(\d+)-([A-Za-z0-9_]+)\.tmp(\.\w+)?$")
    removed: list[Path] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    legacy = re.compile(rf"^\.{re.escape(dest.name)}\.(old(\.\d+)?|[a-z0-9_]{{8}}(\.tmp|\.\w+)?)$")
    for name in sorted(names, key=lambda n: "old" not in n):  # backups first
        m, old = pattern.match(name), legacy.match(name)
        if m is not None and _pid_alive(int(m.group(1))):
            continue
        if m is None and (old is None or not _older_than(parent / name, LEGACY_AGE_S)):
            continue
        p = parent / name
        is_backup = m.group(2) == "old" if m else (old.group(1) == "old" or old.group(2) is not None)
        if is_backup and not os.path.lexists(dest):
            with contextlib.suppress(OSError):
                os.rename(p, dest)  # a crash between the fallback's two renames: put the old output back
                continue
        _remove(p)
        removed.append(p)
    return removed


# ----------------------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is renamed onto ``dest``.

    The temporary keeps ``suffix`` as its last extension (so a library choosing a format by the file
    name sees it). On any exception the temporary is removed and ``dest`` is left untouched.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {dest}: directory {parent} does not exist")
    _check_regular(dest, str(dest))
    clean_stale(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}-", suffix=".tmp" + suffix, dir=parent)
    except OSError as exc:
        raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _step("written")
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


# ----------------------------------------------------------------------------- atomic folders


@contextlib.contextmanager
def atomic_dir(
    dest: str | os.PathLike, make_parents: bool = True, *, command: str | None = "kvscope", force: bool = False
) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success its files go to ``dest``.

    Ownership (``kvscope.outdir``): ``dest`` new, or carrying the marker of earlier kvscope runs, is
    swapped in whole, keeping every entry this ``command`` did not write there before (another command's
    files, a user's file added later: hard-linked into the new folder); an empty folder is filled; a
    non-empty folder without the marker is refused (``UsageError``) unless ``force``, which replaces it
    whole. ``command=None`` writes no marker (a snapshot, checked by its caller, with ``force``).
    On any exception (SIGTERM and SIGHUP included, which the CLI turns into one) the temporary folder and
    any parent folder created for it are removed and ``dest`` is left as it was. With
    ``make_parents=False`` a missing parent is a ``UsageError``.
    """
    p = outdir.plan(dest, command or "snapshot", force)
    dest = p.dest
    parent = dest.parent
    if not make_parents and not parent.is_dir():
        raise UsageError(f"cannot write {dest}: directory {parent} does not exist")
    created = _missing_parents(parent)
    tmp: Path | None = None
    try:
        ensure_dir(parent)
        clean_stale(dest)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}-", suffix=".tmp", dir=parent))
        except OSError as exc:
            raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from None
        _step("tmp")
        yield tmp
        _step("written")
        written = sorted(n for n in os.listdir(tmp) if n != outdir.MARKER)
        outdir.check_names(p, written)
        if command is not None:
            (tmp / outdir.MARKER).write_text(outdir.marker_text(outdir.owners_after(p, written)), encoding="utf-8")
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        if p.mode == "fill":
            outdir.fill(tmp, p, written)
        else:
            for name in p.keep:
                outdir.carry(dest / name, tmp / name)
            replace_dir(tmp, dest)
    except BaseException:
        if tmp is not None:
            _remove(tmp)
        _remove_created(created)
        raise


def replace_dir(src: Path, dest: Path) -> None:
    """Put folder ``src`` at ``dest`` and delete what ``dest`` held; ``dest`` is never missing."""
    if not os.path.lexists(dest):
        _step("swap")
        os.rename(src, dest)
        return
    _step("swap")
    if exchange(src, dest):
        _step("swapped")
        _remove(src)  # now holds the old output
        return
    old = dest.with_name(_tmp_name(dest, "old"))
    os.rename(dest, old)
    _step("moved-old")
    os.rename(src, dest)
    _step("swapped")
    _remove(old)
