"""Central-difference gradient checking in float64, shipped with the library.

Imports: backend, tensor, autograd (public Tensor API only).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import autograd, backend
from .errors import fmt_shape
from .tensor import Tensor, float64


class GradcheckError(AssertionError):
    """Analytic and numerical gradients differ; the message names the input and element."""


def _outputs(fn: Callable, inputs: Sequence[Any]) -> list:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _gradients(fn: Callable, inputs: Sequence[Any], eps: float, seed: int) -> Iterator[tuple]:
    """Yield (input position, input, analytic grad, numerical grad) for each checked input.

    The outputs are reduced to L = sum_k <w_k, out_k> with fixed random weights w_k, so the whole
    Jacobian is exercised by one backward; L is differentiated numerically element by element.
    """
    xs = [Tensor._make(a.data.astype(float64, copy=True), True)
          if isinstance(a, Tensor) and a.requires_grad else a for a in inputs]
    check = [i for i, a in enumerate(xs) if isinstance(a, Tensor) and a.requires_grad]
    if not check:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, xs)
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point Tensor")
    weights = [backend.array_module(o.data).asarray(rng.standard_normal(o.shape), dtype=float64)
               for o in outs]
    loss = (outs[0] * Tensor._make(weights[0])).sum()
    for o, w in zip(outs[1:], weights[1:]):
        loss = loss + (o * Tensor._make(w)).sum()
    analytic = autograd.grad(loss, [xs[i] for i in check], allow_unused=True)

    def scalar() -> float:
        os_ = _outputs(fn, xs)  # with grad enabled: fn may itself differentiate (grad of grad)
        return float(sum(float((o.data.astype(float64) * w).sum()) for o, w in zip(os_, weights)))

    for k, i in enumerate(check):
        x = xs[i]
        ga = (backend.to_numpy(analytic[k].data) if analytic[k] is not None
              else np.zeros(x.shape, dtype=np.float64))
        gn = np.zeros(x.shape, dtype=np.float64)
        flat, gflat = x.data.reshape(-1), gn.reshape(-1)
        for j in range(flat.size):
            orig = flat[j].item()
            flat[j] = orig + eps
            fp = scalar()
            flat[j] = orig - eps
            fm = scalar()
            flat[j] = orig
            gflat[j] = (fp - fm) / (2 * eps)
        yield i, x, ga, gn


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0) -> bool:
    """Compare autodiff gradients of `fn(*inputs)` with central differences, in float64.

    Every Tensor input with requires_grad=True is checked (as a float64 copy). On a mismatch it
    raises GradcheckError naming the input, the worst element and both values (or returns False
    with raise_exception=False). Returns True when all gradients agree within atol + rtol*|num|.
    """
    for i, x, ga, gn in _gradients(fn, inputs, eps, seed):
        err = np.abs(ga - gn)
        bound = atol + rtol * np.abs(gn)
        if (err > bound).any():
            j = int(np.argmax(err - bound))
            idx = tuple(int(v) for v in np.unravel_index(j, x.shape)) if x.shape else ()
            msg = (f"gradcheck failed for input {i} (shape {fmt_shape(x.shape)}): at element {idx} "
                   f"analytic {ga.reshape(-1)[j]:.8g} vs numerical {gn.reshape(-1)[j]:.8g} "
                   f"(|diff| {err.reshape(-1)[j]:.3g} > atol {atol} + rtol {rtol} * |numerical|); "
                   f"{int((err > bound).sum())} of {err.size} elements differ, max |diff| {err.max():.3g}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def max_grad_error(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6, seed: int = 0) -> float:
    """The largest |analytic - numerical| gradient difference over all checked inputs."""
    return max(float(np.abs(ga - gn).max(initial=0.0)) for _, _, ga, gn in _gradients(fn, inputs, eps, seed))
