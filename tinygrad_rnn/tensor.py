"""`Tensor`: an array (NumPy or CuPy) plus what autodiff needs (grad, creator, hooks).

Imports: errors, backend; autograd lazily (it imports this module). No math lives here: every op
method (`+`, `matmul`, `tanh`, `sum`, ...) is defined once in `ops.py`, which binds it onto Tensor.
"""
from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

import numpy as np

from . import backend
from .errors import DTypeError, InplaceError, ShapeError, dtype_problem, fmt_shape

float32 = np.dtype("float32")
float64 = np.dtype("float64")
float16 = np.dtype("float16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")
# One clock for the engine: it numbers new Functions (their creation index) and stamps in-place
# writes (Tensor._bump_version), so "written after the op that saved it" is one comparison.
write_clock = itertools.count()
last_write = [-1]  # stamp of the latest in-place write anywhere: backward checks versions only
#                    for Functions created before it (usually none: no check, no cost)
_DTYPE_NAMES = {"float": float32, "float32": float32, "float64": float64, "double": float64,
                "float16": float16, "half": float16, "int": int64, "int64": int64, "long": int64,
                "int32": int32, "bool": bool_}


def as_dtype(dtype: Any) -> np.dtype:
    """'float32', np.float32, tinygrad_rnn.float32 (a NumPy dtype) -> np.dtype."""
    if isinstance(dtype, str):
        if dtype not in _DTYPE_NAMES:
            raise DTypeError(f"dtype {dtype!r} is not supported; use one of {sorted(_DTYPE_NAMES)}")
        return _DTYPE_NAMES[dtype]
    try:
        return np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"dtype {dtype!r} is not understood; use e.g. 'float32' or tinygrad_rnn.float64") from None


def _check_grad(t: "Tensor", g: Any) -> None:
    if not isinstance(g, Tensor):
        raise TypeError(f"grad: a gradient must be a Tensor or None, got {type(g).__name__}; wrap an "
                        f"array as tinygrad_rnn.Tensor(array, dtype={str(t.data.dtype)!r})")
    if g.data.shape != t.data.shape:
        raise ShapeError(f"grad: cannot assign a gradient of shape {fmt_shape(g.data.shape)} to a tensor "
                         f"of shape {fmt_shape(t.data.shape)}; a gradient has the shape of its tensor")
    if g.data.dtype != t.data.dtype:
        raise DTypeError(f"grad: cannot assign a {g.data.dtype} gradient to a {t.data.dtype} tensor "
                         f"(shape {fmt_shape(t.data.shape)}); convert it with .to(dtype={str(t.data.dtype)!r})")
    if type(g.data) is not np.ndarray or type(t.data) is not np.ndarray:
        dg, dt = backend.device_of(g.data), backend.device_of(t.data)
        if dg != dt:
            raise backend.DeviceError(f"grad: cannot assign a gradient on {dg} to a tensor on {dt}; "
                                      f"move it with .to({dt!r})")


