"""Who owns an output folder: kvscope replaces or adds to a folder only where it wrote every file it removes.

A folder that kvscope creates gets a marker file, ``.kvscope-out.json``: for each command that wrote
into the folder, the names (top-level entries) it wrote. ``plan(dest, command)`` decides, before any
work, what a run of ``command`` may do with ``dest``:

- ``dest`` does not exist: it is created (swapped in whole, ``fileio.atomic_dir``);
- ``dest`` is an empty folder: it is used (the files are moved into it);
- ``dest`` carries the marker: the command's own earlier files are replaced, every other entry
  (another command's files, a file the user added) is kept, and the whole is swapped in at once;
- ``dest`` holds anything else (a user's files, a ``.git`` folder, a snapshot): refused with a
  one-line ``UsageError`` naming the folder, unless ``force`` (then it is replaced whole).

``check_inputs(dest, inputs)`` refuses an output folder that is, or lies above, an input path,
unless that input is a file another command recorded in the marker (it is kept, so nothing is lost).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvscope.errors import UsageError

RENAME_EXCHANGE = 2  # from <linux/fs.h>
AT_FDCWD = -100
MARKER = ".kvscope-out.json"
MAX_MARKER_BYTES = 1024 * 1024
FORCE_HINT = "pass --force to replace it"  # the CLI's wording; the library says force=True


@dataclass
class Plan:
    """What a run may do with its output folder.

    ``mode``: ``"new"`` (absent), ``"fill"`` (empty folder, or the current folder: files moved in one by
    one), ``"swap"`` (marked, or ``force``: swapped in whole). ``owners``: command -> names it wrote
    (from the marker). ``keep``: entries of ``dest`` that this run must carry over untouched.
    """

    dest: Path
    command: str
    mode: str
    owners: dict[str, list[str]] = field(default_factory=dict)
    keep: list[str] = field(default_factory=list)

    def own(self) -> set[str]:
        """The names this command wrote there last time (replaced or removed by this run)."""
        return set(self.owners.get(self.command, []))


def read_marker(folder: str | os.PathLike) -> dict[str, list[str]] | None:
    """Command -> names it wrote, from ``folder``'s marker; None if there is no valid marker."""
    p = Path(folder) / MARKER
    try:
        if not p.is_file() or p.is_symlink() or p.stat().st_size > MAX_MARKER_BYTES:
            return None
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    commands = data.get("commands") if isinstance(data, dict) else None
    if not isinstance(commands, dict):
        return None
    return {
        str(c): [n for n in names if isinstance(n, str) and _plain_name(n)]
        for c, names in commands.items()
        if isinstance(names, list)
    }


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..", MARKER) and "/" not in name and "\0" not in name


def marker_text(owners: dict[str, list[str]]) -> str:
    """The marker's JSON: which command wrote which names."""
    clean = {c: sorted(set(n)) for c, n in sorted(owners.items()) if n}
    return json.dumps({"written_by": "kvscope", "commands": clean}, indent=1) + "\n"


def is_current_or_above(dest: Path) -> bool:
    """True when ``dest`` is the working folder or one above it (swapping it would pull it away)."""
    try:
        cwd = Path(os.getcwd()).resolve()
    except OSError:
        return False
    d = dest.resolve()
    return d == cwd or d in cwd.parents


