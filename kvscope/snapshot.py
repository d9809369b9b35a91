"""``KVSnapshot``: one captured KV cache, with what is needed to read it.

Layout: ``keys[layer]`` and ``values[layer]`` are float32 tensors of shape
``[kv_head, position, head_dim]``, taken exactly as the model cached them (keys are post-RoPE).
A layer whose cache keeps fewer slots than there are tokens (a sliding window) holds the last
``keys[layer].shape[1]`` positions; ``layer_positions(layer)`` says which.

On disk a snapshot is a folder ``NAME.kvs/`` with ``tensors.safetensors`` and ``snapshot.json``
(``format_version``, model facts, token strings and a SHA-256 of the tensor file). Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kvscope import __version__
from kvscope.errors import KvscopeError, UsageError
from kvscope.fileio import current_umask
from kvscope.models import ModelInfo

FORMAT_VERSION = 1
TENSOR_FILE = "tensors.safetensors"
META_FILE = "snapshot.json"
_LAYERED = ("keys", "values", "pre_rope_keys", "queries")
_SINGLE = ("token_ids", "special", "positions", "attention_received", "attention_counts")


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
        return self.positions[self.positions.shape[0] - self.keys[layer].shape[1]:]

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
            raise KvscopeError("this snapshot was captured without attention (use --attention)")
        return self.attention_received / self.attention_counts.clamp(min=1).unsqueeze(1)

    def nbytes(self) -> int:
        """Bytes of the K and V tensors held (float32 copies)."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    # ------------------------------------------------------------------ files
    def tensor_dict(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in _LAYERED:
            for i, t in enumerate(getattr(self, name) or []):
                out[f"{name}.{i}"] = t.detach().to("cpu").contiguous()
        for name in _SINGLE:
            t = getattr(self, name)
            if t is not None:
                out[name] = t.detach().to("cpu").contiguous()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a ``.kvs`` folder) atomically: a reader sees the old one or the new one."""
        from safetensors.torch import save_file

        dest = Path(path)
        parent = dest.parent if str(dest.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"cannot write snapshot {dest}: directory {parent} does not exist")
        if dest.exists() and not (dest / META_FILE).is_file():
            raise UsageError(f"cannot write snapshot {dest}: it exists and is not a kvscope snapshot")
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
        except OSError as exc:
            raise UsageError(f"cannot write snapshot {dest}: {exc.strerror or exc}") from None
        try:
            tensors = self.tensor_dict()
            save_file(tensors, str(tmp / TENSOR_FILE))
            meta = self._meta_json(_sha256(tmp / TENSOR_FILE), sorted(tensors))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
            _swap_dir(tmp, dest)
        except OSError as exc:
            raise KvscopeError(f"cannot write snapshot {dest}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def _meta_json(self, digest: str, names: list[str]) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "kvscope_version": __version__,
            "layout": "keys[layer][kv_head, position, head_dim], post-RoPE, float32",
            "model": self.info.to_dict(), "text": self.text, "tokens": list(self.tokens),
            "n_layers": self.n_layers, "tensors": names, "sha256": digest, "meta": self.meta,
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KVSnapshot":
        """Read a snapshot written by ``save``; any damage raises a one-line ``KvscopeError``."""
        src = Path(path)
        meta = _read_meta(src)
        tensors = _read_tensors(src, meta)
        missing = [n for n in meta["tensors"] if n not in tensors]
        missing += [n for n in ("token_ids", "special", "positions") if n not in tensors]
        missing += [f"{kv}.{i}" for kv in ("keys", "values") for i in range(meta["n_layers"])
                    if f"{kv}.{i}" not in tensors]
        if missing:
            raise KvscopeError(f"snapshot {src} is missing tensor(s): {', '.join(sorted(set(missing)))}")
        return cls._from_parts(meta, tensors)

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], t: dict[str, torch.Tensor]) -> "KVSnapshot":
        n = meta["n_layers"]

        def layered(name: str) -> list[torch.Tensor] | None:
            return [t[f"{name}.{i}"] for i in range(n)] if f"{name}.0" in t else None

        snap = cls(keys=layered("keys"), values=layered("values"), token_ids=t["token_ids"],
                   tokens=list(meta["tokens"]), special=t["special"], positions=t["positions"],
                   info=ModelInfo.from_dict(meta["model"]), text=meta.get("text", ""),
                   pre_rope_keys=layered("pre_rope_keys"), queries=layered("queries"),
                   attention_received=t.get("attention_received"),
                   attention_counts=t.get("attention_counts"), meta=meta.get("meta", {}))
        if len(snap.tokens) != snap.n_positions:
            raise KvscopeError("snapshot is inconsistent: token strings and token ids differ in count")
        return snap


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _swap_dir(new: Path, dest: Path) -> None:
    """Move folder ``new`` onto ``dest``, replacing an older snapshot there."""
    if not dest.exists():
        os.replace(new, dest)
        return
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def _read_meta(src: Path) -> dict[str, Any]:
    if not src.is_dir() or not (src / META_FILE).is_file():
        raise UsageError(f"{src} is not a kvscope snapshot (expected a folder with {META_FILE})")
    try:
        meta = json.loads((src / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KvscopeError(f"snapshot {src} is corrupted: {META_FILE} is not valid JSON ({exc})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise KvscopeError(f"snapshot {src} has format_version {version!r}; this kvscope "
                           f"({__version__}) reads format_version {FORMAT_VERSION}")
    for key in ("model", "tokens", "n_layers", "tensors", "sha256"):
        if key not in meta:
            raise KvscopeError(f"snapshot {src} is corrupted: {META_FILE} lacks {key!r}")
    return meta


def _read_tensors(src: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = src / TENSOR_FILE
    if not path.is_file():
        raise KvscopeError(f"snapshot {src} is missing {TENSOR_FILE}")
    if _sha256(path) != meta["sha256"]:
        raise KvscopeError(f"snapshot {src} is corrupted: {TENSOR_FILE} does not match its checksum")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise KvscopeError(f"snapshot {src} is corrupted: {exc}") from None
