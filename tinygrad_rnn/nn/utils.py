"""Gradient clipping (PyTorch's torch.nn.utils names): clip_grad_norm_, clip_grad_value_.

Imports: the public core. Both work in place on each parameter's `.grad.data` (NumPy or CuPy,
via the array's own module) and keep the gradient's dtype. Clipping is the standard cure for the
exploding gradients of long unrolled RNNs (Pascanu et al. 2013).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from .. import backend
from ..errors import GradError
from ..tensor import Tensor


def _grads(parameters: Tensor | Iterable[Tensor], op: str) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise TypeError(f"{op}: parameters must be a Tensor or an iterable of Tensors (e.g. "
                        f"model.parameters()), got {type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: parameters[{i}] is a {type(p).__name__}, expected a Tensor")
    return [p for p in params if p.grad is not None]


def _number(op: str, name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}") from None


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm is at most max_norm.

    total = ||(||g_1||_p, ..., ||g_k||_p)||_p  (the p-norm of all gradients as one vector; p=inf
    gives max |g|), then every g is multiplied by min(1, max_norm / (total + 1e-6)).
    Returns the total norm before clipping as a 0-d Tensor (on the first gradient's device, in its
    dtype), as PyTorch does. Parameters without a gradient are skipped.
    """
    op = "clip_grad_norm_"
    max_norm = _number(op, "max_norm", max_norm)
    norm_type = _number(op, "norm_type", norm_type)
    if max_norm < 0 or math.isnan(max_norm):
        raise ValueError(f"{op}: max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"{op}: norm_type must be > 0 (e.g. 2.0, 1.0 or float('inf')), got {norm_type}")
    params = _grads(parameters, op)
    if not params:
        return Tensor(0.0)
    first = params[0].grad.data
    xp, device, dtype = backend.array_module(first), backend.device_of(first), first.dtype

    def norm(a: Any, scale: float = 1.0) -> Any:
        m = backend.array_module(a)
        a = m.abs(a)
        if scale != 1.0:
            a = a / m.asarray(scale, dtype=a.dtype)
        if math.isinf(norm_type):
            return a.max() if a.size else m.zeros((), dtype=a.dtype)
        if norm_type == 2.0:
            return m.sqrt((a * a).sum())
        if norm_type == 1.0:
            return a.sum()
        return (a ** norm_type).sum() ** (1.0 / norm_type)

    def total_norm(scale: float = 1.0) -> float:
        # Per-gradient norms, gathered on the first gradient's device (grads may live on several GPUs).
        norms = xp.stack([backend.to_device(xp.asarray(norm(p.grad.data, scale)), device).astype(dtype)
                          for p in params])
        return float(norm(norms)) * scale

    with backend.np.errstate(over="ignore"):  # overflow is detected and handled just below
        total_f = total_norm()
    if math.isinf(total_f) and not math.isinf(norm_type):
        # Exploding but finite gradients can overflow the sum of powers (in float32 already for
        # norms above ~1.8e19): measure in units of the largest |g|, where nothing overflows.
        biggest = max(float(backend.array_module(p.grad.data).abs(p.grad.data).max())
                      for p in params if p.grad.data.size)
        if math.isfinite(biggest) and biggest > 0:
            total_f = total_norm(biggest)
    if error_if_nonfinite and not math.isfinite(total_f):
        bad = [p.name or f"parameters[{i}]" for i, p in enumerate(params)
               if not bool(backend.array_module(p.grad.data).isfinite(p.grad.data).all())]
        raise GradError(f"{op}: the total norm of order {norm_type} of the gradients is {total_f}, so "
                        f"it cannot be clipped (non-finite gradients in: {bad}). Look for the cause "
                        f"with tinygrad_rnn.detect_anomaly(), lower the learning rate, or pass "
                        f"error_if_nonfinite=False to scale by the non-finite norm anyway")
    # Scale even when the factor is 1 (multiplying by 1.0 changes nothing) so that the work does
    # not depend on the data; the factor is cast to each gradient's dtype so float32 stays float32.
    coef = min(max_norm / (total_f + 1e-6), 1.0)
    for p in params:
        g = p.grad.data
        g *= backend.array_module(g).asarray(coef, dtype=g.dtype)
    return Tensor(xp.asarray(total_f, dtype=dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    op = "clip_grad_value_"
    c = _number(op, "clip_value", clip_value)
    if c < 0 or math.isnan(c):
        raise ValueError(f"{op}: clip_value must be >= 0, got {c}")
    for p in _grads(parameters, op):
        g = p.grad.data
        m = backend.array_module(g)
        m.clip(g, m.asarray(-c, dtype=g.dtype), m.asarray(c, dtype=g.dtype), out=g)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