def plan(dest: str | os.PathLike, command: str, force: bool = False, option: str = "out") -> Plan:
    """What a run of ``command`` may do with folder ``dest`` (see the module docstring).

    Raises a one-line ``UsageError`` naming ``option`` and ``dest`` when ``dest`` is a non-empty
    folder kvscope did not write (and ``force`` is not given), or when ``force`` would replace the
    working folder.
    """
    dest = Path(os.path.abspath(dest))
    if dest.is_symlink() and dest.is_dir():
        dest = dest.resolve()  # a link to a folder elsewhere: write there, keep the link
    if not os.path.lexists(dest):
        return Plan(dest, command, "new")
    if not dest.is_dir():
        raise UsageError(f"cannot write {option} {dest}: it exists and is not a folder", param=option)
    try:
        entries = sorted(os.listdir(dest))
    except OSError as exc:
        raise UsageError(f"cannot write {option} {dest}: {exc.strerror or exc}", param=option) from None
    here = is_current_or_above(dest)
    if force:
        if here and entries:
            raise UsageError(
                f"cannot write {option} {dest}: it is the working folder or above it; force would delete it",
                param=option,
            )
        return Plan(dest, command, "swap")
    if not entries:
        return Plan(dest, command, "fill")
    owners = read_marker(dest)
    if owners is None:
        hint = FORCE_HINT if option.startswith("-") else "pass force=True to replace it"
        raise UsageError(
            f"cannot write {option} {dest}: the folder holds files kvscope did not write ({len(entries)} entries, "
            f"no {MARKER}); choose a new or empty folder, or {hint}",
            param=option,
        )
    mine = set(owners.get(command, []))
    keep = [e for e in entries if e != MARKER and e not in mine]
    return Plan(dest, command, "fill" if here else "swap", owners, keep)


def check_names(p: Plan, written: list[str], option: str = "out") -> None:
    """Refuse (``UsageError``) a written name that would replace an entry this command does not own."""
    clash = sorted(set(written) & set(p.keep))
    if clash:
        who = [c for c, names in p.owners.items() if clash[0] in names]
        by = f"kvscope {who[0]}" if who else "someone else (not kvscope)"
        raise UsageError(
            f"cannot write {option} {p.dest}: {clash[0]} there was written by {by}; choose another folder", param=option
        )


def owners_after(p: Plan, written: list[str]) -> dict[str, list[str]]:
    """The marker's content once ``written`` (this command's names) are in ``p.dest``."""
    owners = {c: [n for n in names if n in p.keep] for c, names in p.owners.items() if c != p.command}
    owners[p.command] = sorted(written)
    return owners


def carry(src: Path, dst: Path) -> None:
    """Put a copy of entry ``src`` at ``dst`` sharing its data (hard links; a plain copy where links fail)."""
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def check_inputs(dest: str | os.PathLike, inputs: list, command: str, option: str = "out") -> None:
    """Refuse (``UsageError``) an output folder that is, or lies above, one of ``inputs``.

    An input inside ``dest`` that another command than ``command`` recorded in the marker is allowed
    (this run keeps it, so nothing is lost).
    """
    d = Path(os.path.abspath(dest)).resolve()
    owners = {c: n for c, n in (read_marker(d) or {}).items() if c != command}
    for inp in inputs:
        if inp is None:
            continue
        i = Path(os.path.abspath(inp)).resolve()
        if i != d and d not in i.parents:
            continue
        top = i.relative_to(d).parts[0] if i != d else None
        if top is not None and any(top in names for names in owners.values()):
            continue
        what = "is" if i == d else "holds"
        raise UsageError(
            f"cannot write {option} {dest}: it {what} the input {inp}; choose another folder", param=option
        )


def remove(p: Path) -> None:
    """Delete file, link or folder ``p`` (whatever is there; errors ignored)."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


def fill(tmp: Path, p: Plan, written: list[str]) -> None:
    """Move the entries of ``tmp`` into the existing folder ``p.dest`` one by one, the marker last, and
    remove the names this command wrote there before and not this time; then remove ``tmp``."""
    for name in written:
        target = p.dest / name
        if target.is_dir() and not target.is_symlink():
            remove(target)  # this command's own folder (check_names refused any other)
        os.replace(tmp / name, target)
    for name in p.own() - set(written):
        remove(p.dest / name)
    if (tmp / MARKER).exists():
        os.replace(tmp / MARKER, p.dest / MARKER)
    remove(tmp)


_renameat2: Any = None


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names ``a`` and ``b`` with ``renameat2(RENAME_EXCHANGE)``.

    Returns False where the call is unavailable (not Linux, old libc or kernel, a file system that
    refuses it); raises ``OSError`` for other failures.
    """
    global _renameat2
    if _renameat2 is None:
        _renameat2 = _load_renameat2()
    if _renameat2 is False:
        return False
    ret = _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if ret == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _load_renameat2() -> Any:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn
