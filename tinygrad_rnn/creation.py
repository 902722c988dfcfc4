"""Tensor factories (PyTorch names and signatures): zeros, ones, full, *_like, randn, rand, arange, eye.

Imports: backend, tensor. Random factories draw from backend.rng(device), seeded by manual_seed.
"""
from __future__ import annotations

from typing import Any

from . import backend
from .tensor import Tensor, as_dtype, float32


def _shape(size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ValueError(f"sizes must be non-negative ints, got {size}")
    return tuple(size)


def _finish(arr: Any, dtype: Any, device: str, requires_grad: bool) -> Tensor:
    if dtype is not None:
        arr = arr.astype(as_dtype(dtype), copy=False)
    t = Tensor._make(backend.to_device(arr, device) if device != "cpu" else arr)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _filled(size: tuple, value: float, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    dev = backend.normalize_device(device)
    dt = as_dtype(dtype) if dtype is not None else (float32 if isinstance(value, float) else None)
    xp = backend.xp_for(dev)
    with _on(dev):
        arr = xp.full(_shape(size), value, dtype=dt if dt is not None else float32)
    return _finish(arr, None, dev, requires_grad)


class _on:
    """Make CuPy allocate on the requested GPU (a no-op on CPU)."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __enter__(self) -> None:
        if self.device != "cpu":
            self.ctx = backend._cupy.cuda.Device(int(self.device[5:]))
            self.ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.device != "cpu":
            self.ctx.__exit__(*exc)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(size, 0.0, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(size, 1.0, dtype, device, requires_grad)


def full(size: Any, fill_value: float, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = "bool"
    elif dtype is None and isinstance(fill_value, int):
        dtype = "int64"
    return _filled((size,) if isinstance(size, int) else tuple(size), fill_value, dtype, device, requires_grad)


def _like(t: Tensor, dtype: Any, device: Any) -> tuple:
    return (dtype if dtype is not None else t.dtype), (device if device is not None else t.device)


def zeros_like(t: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dt, dev = _like(t, dtype, device)
    return zeros(t.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dt, dev = _like(t, dtype, device)
    return ones(t.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value: float, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    dt, dev = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples, from the generator seeded by manual_seed."""
    dev = backend.normalize_device(device)
    dt = as_dtype(dtype) if dtype is not None else float32
    with _on(dev):
        arr = backend.rng(dev).standard_normal(_shape(size), dtype=dt if dt.itemsize >= 4 else float32)
    return _finish(arr, dt, dev, requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1), from the generator seeded by manual_seed."""
    dev = backend.normalize_device(device)
    dt = as_dtype(dtype) if dtype is not None else float32
    with _on(dev):
        arr = backend.rng(dev).random(_shape(size), dtype=dt if dt.itemsize >= 4 else float32)
    return _finish(arr, dt, dev, requires_grad)


def randint(low: int, high: int, size: Any, dtype: Any = "int64", device: Any = None) -> Tensor:
    dev = backend.normalize_device(device)
    with _on(dev):
        arr = backend.rng(dev).integers(low, high, size=tuple(size) if not isinstance(size, int) else (size,))
    return _finish(arr, dtype, dev, False)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError(f"arange: step must be non-zero, got step={step} (start={start}, end={end}); "
                         f"the values go from start towards end in increments of step")
    dev = backend.normalize_device(device)
    is_int = all(isinstance(v, int) for v in (start, end, step))
    dt = as_dtype(dtype) if dtype is not None else (as_dtype("int64") if is_int else float32)
    with _on(dev):
        arr = backend.xp_for(dev).arange(start, end, step, dtype=dt)
    return _finish(arr, None, dev, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:
    dev = backend.normalize_device(device)
    with _on(dev):
        arr = backend.xp_for(dev).eye(n, m, dtype=as_dtype(dtype) if dtype is not None else float32)
    return _finish(arr, None, dev, requires_grad)


def from_dlpack(x: Any) -> Tensor:
    """A Tensor sharing the memory of `x` (no copy): a PyTorch tensor, a JAX, CuPy or NumPy array,
    any object with __dlpack__. Writes through one are seen by the other; dtype and device are kept."""
    if isinstance(x, Tensor):
        return x.detach()
    if not (backend.is_array(x) or hasattr(x, "__dlpack__")):
        raise TypeError(f"from_dlpack: expected an array with __dlpack__ (PyTorch, JAX, CuPy, NumPy), "
                        f"got {backend.type_name(x)}; use tinygrad_rnn.Tensor(x) to copy other data")
    return Tensor._make(backend.from_dlpack(x))