class Tensor:
    """An n-dimensional array with reverse-mode autodiff.

    Tensor(data, requires_grad=False, dtype=None, device=None): `data` is a number, a nested list,
    a NumPy or CuPy array (copied). Float data defaults to float32; integers to int64.
    """

    # `_version` (unset until needed) is a one-element list holding the stamp of the last in-place
    # write through the library; tensors sharing storage (detach(), views made by ops) share it.
    __slots__ = ("data", "_grad", "requires_grad", "creator", "out_index", "name", "_hooks",
                 "_version", "__weakref__")
    __array_priority__ = 1000  # numpy_array * tensor -> Tensor.__rmul__, not an object array

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> None:
        dt = as_dtype(dtype) if dtype is not None else None
        if isinstance(data, Tensor):
            data = data.data
        elif backend.is_dlpack(data):  # a PyTorch/JAX array: read through DLPack, keeping its dtype
            data = backend.from_dlpack(data)
        if backend.is_array(data):
            src_dev = backend.device_of(data)
            xp = backend.array_module(data)
            problem = dtype_problem(data.dtype, "Tensor")
            if problem:  # the same data as a list is refused below
                raise DTypeError(problem)
            arr = xp.array(data, dtype=dt, copy=True)
            dev = backend.normalize_device(device) if device is not None else src_dev
        else:
            try:
                arr = np.array(data, dtype=dt)
            except ValueError as e:  # ragged nested lists
                raise ShapeError(f"Tensor: cannot make an array from this {type(data).__name__}: nested "
                                 f"lists must be rectangular (rows of equal length) and hold numbers "
                                 f"({e})") from None
            if arr.dtype.kind not in "biuf":
                raise DTypeError(f"Tensor: cannot make a numeric array from {type(data).__name__} "
                                 f"(NumPy made dtype {arr.dtype}); the data must hold numbers or bools")
            dev = backend.normalize_device(device)
        if dt is None and arr.dtype.kind == "f" and not backend.is_array(data):
            arr = arr.astype(float32)  # Python floats -> float32, as PyTorch's default dtype
        self.data = backend.to_device(arr, dev)
        self._grad: Tensor | None = None
        self.creator = None
        self.out_index = 0
        self.name: str | None = None
        self._hooks: list | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data: Any, requires_grad: bool = False) -> "Tensor":
        """Internal constructor: wrap an array without copying or checking (hot path)."""
        t = object.__new__(Tensor)
        t.data = data
        t._grad = None
        t.requires_grad = requires_grad
        t.creator = None
        t.out_index = 0
        t.name = None
        t._hooks = None
        return t

    # ------------------------------------------------------------------------------- attributes
    @property
    def grad(self) -> "Tensor | None":
        """The gradient that backward accumulated (None until then, or after zero_grad())."""
        return self._grad

    @grad.setter
    def grad(self, value: "Tensor | None") -> None:
        if value is not None:  # refused here, as in PyTorch, rather than deep inside step()
            _check_grad(self, value)
        self._grad = value

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def grad_fn(self) -> Any:
        """The Function that created this tensor (PyTorch's name for `creator`)."""
        return self.creator

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def size(self, dim: int | None = None) -> Any:
        return self.data.shape if dim is None else self.data.shape[dim]

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # ----------------------------------------------------------------------------- conversions
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (a copy from the GPU; on CPU the array itself, shared)."""
        return backend.to_numpy(self.data)

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item(): only a one-element tensor can be converted to a Python "
                             f"number, this one has shape {fmt_shape(self.shape)}")
        return backend.to_numpy(self.data).reshape(()).item()  # one transfer; settles deferred checks

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {fmt_shape(self.shape)} is ambiguous; "
                             f"use .any() or .all()")
        return bool(self.item())

    # ------------------------------------------------------------------------------ interop
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """np.asarray(t) on a CPU tensor (no copy unless asked); refused on a GPU, as CuPy does."""
        if not backend.is_cpu_array(self.data):
            raise TypeError(f"Implicit conversion of a tensor on {self.device} to a NumPy array is "
                            f"not allowed (it would hide a device->host copy), as in CuPy; use "
                            f"t.numpy() to copy it explicitly")
        a = self.data
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError(f"np.asarray(tensor, dtype={dtype}, copy=False): a {a.dtype} tensor "
                                 f"needs a copy to become {np.dtype(dtype)}")
            return a.astype(dtype)
        return a.copy() if copy else a

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        """DLPack export of the data (shared, not copied; the graph is not part of it):
        torch.from_dlpack(t), np.from_dlpack(t), cupy.from_dlpack(t)."""
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple:
        return self.data.__dlpack_device__()

    def detach(self) -> "Tensor":
        """A tensor sharing this data, cut from the graph (no creator, no grad). It shares the
        version counter too: editing it in place is seen by a backward that saved this tensor."""
        t = Tensor._make(self.data, False)
        t._version = self._version_box()
        return t

    # ---------------------------------------------------------------------------- in-place writes
    # Every in-place write through the library (x[i] = v, copy_/fill_/zero_, optimizer steps,
    # nn.init, load_state_dict) stamps the tensor's version; a backward that saved the tensor
    # before the write raises InplaceError instead of computing with the new values. `x.data` is
    # the raw array: writes through it are not tracked (the escape hatch, as in PyTorch).
    def _version_box(self) -> list:
        """The version holder this tensor shares with every tensor on the same storage."""
        try:
            return self._version
        except AttributeError:
            box = self._version = [-1]
            fn = self.creator
            if fn is not None and fn.save_output:  # its backward reads this output's values
                boxes = fn.__dict__.get("out_versions")
                if boxes is None:
                    boxes = fn.out_versions = {}
                boxes[self.out_index] = box
            return box

    def _bump_version(self) -> None:
        stamp = next(write_clock)
        self._version_box()[0] = stamp
        last_write[0] = stamp

    def _write(self, index: Any, value: Any, what: str) -> "Tensor":
        """self.data[index] = value, checked and recorded as an in-place write."""
        from . import autograd  # noqa: PLC0415 - autograd imports this module

        if self.requires_grad and autograd.is_grad_enabled():
            raise InplaceError(
                f"{what} on a tensor that requires grad ({self._describe()}) while grad mode is on: "
                f"the graph cannot record an in-place edit. To edit weights, do it under "
                f"`with tg.no_grad():` (and before the forward, or after backward); to edit a "
                f"computed value, build a new tensor (where(), cat()) or edit a clone()")
        if isinstance(value, Tensor):
            if value.requires_grad and autograd.is_grad_enabled():
                # only the values are copied: the edited tensor gets no creator, so the
                # gradient that would flow back through it into `value` would silently be 0
                raise InplaceError(
                    f"{what}: writing a tensor that requires grad ({value._describe()}) into "
                    f"{self._describe()}, which does not, while grad mode is on: only the values "
                    f"are copied, so the gradient through this write would be lost. Build the "
                    f"result as a new tensor instead (tg.stack, tg.cat, tg.where); if dropping "
                    f"the gradient is intended, write value.detach() or do it under "
                    f"`with tg.no_grad():`")
            value = value.data
        if backend.is_array(value) and backend.device_of(value) != self.device:
            value = backend.to_device(value, self.device)  # CuPy refuses host arrays here
        try:
            self.data[index] = value
        except ValueError as e:
            raise ShapeError(f"{what}: cannot write a value of shape "
                             f"{fmt_shape(getattr(value, 'shape', ()))} into a tensor of shape "
                             f"{fmt_shape(self.shape)} at this index ({e})") from None
        self._bump_version()
        return self

    def copy_(self, src: Any) -> "Tensor":
        """Copy `src` (a Tensor, array or number, broadcastable to this shape) into this tensor,
        in place, keeping this tensor's dtype and device. A checked write (see `_write`)."""
        return self._write(Ellipsis, src, "copy_")

    def fill_(self, value: float) -> "Tensor":
        """Set every element to `value`, in place. A checked write."""
        return self._write(Ellipsis, value, "fill_")

    def zero_(self) -> "Tensor":
        """Set every element to 0, in place. A checked write."""
        return self._write(Ellipsis, 0, "zero_")

    def _describe(self) -> str:
        """'float32 tensor of shape (2, 3) named h_t, computed by tanh (step=3)' for messages."""
        parts = [f"{self.dtype} tensor of shape {fmt_shape(self.shape)}"]
        if self.name:
            parts.append(f"named {self.name!r}")
        fn = self.creator
        if fn is not None:
            tags = ", ".join(f"{k}={v}" for k, v in getattr(fn, "tags", ()))
            parts.append(f"computed by {fn.name!r}" + (f" ({tags})" if tags else ""))
            where = getattr(fn, "created_at", None)
            if where:
                parts.append(f"created at {where}")
        else:
            parts.append("a leaf" + (" that requires grad" if self.requires_grad else ""))
        return ", ".join(parts)

    def named(self, name: str) -> "Tensor":
        """Give this tensor a math name (e.g. "h_t", "i_t"); returns self, so it chains.

        The name is kept on the tensor and, for a computed tensor, on the op that made it
        (`creator.out_names[out_index]`), so drawings and detect_anomaly show it even after the
        tensor itself is gone. The RNN cells name their intermediates this way."""
        if not isinstance(name, str):
            raise TypeError(f"named: expected a str, got {type(name).__name__}")
        self.name = name
        fn = self.creator
        if fn is not None:
            names = fn.__dict__.get("out_names")
            if names is None:
                names = fn.out_names = {}
            names[self.out_index] = name
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind != "f":
            raise DTypeError(f"only floating-point tensors can require grad, this one is "
                             f"{self.data.dtype} (shape {fmt_shape(self.shape)}); integer tensors hold "
                             f"indices/targets. Convert with .float() first if you need a gradient")
        if not requires_grad and self.creator is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> "Tensor":
        """Keep `.grad` of this non-leaf tensor after backward (leaves always keep theirs)."""
        if self.creator is None:
            return self
        self._post_entry()[0] = weakref.ref(self)
        return self

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> Callable[[], None]:
        """`hook(grad)` runs when this tensor's gradient is complete during backward; it may return
        a replacement gradient. Returns a function that removes the hook."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad: no gradient "
                               "will ever flow into it")
        if self.creator is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            hooks = self._post_entry()[1]
        hooks.append(hook)
        return lambda: hook in hooks and hooks.remove(hook)

    def _post_entry(self) -> list:
        fn = self.creator
        if fn.post is None:
            fn.post = {}
        entry = fn.post.get(self.out_index)
        if entry is None:
            entry = fn.post[self.out_index] = [None, []]
        return entry

    def backward(self, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor w.r.t. every leaf into the leaves' `.grad`."""
        from . import autograd  # noqa: PLC0415 - autograd imports this module

        backend.sync_flags()  # deferred GPU input checks fail here, before any gradient is written
        autograd.backward(self, grad, retain_graph, create_graph)

    # ------------------------------------------------------------------------------------ repr
    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=50,
                               prefix="Tensor(")
        extra = [f"dtype={self.dtype}"]
        if self.device != "cpu":
            extra.append(f"device='{self.device}'")
        if self.creator is not None:
            extra.append(f"creator={self.creator.name}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        if self.name:
            extra.append(f"name={self.name!r}")
        return f"Tensor({body}, {', '.join(extra)})"

    __hash__ = object.__hash__  # usable in sets/dicts by identity; == is elementwise (ops.py)
