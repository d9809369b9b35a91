"""``KVSnapshot``: one captured KV cache, with what is needed to read it.

Layout: ``keys[layer]`` and ``values[layer]`` are float32 tensors of shape
``[kv_head, position, head_dim]``, taken exactly as the model cached them (keys are post-RoPE).
A layer whose cache keeps fewer slots than there are tokens (a sliding window) holds the last
``keys[layer].shape[1]`` positions; ``layer_positions(layer)`` says which.

On disk a snapshot is a folder ``NAME.kvs/`` with ``tensors.safetensors`` and ``snapshot.json``
(``format_version`` 2: model facts, token strings, SHA-256 of the tensor file and of the manifest
itself), written atomically and read by a validating loader: see ``kvscope.snapshot_format`` for the
format, the checks, and how version-1 snapshots load. Never pickle.
"""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kvscope import __version__
from kvscope.errors import KvscopeError, UsageError
from kvscope.fileio import to_jsonable
from kvscope.models import ModelInfo
from kvscope.snapshot_format import (
    FORMAT_VERSION,
    LAYERED,
    MAX_META_BYTES,
    META_FILE,
    SINGLE,
    TENSOR_FILE,
    nonfinite_names,
    read_manifest,
    read_tensors,
    seal,
    sha256_file,
)

log = logging.getLogger("kvscope")
__all__ = ["KVSnapshot", "FORMAT_VERSION", "META_FILE", "TENSOR_FILE"]


