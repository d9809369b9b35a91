"""Owner names of the prune modes' files in an output folder's marker (``kvscope.outdir``).

Each mode's result writes its own files (``result.save(dir)``, ``kvscope.kit.results``) under
``command(mode)``, so a mode replaces only its own earlier files: the other modes' files, and other
commands' files, stay. Printing tables is the CLI's job (``kvscope.cli.prune``).
"""

from __future__ import annotations


def command(mode: str, scan: str | None = None) -> str:
    """The owner name a mode's files get in the folder's marker (``"prune --sweep"`` ...)."""
    return {"sweep": "prune --sweep", "scan": f"prune --scan {scan}", "leave_one_out": "prune --leave-one-out"}[mode]
