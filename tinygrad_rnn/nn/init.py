"""In-place initialisers (PyTorch names), reproducible under tinygrad_rnn.manual_seed.

Imports: the public core. Random numbers come from the CPU generator (backend.rng("cpu")) and are
copied to the tensor's device, so a model starts with the same weights on every device for a given
seed (docs/gpu.md); every function writes into `tensor.data` in place, keeps its dtype and device,
and returns the tensor.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..errors import ShapeError, fmt_shape
from ..tensor import Tensor


def _fill(t: Tensor, values: np.ndarray | object) -> Tensor:
    xp = backend.array_module(t.data)
    t.data[...] = xp.asarray(values).astype(t.data.dtype, copy=False)
    t._bump_version()  # an in-place write: a backward that saved t refuses (InplaceError)
    return t


def _draw(t: Tensor, kind: str, *args: float) -> object:
    g = backend.rng("cpu")  # one rule for every layer and device: draw on the CPU, then copy
    if kind == "uniform":
        lo, hi = args
        return g.random(t.shape, dtype=np.float64 if t.dtype == np.float64 else np.float32) * (hi - lo) + lo
    mean, std = args
    return g.standard_normal(t.shape, dtype=np.float64 if t.dtype == np.float64 else np.float32) * std + mean


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b)."""
    return _fill(tensor, _draw(tensor, "uniform", a, b))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std^2)."""
    return _fill(tensor, _draw(tensor, "normal", mean, std))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def _fans(t: Tensor, op: str) -> tuple[int, int]:
    if t.ndim < 2:
        raise ShapeError(f"{op}: needs a tensor with at least 2 dims to compute fan_in/fan_out, got "
                         f"shape {fmt_shape(t.shape)}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for an activation (PyTorch's table)."""
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0)}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in gains:
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; use one of "
                         f"{sorted(gains) + ['leaky_relu']}")
    return gains[nonlinearity]


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al. 2015)."""
    fan_in, fan_out = _fans(tensor, "kaiming_uniform_")
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian matrix (Saxe et al. 2013),
    times `gain`. Signs are fixed by diag(R) so the result is uniformly distributed. For a
    recurrent weight, all singular values are 1: h -> W h neither shrinks nor grows gradients."""
    if tensor.ndim < 2:
        raise ShapeError(f"orthogonal_: needs at least 2 dims, got shape {fmt_shape(tensor.shape)}")
    rows = tensor.shape[0]
    cols = tensor.data.size // rows
    flat = backend.rng("cpu").standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tensor.shape))


def identity_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """gain * I (for IRNN: recurrent weights = identity, biases = 0, ReLU; Le et al. 2015)."""
    if tensor.ndim != 2:
        raise ShapeError(f"identity_: needs a 2-D tensor, got shape {fmt_shape(tensor.shape)}")
    return _fill(tensor, gain * np.eye(*tensor.shape))


eye_ = identity_
