"""Sharding samples across processes started by ``accelerate launch`` (or ``torchrun``).

The launcher sets ``RANK`` and ``WORLD_SIZE``; each process takes every ``WORLD_SIZE``-th sample
starting at its rank, and the main process gathers the results (``torch.distributed``'s
``all_gather_object`` over a gloo group, which works on CPU and GPU alike). Sample generation and
every seeded choice depend only on the sample, so the gathered results equal a one-process run.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T")


def world() -> tuple[int, int]:
    """``(rank, world_size)`` from the launcher's environment; ``(0, 1)`` when not launched."""
    try:
        return int(os.environ.get("RANK", "0")), max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 0, 1


def shard(items: list[T], rank: int, size: int) -> list[T]:
    """Every ``size``-th item starting at ``rank``."""
    return items[rank::size]


def gather(obj: Any, size: int) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` for one process)."""
    if size == 1:
        return [obj]
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def barrier_done(size: int) -> None:
    """Wait for every process, then leave the process group (so no process exits early)."""
    if size == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