@dataclass
class KVSnapshot:
    """A captured KV cache. Shapes (P = positions, L = layers):

    - ``keys[l]``, ``values[l]``: ``[kv_head, P_l, head_dim]`` float32, post-RoPE as cached.
    - ``token_ids``, ``positions``: ``[P]`` int64; ``special``: ``[P]`` bool; ``tokens``: P strings.
    - ``pre_rope_keys[l]`` (optional): ``[kv_head, P, head_dim]``, the k_proj output before RoPE.
    - ``queries[l]`` (optional): ``[q_head, P, head_dim]``, post-RoPE, as used by attention.
    - ``attention_received`` (optional): ``[L, kv_head, P]``: for each key position, the summed
      softmax probability given to it by every query position of every q_head in that kv_head's
      group. ``attention_counts`` ``[L, P]``: how many (q_head, query position) pairs could see it.
      Their ratio is the mean attention a key receives.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    token_ids: torch.Tensor
    tokens: list[str]
    special: torch.Tensor
    positions: torch.Tensor
    info: ModelInfo
    text: str = ""
    pre_rope_keys: list[torch.Tensor] | None = None
    queries: list[torch.Tensor] | None = None
    attention_received: torch.Tensor | None = None
    attention_counts: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    @property
    def n_layers(self) -> int:
        return len(self.keys)

    @property
    def n_positions(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def has_attention(self) -> bool:
        return self.attention_received is not None

    def layer_positions(self, layer: int) -> torch.Tensor:
        """Absolute positions ``[P_l]`` held by ``layer``'s slots (the last P_l tokens)."""
        return self.positions[self.positions.shape[0] - self.keys[layer].shape[1] :]

    def stacked(self, which: str = "keys") -> torch.Tensor:
        """``[layer, kv_head, position, head_dim]``; only when every layer holds every position."""
        tensors = getattr(self, which)
        if tensors is None:
            raise KvscopeError(f"this snapshot has no {which}")
        if len({t.shape for t in tensors}) != 1:
            raise KvscopeError("layers hold different numbers of positions (sliding window); index per layer")
        return torch.stack(tensors)

    def mean_attention(self) -> torch.Tensor:
        """``[layer, kv_head, position]``: attention received per query that could see the key."""
        if self.attention_received is None or self.attention_counts is None:
            raise KvscopeError("this snapshot was captured without attention (capture it with attention=True)")
        return self.attention_received / self.attention_counts.clamp(min=1).unsqueeze(1)

    def nbytes(self) -> int:
        """Bytes of the K and V tensors held (float32 copies)."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    # ------------------------------------------------------------------ notebooks
    def summary(self) -> list[tuple[str, str]]:
        """(name, value) rows describing the snapshot, for ``__repr__`` and ``_repr_html_``."""
        lengths = sorted({t.shape[1] for t in self.keys})
        held = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]} (sliding window)"
        extras = [
            n
            for n, v in (
                ("attention", self.attention_received),
                ("pre_rope_keys", self.pre_rope_keys),
                ("queries", self.queries),
            )
            if v is not None
        ]
        preview = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return [
            ("model", self.info.name),
            ("tokens", str(self.n_positions)),
            ("layers x kv_heads x head_dim", f"{self.n_layers} x {self.info.kv_heads} x {self.info.head_dim}"),
            ("positions held per layer", held),
            ("KV bytes (float32)", f"{self.nbytes():,}"),
            ("extras", ", ".join(extras) or "none"),
            ("text", repr(preview)),
        ]

    def __repr__(self) -> str:
        s = dict(self.summary())
        return (
            f"KVSnapshot(model={self.info.name!r}, tokens={self.n_positions}, layers={self.n_layers}, "
            f"kv_heads={self.info.kv_heads}, head_dim={self.info.head_dim}, extras=[{s['extras']}])"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in self.summary()
        )
        return f"<table><caption>KVSnapshot</caption>{rows}</table>"

    def check_finite(self, param: str = "snapshot") -> None:
        """``UsageError`` naming ``param`` when a tensor holds NaN or infinite values (saved as such, and
        recorded in ``nonfinite``): the analyses need finite numbers."""
        bad = nonfinite_names({n: t for n, t in self.tensor_dict().items() if t.is_floating_point()})
        if bad:
            raise UsageError(
                f"{param} holds NaN or infinite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}: "
                "the analyses need finite numbers (capture it again, e.g. with dtype float32)"
            )

    # ------------------------------------------------------------------ files
    def tensor_dict(self) -> dict[str, torch.Tensor]:
        """The tensors as saved; index-like fields in the dtype the loader demands (``_INT_NAMES``), so a
        snapshot built by hand with float counts saves to a file that loads."""
        out: dict[str, torch.Tensor] = {}
        for name in LAYERED:
            for i, t in enumerate(getattr(self, name) or []):
                out[f"{name}.{i}"] = t.detach().to("cpu").contiguous()
        for name in SINGLE:
            t = getattr(self, name)
            if t is not None:
                t = t.detach().to("cpu")
                out[name] = (
                    t.round().long() if name == "attention_counts" and t.is_floating_point() else t
                ).contiguous()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a ``.kvs`` folder) atomically: it holds the complete old or the complete new
        snapshot at every instant, even if the process is killed (``kvscope.fileio.atomic_dir``)."""
        from kvscope.fileio import atomic_dir

        dest = Path(path)
        if os.path.lexists(dest) and not (dest.is_dir() and (dest / META_FILE).is_file()):
            raise UsageError(f"cannot write snapshot {dest}: it exists and is not a kvscope snapshot")
        tensors = self.tensor_dict()
        try:
            with atomic_dir(dest, make_parents=False, command=None, force=True) as tmp:
                _save_tensors(tensors, tmp / TENSOR_FILE, dest)
                meta = self._manifest(tmp / TENSOR_FILE, tensors)
                text = json.dumps(meta, indent=1, allow_nan=False)
                if len(text.encode("utf-8")) > MAX_META_BYTES:
                    raise UsageError(
                        f"cannot write snapshot {dest}: its text and tokens exceed "
                        f"{MAX_META_BYTES:,} bytes of {META_FILE}"
                    )
                (tmp / META_FILE).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise KvscopeError(f"cannot write snapshot {dest}: {exc.strerror or exc}") from None
        return dest

    def _manifest(self, tensor_file: Path, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        return seal(
            {
                "format_version": FORMAT_VERSION,
                "kvscope_version": __version__,
                "layout": "keys[layer][kv_head, position, head_dim], post-RoPE, float32",
                "model": self.info.to_dict(),
                "text": self.text,
                "tokens": list(self.tokens),
                "n_layers": self.n_layers,
                "tensors": sorted(tensors),
                "files": {TENSOR_FILE: {"sha256": sha256_file(tensor_file), "bytes": tensor_file.stat().st_size}},
                "nonfinite": nonfinite_names(tensors),
                "meta": to_jsonable(self.meta),
            }
        )

    @classmethod
    def load(cls, path: str | os.PathLike, require_finite: bool = False) -> KVSnapshot:
        """Read and validate a snapshot (format 1 or 2). A damaged or edited one raises
        ``CorruptSnapshotError`` ("snapshot PATH is corrupted: WHAT", exit 2) before any large allocation.
        NaN or infinite values recorded at save time give a warning, or with ``require_finite`` a
        ``UsageError`` before the tensors are read."""
        src = Path(path)
        meta = read_manifest(src)
        flagged = (meta.get("nonfinite") or []) if meta["format_version"] >= 2 else []
        if flagged and require_finite:
            raise UsageError(
                f"snapshot {src} holds NaN or infinite values in {', '.join(flagged[:3])}: the analyses need "
                "finite numbers (capture it again, e.g. with dtype float32)"
            )
        tensors = read_tensors(src, meta)
        if flagged:
            log.warning("snapshot %s holds NaN or infinite values in %s", src, ", ".join(flagged[:4]))
        return cls._from_parts(meta, tensors)

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], t: dict[str, torch.Tensor]) -> KVSnapshot:
        n = meta["n_layers"]

        def layered(name: str) -> list[torch.Tensor] | None:
            return [t[f"{name}.{i}"] for i in range(n)] if f"{name}.0" in t else None

        return cls(
            keys=layered("keys"),
            values=layered("values"),
            token_ids=t["token_ids"],
            tokens=list(meta["tokens"]),
            special=t["special"],
            positions=t["positions"],
            info=ModelInfo.from_dict(meta["model"]),
            text=meta["text"],
            pre_rope_keys=layered("pre_rope_keys"),
            queries=layered("queries"),
            attention_received=t.get("attention_received"),
            attention_counts=t.get("attention_counts"),
            meta=meta.get("meta", {}),
        )


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, dest: Path) -> None:
    """``safetensors`` ``save_file`` with the usual file mode (it creates 0600 files) and its errors (a full
    disk, an I/O error: ``SafetensorError``, not ``OSError``) as one line naming the snapshot."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from kvscope.fileio import current_umask

    try:
        save_file(tensors, str(path))
    except SafetensorError as exc:
        text = str(exc)
        why = "no space left on device" if "StorageFull" in text or "No space left" in text else text[:160]
        raise KvscopeError(f"cannot write snapshot {dest}: {why}") from None
    os.chmod(path, 0o666 & ~current_umask())
