"""Composite functions built from primitive ops: no backward code here, autodiff derives it.

Imports: the public core (tensor, ops, autograd, backend). Equations are stated in the docstrings.
"""
from __future__ import annotations

from typing import Any

from .. import autograd, backend
from ..errors import DTypeError, ShapeError, fmt_shape
from ..ops import log_softmax, logsumexp, softmax  # also Tensor methods: one table, in ops._bind
from ..tensor import Tensor

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss", "mse_loss", "dropout",
           "linear"]


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def nll_loss(log_probs: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -log_probs[n, target[n]]. log_probs (N, C) or (N, C, d1, ...),
    target (N,) or (N, d1, ...) of integer class indices; targets equal to ignore_index are skipped
    (and not counted in the mean)."""
    tgt = target.data if isinstance(target, Tensor) else target
    if not backend.is_array(tgt):
        tgt = backend.np.asarray(tgt)
    if tgt.dtype.kind not in "iu":
        raise DTypeError(f"nll_loss/cross_entropy: target must hold integer class indices, got dtype "
                         f"{tgt.dtype}; convert with .long() (probabilities as targets are not supported)")
    if log_probs.ndim == 0:
        raise ShapeError("nll_loss/cross_entropy: input is a scalar; it must hold one score per class, "
                         "shape (C,) for one sample or (N, C) for a batch")
    if log_probs.ndim == 1:
        if tgt.size != 1:
            raise ShapeError(f"nll_loss/cross_entropy: input of shape {fmt_shape(log_probs.shape)} is "
                             f"one sample's {log_probs.shape[0]} class scores, so target must be one "
                             f"class index, got shape {fmt_shape(tgt.shape)}; for a batch of "
                             f"{tgt.shape[0] if tgt.ndim else tgt.size} samples pass input of shape (N, C)")
        log_probs, tgt = log_probs.unsqueeze(0), tgt.reshape(1)
    if log_probs.ndim > 2:  # (N, C, d...) -> (N*d..., C)
        c = log_probs.shape[1]
        perm = (0,) + tuple(range(2, log_probs.ndim)) + (1,)
        log_probs = log_probs.permute(*perm).reshape(-1, c)
        tgt = tgt.reshape(-1)
    n, c = log_probs.shape
    if tgt.shape != (n,):
        raise ShapeError(f"nll_loss/cross_entropy: input of shape {fmt_shape(log_probs.shape)} (N, C) "
                         f"needs target of shape ({n},), got {fmt_shape(tgt.shape)}")
    if backend.device_of(tgt) != log_probs.device:
        tgt = backend.to_device(tgt, log_probs.device)
    xp = backend.array_module(tgt)
    valid = tgt != ignore_index
    safe = xp.where(valid, tgt, 0)
    if tgt.size and (int(safe.min()) < 0 or int(safe.max()) >= c):
        bad = tgt[valid & ((tgt < 0) | (tgt >= c))]
        raise IndexError(f"nll_loss/cross_entropy: target value {int(bad.reshape(-1)[0])} is out of "
                         f"range for {c} classes (valid: 0..{c - 1}, or ignore_index={ignore_index})")
    picked = log_probs[xp.arange(n), safe]
    mask = Tensor._make(valid.astype(log_probs.dtype))
    losses = -picked * mask
    if reduction == "mean":  # mean over the non-ignored targets (NaN if all are ignored, as PyTorch)
        return losses.sum() / float(valid.sum())
    return _reduce(losses, reduction, "nll_loss")


def cross_entropy(input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """cross_entropy(logits, target) = nll_loss(log_softmax(logits, dim=1), target); logits (N, C)
    or (N, C, d...), target integer class indices (N,) or (N, d...)."""
    dim = 1 if input.ndim > 1 else 0
    with autograd.scope("loss", "cross_entropy"):  # drawings fold a loss's ops into one box
        return nll_loss(log_softmax(input, dim), target, ignore_index, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """mean((input - target)^2). Shapes must be equal: silently broadcasting (N,) against (N, 1)
    would average an N x N matrix of wrong pairs."""
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"mse_loss: input shape {fmt_shape(input.shape)} and target shape "
                         f"{fmt_shape(target.shape)} differ; reshape one (e.g. target.reshape"
                         f"{fmt_shape(input.shape)}) so they match exactly")
    with autograd.scope("loss", "mse_loss"):  # drawings fold a loss's ops into one box
        d = input - target
        return _reduce(d * d, reduction, "mse_loss")


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}; p=1 would zero everything "
                         f"(use p=0 or training=False to disable dropout)")
    if not training or p == 0.0:
        return x
    xp = backend.array_module(x.data)
    keep = backend.rng(x.device).random(x.shape, dtype=backend.np.float32) >= p
    return x * Tensor._make((keep / xp.asarray(1.0 - p, dtype=x.dtype)).astype(x.dtype))


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, weight of shape (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input has {x.shape[-1]} features (shape {fmt_shape(x.shape)}) but "
                         f"weight expects {weight.shape[-1]} (weight shape {fmt_shape(weight.shape)} "
                         f"= (out_features, in_features))")
    y = x @ weight.T
    return y + bias if bias is not None else y
