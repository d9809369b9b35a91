"""Latent-space realignment: map a last-layer hidden state back to input-embedding space.

LatentMAS (Zou et al., arXiv 2511.20639, Sec. 3.1) feeds the final hidden state ``h`` (after the final
norm, i.e. what the LM head reads) back as the next input embedding, mapped by

    W_a = (W_out^T W_out + lambda I)^-1 W_out^T W_in,   lambda = 1e-5,

the ridge solution of ``W_out W_a ~= W_in`` (W_out = LM-head rows, W_in = input-embedding rows, both
``[vocab, hidden]``): W_a sends each token's output row to its input row. The result is rescaled to the
mean input-embedding row norm. Without realignment W_a is the identity (skipped), but the rescale still
applies.
W_a is computed once per model: kept in memory and on disk under ``kvscope.models.cache_dir()/mas``,
keyed by a hash of both embedding matrices.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.errors import KvscopeError

log = logging.getLogger("kvscope")

RIDGE_LAMBDA = 1e-5
_MEMORY: dict[str, Realigner] = {}


def ridge_matrix(w_out: torch.Tensor, w_in: torch.Tensor, lam: float = RIDGE_LAMBDA) -> torch.Tensor:
    """``(W_out^T W_out + lam I)^-1 W_out^T W_in`` ``[hidden, hidden]``, solved in float64."""
    a = w_out.double()
    gram = a.T @ a + lam * torch.eye(a.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, a.T @ w_in.double()).float()


@dataclass
class Realigner:
    """``matrix`` ``[hidden, hidden]`` float32, or None for the identity (no product is computed), and
    ``target_norm``. Build it with :meth:`to` on the model's device so no step copies it."""

    matrix: torch.Tensor | None
    target_norm: float

    def to(self, device: Any) -> Realigner:
        return self if self.matrix is None else Realigner(self.matrix.to(device), self.target_norm)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``[batch, hidden]`` -> embeddings ``[batch, hidden]`` float32 of norm ``target_norm``."""
        a = hidden.float() if self.matrix is None else hidden.float() @ self.matrix
        return a * (self.target_norm / a.norm(dim=-1, keepdim=True).clamp(min=1e-6))


def embedding_matrices(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_in, W_out)``, each ``[vocab, hidden]`` float32 on CPU (rows beyond the shorter one dropped)."""
    w_in = model.get_input_embeddings().weight.detach().float().cpu()
    out = model.get_output_embeddings()
    w_out = out.weight.detach().float().cpu() if out is not None else w_in
    n = min(w_in.shape[0], w_out.shape[0])
    return w_in[:n], w_out[:n]


def _key(w_in: torch.Tensor, w_out: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in (w_in, w_out):
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def realigner(model: Any, realign: bool) -> Realigner:
    """The realigner of ``model``: ridge ``W_a`` with ``realign``, else identity; both rescale the norm."""
    w_in, w_out = embedding_matrices(model)
    target = float(w_in.norm(dim=1).mean())
    device = model.get_input_embeddings().weight.device
    if not realign:
        return Realigner(None, target)
    key = _key(w_in, w_out)
    if key not in _MEMORY:
        _MEMORY[key] = Realigner(_load_or_build(key, w_in, w_out), target)
    return _MEMORY[key].to(device)


def _load_or_build(key: str, w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    from safetensors.torch import load_file, save_file

    from kvscope.fileio import atomic_path
    from kvscope.models import cache_dir

    path = cache_dir() / "mas" / f"realign-{key}.safetensors"
    if path.is_file():
        try:
            return load_file(path)["w_a"]
        except Exception as exc:
            log.warning("ignoring unreadable realignment cache %s (%s)", path, exc)
    matrix = ridge_matrix(w_out, w_in)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file({"w_a": matrix.contiguous()}, str(tmp))
    except (OSError, KvscopeError) as exc:
        log.warning("could not cache the realignment matrix at %s: %s", path, exc)
    return matrix
