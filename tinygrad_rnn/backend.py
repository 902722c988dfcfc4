"""Backend selection: the only module that imports CuPy. NumPy on "cpu", CuPy on "cuda[:N]".

Everything else takes its array module from its inputs via `array_module` (or a Function's `xp`),
so op code is written once for both libraries. Where NumPy and CuPy differ (scatter-add, RNG),
the difference is one function here.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable

import numpy as np

from .errors import DeviceError

ndarray = np.ndarray
_cupy: Any = None          # the cupy module once imported, else None
_cupy_failed: str = ""     # why importing cupy failed, for the error message

INSTALL_HINT = ('install CuPy for your CUDA version, e.g. pip install -e ".[cuda12]" '
                '(cupy-cuda12x) or ".[cuda13]" (cupy-cuda13x)')


def _import_cupy() -> Any:
    global _cupy, _cupy_failed
    if _cupy is None and not _cupy_failed:
        try:
            import cupy  # noqa: PLC0415 - imported lazily: NumPy-only users never pay for it
            _cupy = cupy
        except Exception as e:  # ImportError, or a broken CUDA install raising anything
            _cupy_failed = f"{type(e).__name__}: {e}"
    return _cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    cp = _import_cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def normalize_device(device: Any) -> str:
    """'cpu', 'cuda', 'cuda:1', None (-> 'cpu') -> canonical 'cpu' / 'cuda:N'; checks availability."""
    if device is None:
        return "cpu"
    d = str(device).strip().lower()
    if d == "cpu":
        return "cpu"
    if d == "cuda" or d.startswith("cuda:"):
        idx = 0
        if d.startswith("cuda:"):
            try:
                idx = int(d[5:])
            except ValueError:
                raise DeviceError(f"device {device!r} is not understood: use 'cpu', 'cuda' or 'cuda:N'") from None
        cp = _import_cupy()
        if cp is None:
            raise DeviceError(f"device {device!r} needs CuPy, which could not be imported "
                              f"({_cupy_failed}); {INSTALL_HINT}, or use device='cpu'")
        try:
            n = cp.cuda.runtime.getDeviceCount()
        except Exception as e:
            raise DeviceError(f"device {device!r}: CuPy is installed but no usable GPU/driver was found "
                              f"({type(e).__name__}: {e}); use device='cpu'") from None
        if idx >= n:
            raise DeviceError(f"device {device!r}: only {n} GPU(s) visible (cuda:0..cuda:{n - 1})")
        return f"cuda:{idx}"
    raise DeviceError(f"device {device!r} is not understood: use 'cpu', 'cuda' or 'cuda:N'")


def is_cpu_array(a: Any) -> bool:
    return isinstance(a, (np.ndarray, np.generic))


def is_array(a: Any) -> bool:
    if isinstance(a, (np.ndarray, np.generic)):
        return True
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def array_module(a: Any) -> Any:
    """numpy or cupy, whichever owns the array `a`."""
    if isinstance(a, np.ndarray):
        return np
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy
    return np


def device_of(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return "cpu"
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return f"cuda:{a.device.id}"
    return "cpu"


def xp_for(device: str) -> Any:
    """The array module for a canonical device string."""
    return np if device == "cpu" else _cupy


def to_device(a: Any, device: str) -> Any:
    """Copy (if needed) array `a` onto canonical `device`."""
    if device == "cpu":
        return to_numpy(a)
    cp = _cupy
    idx = int(device[5:])
    if isinstance(a, cp.ndarray) and a.device.id == idx:
        return a
    with cp.cuda.Device(idx):
        return cp.asarray(a)


def to_numpy(a: Any) -> np.ndarray:
    """The only device -> host copy in the package."""
    if isinstance(a, np.ndarray):
        return a
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        if _pending.checks:  # this sync is paid anyway: settle the deferred checks first
            sync_flags()
        return _cupy.asnumpy(a)
    return np.asarray(a)


def as_array(y: Any, xp: Any) -> Any:
    """NumPy reductions return scalars (np.float32), not 0-d arrays; make every result an array."""
    return np.asarray(y) if isinstance(y, np.generic) else y


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """target[index] += values, with repeated indices summed (np.add.at / cupyx.scatter_add)."""
    if isinstance(target, np.ndarray):
        np.add.at(target, index, values)
        return
    import cupyx  # noqa: PLC0415 - only reached with CuPy arrays
    if hasattr(_cupy.add, "at"):
        _cupy.add.at(target, index, values)
    else:  # CuPy < 13
        cupyx.scatter_add(target, index, values)


def erf(x: Any) -> Any:
    """The error function, elementwise. NumPy has none: SciPy's (cupyx.scipy's on a GPU) when it
    imports, else erf_series, on either backend."""
    try:
        if isinstance(x, np.ndarray):
            from scipy.special import erf as f  # noqa: PLC0415 - optional, only for erf
        else:
            from cupyx.scipy.special import erf as f  # noqa: PLC0415 - only reached with CuPy arrays
    except ImportError:
        return erf_series(x)
    return f(x)


def erf_series(x: Any) -> Any:
    """erf from array ops only (any backend): 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!.
    Every term is positive (no cancellation), so it is accurate to a few ulp (2e-15 measured against
    math.erf); |x| is clipped at 6, where erf is 1 in float64, and 110 terms then suffice."""
    xp = array_module(x)
    z = xp.clip(x, -6.0, 6.0).astype(np.float64)  # in float64 whatever the input dtype
    z2 = 2 * z * z
    term = z.copy()
    total = z.copy()
    for n in range(1, 110):
        term *= z2
        term /= 2 * n + 1
        total += term
    y = total * xp.exp(-(z * z)) * (2 / math.sqrt(math.pi))
    return y.astype(x.dtype) if x.dtype.kind == "f" else y


# ----------------------------------------------------------------------------------- random numbers
# One seed drives one NumPy Generator (CPU) and one CuPy generator per GPU, created on first use,
# so manual_seed(n) makes every random factory, initialiser and dropout mask reproducible.
_seed: int | None = None
_rngs: dict[str, Any] = {}


def manual_seed(seed: int) -> None:
    """Seed every random number generator of the library (CPU and all GPUs)."""
    global _seed
    _seed = int(seed)
    _rngs.clear()


def rng(device: str = "cpu") -> Any:
    """The generator for `device` (numpy.random.Generator or cupy.random.Generator)."""
    g = _rngs.get(device)
    if g is None:
        if device == "cpu":
            g = np.random.default_rng(_seed)
        else:
            with _cupy.cuda.Device(int(device[5:])):
                g = _cupy.random.default_rng(_seed)
        _rngs[device] = g
    return g


def get_rng_state() -> dict:
    """Serializable RNG state (CPU generator only; GPU streams restart from the seed)."""
    return {"seed": _seed, "cpu": rng("cpu").bit_generator.state}


def set_rng_state(state: dict) -> None:
    global _seed
    _seed = state.get("seed")
    _rngs.clear()
    rng("cpu").bit_generator.state = state["cpu"]


# ----------------------------------------------------------------------------- deferred checks
# A value check on GPU data (an index in range, a mask row not empty) needs the answer on the host:
# a device->host sync that stalls the launch queue. Checks that would run once per step (an
# Embedding lookup, a decoder step's attention mask) are therefore deferred: the condition is
# computed on the device and kept here, and all pending ones are read together, in one transfer,
# at the next point that syncs anyway (Tensor.numpy/item/tolist, backward, a decoding loop's
# periodic stop test) or when MAX_PENDING of them have piled up. On the CPU checks stay eager.
MAX_PENDING = 256


# threading.local, not a ContextVar like the engine's state: this is a queue that whichever sync
# comes next on the thread drains (any context may settle it), not a setting entered and restored.
class _Pending(threading.local):
    def __init__(self) -> None:
        self.checks: list = []  # [(bad: 0-d bool device array, make_error: () -> Exception)]


_pending = _Pending()


def check_later(bad: Any, make_error: Callable[[], Exception]) -> None:
    """Record a check on device data: `bad` is a 0-d bool array on the GPU (True = invalid);
    `make_error()` builds the exception (it may sync: it only runs when the check failed)."""
    checks = _pending.checks
    checks.append((bad, make_error))
    if len(checks) >= MAX_PENDING:
        sync_flags()


def check_range(i: Any, lo: int, hi: int, make_error: Callable[[bool], Exception]) -> Any:
    """Check that the integer (index) array `i` lies in lo..hi, the one bounds check for indices.
    On the CPU at once: raises make_error(False). On a GPU without a sync: deferred (check_later;
    make_error(True) is raised at the next sync point) and `i` comes back clamped meanwhile, so that
    an invalid index reads a wrong row, never wraps or faults. make_error may sync: it only runs
    when the check failed."""
    if is_cpu_array(i):
        if i.size and (int(i.min()) < lo or int(i.max()) > hi):
            raise make_error(False)
        return i
    check_later(((i < lo) | (i > hi)).any(), lambda: make_error(True))
    return array_module(i).clip(i, lo, hi)


def sync_flags(*flags: Any) -> list:
    """Read `flags` (0-d device arrays) and every pending deferred check in ONE device->host
    transfer; raise the first failed check's error, else return the flags' values as Python
    scalars. With no flags and no pending checks nothing is transferred."""
    checks, _pending.checks = _pending.checks, []
    arrays = list(flags) + [bad for bad, _ in checks]
    if not arrays:
        return []
    host: list = [None] * len(arrays)
    by_device: dict = {}
    for k, a in enumerate(arrays):
        by_device.setdefault(device_of(a), []).append(k)
    for dev, ks in by_device.items():  # one transfer per device (arrays on two GPUs cannot stack)
        if dev == "cpu":
            vals = [np.asarray(arrays[k]).item() for k in ks]
        else:
            with _cupy.cuda.Device(int(dev[5:])):
                vals = _cupy.stack([arrays[k].astype(np.float64) for k in ks]).get().tolist()
        for k, v in zip(ks, vals):
            host[k] = v
    for (_, make_error), bad in zip(checks, host[len(flags):]):
        if bad:
            raise make_error()
    return host[:len(flags)]


def pending_checks() -> int:
    """How many deferred checks wait for the next sync (0 on the CPU, where checks are eager)."""
    return len(_pending.checks)


# ------------------------------------------------------------------------------------- DLPack
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13  # DLPack device types


def type_name(x: Any) -> str:
    """'torch.Tensor', 'numpy.ndarray', 'list': the name a user recognises in an error."""
    t = type(x)
    mod = t.__module__.split(".")[0]
    return t.__qualname__ if mod == "builtins" else f"{mod}.{t.__qualname__}"


def is_dlpack(x: Any) -> bool:
    """An array of another library that can be shared through DLPack (PyTorch, JAX, ...)."""
    return hasattr(type(x), "__dlpack__") and not is_array(x)


def from_dlpack(x: Any) -> Any:
    """A NumPy (CPU) or CuPy (GPU) array sharing x's memory, without a copy, through DLPack."""
    if is_array(x):
        return x
    if getattr(x, "requires_grad", False) and callable(getattr(x, "detach", None)):
        x = x.detach()  # PyTorch refuses to export a tensor that requires grad; the data is the same
    kind, idx = x.__dlpack_device__() if hasattr(x, "__dlpack_device__") else (_DL_CPU, 0)
    try:
        if kind in (_DL_CPU, _DL_CUDA_HOST):
            return np.from_dlpack(x)
        if kind in (_DL_CUDA, _DL_CUDA_MANAGED):
            cp = _import_cupy()
            if cp is None:
                raise DeviceError(f"from_dlpack: this {type_name(x)} is on a CUDA GPU, which needs CuPy "
                                  f"({_cupy_failed}); {INSTALL_HINT}")
            with cp.cuda.Device(int(idx)):
                return cp.from_dlpack(x)
    except (TypeError, BufferError, RuntimeError) as e:
        dtype = getattr(x, "dtype", "?")
        raise TypeError(f"from_dlpack: cannot share this {type_name(x)} (dtype {dtype}) with "
                        f"NumPy/CuPy ({e}); convert it first, e.g. x.float() for bfloat16, "
                        f"x.resolve_conj()/.contiguous() in PyTorch") from None
    raise DeviceError(f"from_dlpack: this {type_name(x)} is on DLPack device type {kind}; only CPU "
                      f"and CUDA arrays are supported")
