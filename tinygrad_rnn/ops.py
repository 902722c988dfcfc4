"""Every primitive op: one `Function` subclass each, forward on arrays (`self.xp`), backward in
Tensor ops (so it is differentiable again). Then the functional API and the Tensor methods.

Imports: errors, backend, tensor, autograd. Adding an op touches this file only: write the class,
a functional wrapper, and bind it at the bottom (plus a row in tests/test_ops.py).
Broadcasting is reduced once, in the engine: binary ops return gradients of the output's shape.
"""
from __future__ import annotations

import builtins as _b
import math
from collections import namedtuple
from typing import Any, Sequence

from . import autograd, backend
from .autograd import Function
from .errors import DTypeError, ShapeError, fmt_shape
from .tensor import Tensor, as_dtype, float32

_make = Tensor._make
# `_apply(Op(), *inputs)` is `Op()(*inputs)` minus Python's instance-call machinery (a slot lookup
# and an extra argument tuple): used by the hot wrappers, where the per-op overhead counts.
_apply = Function.__call__
OPS: dict[str, type] = {}


def register(name: str):
    """Class decorator: name the op (graph label, error messages) and record it in OPS."""
    def deco(cls: type) -> type:
        cls.name = name
        OPS[name] = cls
        return cls
    return deco


def _const(a: Any) -> Tensor:
    return _make(a, False)


_SCALARS: dict = {}


def _scalar(value: float, like: Any) -> Any:
    """`value` as a cached 0-d array of like's dtype and array type: NumPy multiplies an array by
    a 0-d array about twice as fast as by a Python float (no per-call scalar conversion)."""
    a = like.data if isinstance(like, Tensor) else like
    dt = a.dtype if a.dtype.kind == "f" else float32  # int * 0.5 is a float (the default float32)
    # a GPU scalar lives on one device: cuda:1 must not reuse the one made for cuda:0
    key = (value, dt, "cpu" if backend.is_cpu_array(a) else backend.device_of(a))
    c = _SCALARS.get(key)
    if c is None:
        c = backend.to_device(backend.np.asarray(value, dtype=dt), key[2])
        if key[2] == "cpu":  # shared by every later op: an in-place write must fail loudly
            c.flags.writeable = False
        _SCALARS[key] = c
    return c


def _norm_dim(dim: int, ndim: int, op: str) -> int:
    """dim in -ndim..ndim-1 -> 0..ndim-1. A 0-d tensor accepts dim 0 and -1, as in PyTorch (it
    counts as having one dimension of size 1 there)."""
    n = _b.max(ndim, 1)
    if not -n <= dim < n:
        valid = "0 or -1 for a 0-d tensor" if ndim == 0 else f"{-ndim}..{ndim - 1}"
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimension(s) "
                         f"(valid: {valid})")
    return dim % n


def _norm_dims(dim: Any, ndim: int, op: str) -> tuple | None:
    """The reduced dims, sorted; () for a 0-d tensor (reducing over dim 0 or -1 of a scalar
    leaves it as it is, as in PyTorch)."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = tuple(sorted(_norm_dim(d, ndim, op) for d in dims))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} repeats a dimension")
    return out if ndim else ()


def _promote(a: Any, b: Any, true_div: bool = False) -> tuple:
    """PyTorch's type promotion where NumPy's differs: an integer or bool array meeting a float
    array takes the float's dtype (NumPy makes int64 with float32 float64), and true division of
    two integer arrays gives the default float dtype, float32 (NumPy: float64)."""
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa and not fb:
        return a, b.astype(a.dtype)
    if fb and not fa:
        return a.astype(b.dtype), b
    if true_div and not fa:
        return a.astype(float32), b.astype(float32)
    return a, b


def _float_input(x: Any) -> Any:
    """The input of a float-valued op (exp, sin, erf, softplus...): integer and bool arrays become
    the default float dtype, float32, as in PyTorch (NumPy would compute them in float64)."""
    return x if x.dtype.kind == "f" else x.astype(float32)


def _promote_all(xs: Sequence) -> Sequence:
    """_promote's rule for n arrays (cat, stack): integer and bool arrays meeting float arrays take
    the floats' dtype (NumPy makes int64 with float32 float64); otherwise NumPy's rule is PyTorch's."""
    floats = [x.dtype for x in xs if x.dtype.kind == "f"]
    if not floats or len(floats) == len(xs):
        return xs
    dt = backend.np.result_type(*floats)
    return [x if x.dtype == dt else x.astype(dt) for x in xs]


def _shape_arg(shape: tuple) -> tuple:
    """f(2, 3) and f((2, 3)) both mean shape (2, 3), as in PyTorch."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(int(s) for s in shape[0])
    return tuple(int(s) for s in shape)


# ================================================================================ elementwise, binary
@register("add")
class Add(Function):
    broadcasts = True
    def forward(self, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        return a + b

    def backward(self, gy):
        return gy, gy


@register("sub")
class Sub(Function):
    broadcasts = True
    def forward(self, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        return a - b

    def backward(self, gy):
        return gy, (-gy if self.next[1] is not None else None)


@register("mul")
class Mul(Function):
    fresh_grads = True
    broadcasts = True
    save_inputs = (0, 1)

    def forward(self, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved_values()
        n = self.next
        if self.saved[0] is self.saved[1]:
            # x * x: both gradients go to the same place; send 2 * gy * x as one array (a squared
            # loss of a whole sequence would otherwise hold two sequence-sized gradients at once)
            g = gy * a
            g += g
            return g, None
        return (gy * b if n[0] is not None else None), (gy * a if n[1] is not None else None)


@register("div")
class Div(Function):
    fresh_grads = True
    broadcasts = True
    save_inputs = (1,)
    save_output = True

    def forward(self, a, b):
        if a.dtype is not b.dtype or a.dtype.kind != "f":
            a, b = _promote(a, b, true_div=True)
        return a / b

    def backward(self, gy):
        (b,) = self.saved_values()
        ga = gy / b
        return ga, (-(ga * self.output()) if self.next[1] is not None else None)


@register("pow")
class Pow(Function):
    """a ** b with both tensors (b may be a constant made from a number)."""
    fresh_grads = True
    broadcasts = True
    save_inputs = (0, 1)
    save_output = True

    def forward(self, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        return a ** b

    def backward(self, gy):
        a, b = self.saved_values()
        n = self.next
        ga = gy * b * a ** (b - 1) if n[0] is not None else None
        gb = gy * self.output() * self.call(Log(), a) if n[1] is not None else None
        return ga, gb


@register("pow_scalar")
class PowScalar(Function):
    """x ** c with a Python number c (the common case: no gradient to the exponent)."""
    fresh_grads = True
    save_inputs = (0,)

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        (x,) = self.saved_values()
        c = self.c
        return gy * (c * x) if c == 2 else gy * c * x ** (c - 1)


class _Pairwise(Function):
    """maximum / minimum: the gradient goes to the winning input; at ties it is split evenly."""
    fresh_grads = True
    broadcasts = True

    def forward(self, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        y = self.pick(self.xp, a, b)
        w = self.wins(a, b).astype(y.dtype if y.dtype.kind == "f" else "float64")
        w += 0.5 * (a == b)
        self.keep = w
        return y

    def backward(self, gy):
        w = self.keep
        return gy * self.const(w), gy * self.const(1 - w)


@register("maximum")
class Maximum(_Pairwise):
    @staticmethod
    def pick(xp, a, b):
        return xp.maximum(a, b)

    @staticmethod
    def wins(a, b):
        return a > b


@register("minimum")
class Minimum(_Pairwise):
    @staticmethod
    def pick(xp, a, b):
        return xp.minimum(a, b)

    @staticmethod
    def wins(a, b):
        return a < b


@register("where")
class Where(Function):
    """where(cond, a, b); `cond` is a boolean array (not differentiable)."""
    fresh_grads = True
    broadcasts = True

    def __init__(self, cond: Any) -> None:
        self.cond = cond

    def forward(self, a, b):
        if a.__class__ is b.__class__ and a.dtype is not b.dtype:  # backward passes a Python 0
            a, b = _promote(a, b)
        return self.xp.where(self.cond, a, b)

    def backward(self, gy):
        n = self.next
        return (self.call(Where(self.cond), gy, 0) if n[0] is not None else None,
                self.call(Where(self.cond), 0, gy) if n[1] is not None else None)


# =============================================================================== elementwise, unary
@register("neg")
class Neg(Function):
    fresh_grads = True
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


@register("exp")
class Exp(Function):
    fresh_grads = True
    save_output = True

    def forward(self, x):
        x = _float_input(x)
        return self.xp.exp(x)

    def backward(self, gy):
        return gy * self.output()


@register("log")
class Log(Function):
    fresh_grads = True
    save_inputs = (0,)

    def forward(self, x):
        x = _float_input(x)
        return self.xp.log(x)

    def backward(self, gy):
        return gy / self.saved_values()[0]


@register("sqrt")
class Sqrt(Function):
    fresh_grads = True
    save_output = True

    def forward(self, x):
        x = _float_input(x)
        return self.xp.sqrt(x)

    def backward(self, gy):
        return gy / (self.output() * 2)


@register("abs")
class Abs(Function):
    fresh_grads = True
    def forward(self, x):
        self.keep = self.xp.sign(x)
        return self.xp.abs(x)

    def backward(self, gy):
        return gy * self.const(self.keep)


@register("tanh")
class Tanh(Function):
    fresh_grads = True
    save_output = True

    def forward(self, x):
        x = _float_input(x)
        return self.xp.tanh(x)

    def backward(self, gy):
        y = self.output()
        t = 1 - y * y  # fresh temporary: *= is in place on arrays, a new op on Tensors
        t *= gy
        return t


@register("sigmoid")
class Sigmoid(Function):
    """sigmoid(x) = (1 + tanh(x/2)) / 2: the same function as 1/(1+exp(-x)), but it never
    overflows for large |x| (exp(-x) does at x < -88 in float32), and costs one transcendental."""
    fresh_grads = True
    save_output = True

    def forward(self, x):
        x = _float_input(x)
        half = _scalar(0.5, x)
        y = self.xp.tanh(x * half)
        y *= half
        y += half
        return y

    def backward(self, gy):
        y = self.output()
        t = 1 - y
        t *= y
        t *= gy
        return t


@register("relu")
class Relu(Function):
    fresh_grads = True
    def forward(self, x):
        m = x > 0
        self.keep = m
        return x * m

    def backward(self, gy):
        return gy * self.const(self.keep.astype(gy.dtype))


@register("clamp")
class Clamp(Function):
    """clamp(x, min, max); the gradient passes where min <= x <= max."""
    fresh_grads = True

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        y = self.xp.clip(x, self.lo, self.hi)
        self.keep = (y == x)
        return y

    def backward(self, gy):
        return gy * self.const(self.keep.astype(gy.dtype))


@register("cast")
class Cast(Function):
    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return self.call(Cast(self.src), gy)


@register("to_device")
class ToDevice(Function):
    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x):
        self.src = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return self.call(ToDevice(self.src), gy)


@register("clone")
class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


# ========================================================================================= reduce
@register("sum")
class Sum(Function):
    def __init__(self, dims: tuple | None, keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        if not self.keepdim and self.dims is not None:
            gy = gy.reshape(_kept_shape(self.in_shape, self.dims))
        return self.call(BroadcastTo(self.in_shape, contiguous=True), gy)


def _kept_shape(shape: tuple, dims: tuple | None) -> tuple:
    if dims is None:
        return (1,) * len(shape)
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


class _Extremum(Function):
    """amax/amin: the gradient goes to the extreme elements, split evenly among ties."""
    fresh_grads = True

    def __init__(self, dims: tuple | None, keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        y = self.reduce(x, axis=self.dims, keepdims=True)
        m = (x == y).astype(x.dtype if x.dtype.kind == "f" else "float64")  # ties share 1/count
        m /= m.sum(axis=self.dims, keepdims=True)
        self.keep = m
        return y if self.keepdim else y.reshape(_drop_dims(y.shape, self.dims))

    def backward(self, gy):
        m = self.keep
        if not self.keepdim:
            gy = gy.reshape(_kept_shape(m.shape, self.dims))
        return gy * self.const(m)


def _drop_dims(shape: tuple, dims: tuple | None) -> tuple:
    return () if dims is None else tuple(s for i, s in enumerate(shape) if i not in dims)


@register("amax")
class Amax(_Extremum):
    @staticmethod
    def reduce(x, **kw):
        return x.max(**kw)


@register("amin")
class Amin(_Extremum):
    @staticmethod
    def reduce(x, **kw):
        return x.min(**kw)


# ============================================================================ movement and indexing
@register("reshape")
class Reshape(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = shape

    def check(self, x):
        known = 1
        for s in self.shape:
            known *= s if s != -1 else 1
        n_free = _b.sum(1 for s in self.shape if s == -1)
        ok = n_free <= 1 and all(s >= -1 for s in self.shape) and (
            known == x.size if n_free == 0 else known != 0 and x.size % known == 0)
        if not ok:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {fmt_shape(x.shape)} "
                             f"({x.size} elements) to {fmt_shape(self.shape)}; the number of elements "
                             f"must stay the same (at most one -1)")

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


@register("permute")
class Permute(Function):
    def __init__(self, dims: tuple) -> None:
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inv = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inv[d] = i
        return self.call(Permute(tuple(inv)), gy)


@register("broadcast_to")
class BroadcastTo(Function):
    def __init__(self, shape: tuple, contiguous: bool = False) -> None:
        self.shape, self.contiguous = shape, contiguous

    def forward(self, x):
        self.in_shape = x.shape
        y = self.xp.broadcast_to(x, self.shape)
        # contiguous: a sum's gradient. As a zero-stride view it would flow on through the graph
        # (add passes it unchanged), and NumPy runs every later op on it, above all the in-place
        # sums into gradients, through its general buffered iterator: on small arrays one copy
        # here costs less than that (docs/performance.md, per-op overhead).
        return y.copy() if self.contiguous else y

    def backward(self, gy):
        return self.call(SumTo(self.in_shape), gy)


@register("sum_to")
class SumTo(Function):
    """Sum a broadcast array back down to `shape` (the adjoint of broadcast_to)."""

    def __init__(self, shape: tuple) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return autograd.sum_to_array(x, self.shape)

    def backward(self, gy):
        return self.call(BroadcastTo(self.in_shape), gy)


def _is_basic_index(index: tuple) -> bool:
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in index)


def _prepare_index(index: Any, x: Tensor) -> tuple:
    """Turn a user index into a tuple of ints/slices/None/Ellipsis/arrays on x's device."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        elif isinstance(i, slice) and i.step == 0:
            raise ValueError(f"getitem: slice step cannot be zero (index {i}, tensor shape "
                             f"{fmt_shape(x.shape)}); use a positive step, or a negative one to reverse")
        elif isinstance(i, (list,)) or backend.is_cpu_array(i) and x.device != "cpu":
            a = backend.np.asarray(i)
            if a.size == 0 and isinstance(i, list):  # [] selects nothing (NumPy reads it as float64)
                a = a.astype("int64")
            i = backend.to_device(a, x.device)
        if backend.is_array(i):
            if i.dtype.kind == "f":
                raise IndexError(f"getitem: tensors used as indices must be integer or bool, got "
                                 f"{i.dtype}; convert with .long()")
            if backend.device_of(i) != x.device:
                raise backend.DeviceError(f"getitem: index on {backend.device_of(i)} for a tensor on "
                                          f"{x.device}; move the index with .to({x.device!r})")
        out.append(i)
    return tuple(out)


def _index_error(i: Any, dim: int, shape: tuple, later: bool = False) -> IndexError:
    """`i` (an int or an index array) holds an index out of range for dimension `dim` (may sync)."""
    n = shape[dim]
    lo, hi = (int(i.min()), int(i.max())) if backend.is_array(i) else (i, i)
    when = (" (found at the next sync point, not when indexing: GPU index arrays are checked on "
            "the device, without a host round trip per index)") if later else ""
    return IndexError(f"getitem: index {hi if hi >= n else lo} is out of range for dimension {dim} of "
                      f"size {n} (tensor shape {fmt_shape(shape)}); valid indices are {-n}..{n - 1}{when}")


def _check_index_range(index: tuple, shape: tuple) -> tuple:
    """CuPy wraps out-of-range integer-array indices silently: check on both backends (on the GPU
    without a sync, see backend.check_range). Returns the index, GPU index arrays clamped."""
    out = list(index)
    dim = 0
    n_specified = _b.sum(1 for i in index if i is not None and i is not Ellipsis and not (
        backend.is_array(i) and i.dtype == bool))
    for k, i in enumerate(index):
        if i is Ellipsis:
            dim += len(shape) - n_specified - _b.sum(
                i2.ndim - 1 for i2 in index if backend.is_array(i2) and i2.dtype == bool)
            continue
        if i is None:
            continue
        if dim >= len(shape):
            raise IndexError(f"getitem: too many indices for a tensor of shape {fmt_shape(shape)}")
        if backend.is_array(i) and i.dtype == bool:
            if i.shape != shape[dim:dim + i.ndim]:
                raise IndexError(f"getitem: boolean mask of shape {fmt_shape(i.shape)} does not match "
                                 f"the indexed dimensions {fmt_shape(shape[dim:dim + i.ndim])} of a tensor "
                                 f"of shape {fmt_shape(shape)}")
            dim += i.ndim
            continue
        n = shape[dim]
        if backend.is_array(i):
            if i.size:
                out[k] = backend.check_range(i, -n, n - 1, lambda later, i=i, dim=dim:
                                             _index_error(i, dim, shape, later))
        elif isinstance(i, int) and not -n <= i < n:
            raise _index_error(i, dim, shape)
        dim += 1
    return tuple(out)


@register("getitem")
class GetItem(Function):
    """x[index]; checked=True: the caller has already checked the index range (nn.Embedding)."""
    fresh_grads = True
    def __init__(self, index: tuple, checked: bool = False) -> None:
        self.idx = index
        self.checked = checked

    def check(self, x):
        if not self.checked and (not _is_basic_index(self.idx) or any(isinstance(i, int) for i in self.idx)):
            self.idx = _check_index_range(self.idx, x.shape)

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.idx]

    def backward(self, gy):
        return self.call(IndexAdd(self.idx, self.in_shape), gy)


@register("index_add")
class IndexAdd(Function):
    """zeros(shape) with gy added at `index` (repeated indices summed): getitem's backward."""

    def __init__(self, index: tuple, shape: tuple) -> None:
        self.idx, self.shape = index, shape

    def forward(self, gy):
        gx = self.xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic_index(self.idx):
            gx[self.idx] = gy  # basic indexing selects each element at most once
        else:
            backend.scatter_add(gx, self.idx, gy)
        return gx

    def backward(self, ggx):
        return ggx[self.idx]


@register("cat")
class Cat(Function):
    broadcasts = True  # inputs of mixed dtypes are promoted: the engine casts each gradient back

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def check(self, *xs):
        ref = xs[0]
        for k, x in enumerate(xs):
            if x.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref.shape))
                                         if i != self.dim):
                shapes = ", ".join(fmt_shape(x.shape) for x in xs)
                raise ShapeError(f"cat: tensor {k} has shape {fmt_shape(x.shape)} but tensor 0 has "
                                 f"{fmt_shape(ref.shape)}; all shapes must match except in dim "
                                 f"{self.dim} (shapes: {shapes})")

    def forward(self, *xs):
        self.sizes = [x.shape[self.dim] for x in xs]
        return self.xp.concatenate(_promote_all(xs), axis=self.dim)

    def backward(self, gy):
        return self.call(Split(self.sizes, self.dim), gy)


@register("stack")
class Stack(Function):
    broadcasts = True  # inputs of mixed dtypes are promoted: the engine casts each gradient back

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def check(self, *xs):
        for k, x in enumerate(xs):
            if x.shape != xs[0].shape:
                raise ShapeError(f"stack: tensor {k} has shape {fmt_shape(x.shape)} but tensor 0 has "
                                 f"{fmt_shape(xs[0].shape)}; stack needs equal shapes")

    def forward(self, *xs):
        return self.xp.stack(_promote_all(xs), axis=self.dim)

    def backward(self, gy):
        return self.call(Unbind(self.dim), gy)


@register("split")
class Split(Function):
    """Split along `dim` into pieces of the given sizes (views). Backward is one concatenation,
    which is why a time loop should take steps from split/unbind, not from x[t] (see docs)."""
    fresh_grads = True

    def __init__(self, sizes: Sequence[int], dim: int) -> None:
        self.sizes, self.dim = list(sizes), dim

    def forward(self, x):
        self.in_shape = x.shape
        lead = (slice(None),) * self.dim  # basic slicing: views, and much cheaper than xp.split
        out = []
        start = 0
        for size in self.sizes:
            out.append(x[lead + (slice(start, start + size),)])
            start += size
        return tuple(out)

    def backward(self, *gys):
        return self.call(Cat(self.dim), *_fill_missing(self, gys, self.in_shape, self.dim, self.sizes))


def _fill_missing(fn: Function, gys: Sequence, in_shape: tuple, dim: int, sizes: Sequence[int] | None) -> list:
    """Gradients of unused outputs of split/unbind arrive as None: use zeros of the right shape."""
    dtype = next(g.dtype for g in gys if g is not None)
    out = []
    for k, g in enumerate(gys):
        if g is None:
            shape = list(in_shape)
            if sizes is None:
                del shape[dim]
            else:
                shape[dim] = sizes[k]
            g = fn.const(fn.xp.zeros(tuple(shape), dtype=dtype))
        out.append(g)
    return out


@register("unbind")
class Unbind(Function):
    """Remove `dim`, returning each slice (views): x -> x[0], x[1], ...; backward is one stack."""
    fresh_grads = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        self.in_shape = x.shape
        moved = self.xp.moveaxis(x, self.dim, 0) if self.dim else x
        return tuple(moved[i] for i in range(x.shape[self.dim]))

    def backward(self, *gys):
        return self.call(Stack(self.dim), *_fill_missing(self, gys, self.in_shape, self.dim, None))


# ========================================================================================= matmul
@register("matmul")
class Matmul(Function):
    """a @ b with NumPy semantics: 1-D operands are promoted, batch dimensions broadcast."""
    fresh_grads = True
    broadcasts = True
    save_inputs = (0, 1)

    def check(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes "
                             f"{fmt_shape(a.shape)} and {fmt_shape(b.shape)}; use * for scaling")
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != k_b:
            raise ShapeError(f"matmul: shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)} do not "
                             f"fit: the last dim of the first ({a.shape[-1]}) must equal the "
                             f"{'first' if b.ndim == 1 else 'second-to-last'} dim of the second ({k_b})")

    def forward(self, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved_values()
        n = self.next
        if a.ndim == 1 and b.ndim == 1:
            return (gy * b if n[0] is not None else None), (gy * a if n[1] is not None else None)
        if a.ndim == 1:   # (k,) @ (..., k, m) -> (..., m)
            gy2 = gy[..., None, :]
            ga = (gy2 @ b.swapaxes(-1, -2)).reshape(-1, a.shape[0]).sum(0) if n[0] is not None else None
            gb = a[:, None] @ gy2 if n[1] is not None else None
            return ga, gb
        if b.ndim == 1:   # (..., n, k) @ (k,) -> (..., n)
            gy2 = gy[..., None]
            ga = gy2 @ b[None, :] if n[0] is not None else None
            gb = (a.swapaxes(-1, -2) @ gy2).reshape(-1, b.shape[0]).sum(0) if n[1] is not None else None
            return ga, gb
        ga = gy @ b.swapaxes(-1, -2) if n[0] is not None else None
        if n[1] is None:
            return ga, None
        if b.ndim == 2:  # a weight shared across time steps: summed by the engine in one matmul
            return ga, self.weight_grad(a, gy)
        return ga, a.swapaxes(-1, -2) @ gy


@register("addmm")
class Addmm(Matmul):
    """c + a @ b as one op (BLAS's C = A B + C, PyTorch's addmm), for 2-D a and b; c broadcasts to
    the product (a bias, or an RNN step's precomputed input projection). One Function per
    recurrent step instead of two: the per-op bookkeeping is what bounds small RNNs."""
    fresh_grads = False  # c's gradient is gy itself
    save_inputs = (1, 2)

    def check(self, c, a, b):
        Matmul.check(self, a, b)

    def forward(self, c, a, b):
        if a.dtype is not b.dtype:
            a, b = _promote(a, b)
        y = a @ b
        if c.shape == y.shape and c.dtype == y.dtype:
            y += c
            return y
        if c.dtype is not y.dtype:
            c, y = _promote(c, y)
        return c + y

    def backward(self, gy):
        a, b = self.saved_values()
        n = self.next
        ga = gy @ b.swapaxes(-1, -2) if n[1] is not None else None
        gb = self.weight_grad(a, gy) if n[2] is not None else None
        return gy, ga, gb


# ============================================================================ common ops (issue 14)
# Ops that users of other autodiff libraries expect. Primitives only where composing them from the
# ops above would be slower or numerically worse (leaky_relu, softplus, erf, expm1, sin/cos, the
# zero-gradient rounding ops, cumsum); everything else is composed further down ("common ops: functional API")
# so its backward comes for free.
@register("sin")
class Sin(Function):
    fresh_grads = True
    save_inputs = (0,)

    def forward(self, x):
        return self.xp.sin(_float_input(x))

    def backward(self, gy):
        return gy * self.call(Cos(), self.saved_values()[0])


@register("cos")
class Cos(Function):
    fresh_grads = True
    save_inputs = (0,)

    def forward(self, x):
        return self.xp.cos(_float_input(x))

    def backward(self, gy):
        return -(gy * self.call(Sin(), self.saved_values()[0]))


class _Step(Function):
    """sign / floor / ceil: piecewise constant, so the gradient is zero (PyTorch's convention at
    the jumps too). A zero gradient, not None: x.grad is zeros after backward, as in PyTorch."""
    fresh_grads = True

    def forward(self, x):
        return getattr(self.xp, self.name)(x)

    def backward(self, gy):
        return self.const(self.xp.zeros(gy.shape, dtype=gy.dtype))


@register("sign")
class Sign(_Step):
    pass


@register("floor")
class Floor(_Step):
    pass


@register("ceil")
class Ceil(_Step):
    pass


@register("softplus")
class Softplus(Function):
    """log(1 + exp(beta x)) / beta, computed as max(z, 0) + log1p(exp(-|z|)), z = beta x: exact for
    large |x| (no overflow, no log(1 + tiny) = 0) and in one Function (NumPy's logaddexp is the
    same formula but ~30x slower than exp). Above `threshold` (beta x > threshold) it is x itself,
    as in PyTorch. The gradient sigmoid(beta x) is computed as exp(beta (x - y)): right in
    the far negative tail too (sigmoid(-60) = 8.8e-27 in float32), and exactly 1 above threshold."""
    fresh_grads = True
    save_inputs = (0,)
    save_output = True

    def __init__(self, beta: float, threshold: float) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        xp = self.xp
        x = _float_input(x)
        bx = x * self.beta if self.beta != 1 else x
        y = xp.exp(-xp.abs(bx))
        y = xp.log1p(y, out=y)
        y += xp.maximum(bx, 0)
        if self.beta != 1:
            y /= self.beta
        return self.xp.where(bx > self.threshold, x, y)

    def backward(self, gy):
        (x,) = self.saved_values()
        d = x - self.output()
        return gy * self.call(Exp(), d * self.beta if self.beta != 1 else d)


@register("leaky_relu")
class LeakyRelu(Function):
    """x where x > 0, else slope * x, as one op: composed (compare, mul, where) it took 5.6x the
    time of relu (forward + backward, (64, 256) float32, CPU); as one op 1.0x."""
    fresh_grads = True

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def forward(self, x):
        x = _float_input(x)
        w = (x > 0).astype(x.dtype)
        w *= 1.0 - self.slope
        w += self.slope          # the slope of each element: 1 or negative_slope
        self.keep = w
        return x * w

    def backward(self, gy):  # piecewise linear: the second derivative is 0, a constant mask is right
        return gy * self.const(self.keep)


@register("expm1")
class Expm1(Function):
    """exp(x) - 1 without the cancellation near x = 0 (float32 exp(1e-3) - 1 is off by 1e-5
    relative); ELU uses it, as PyTorch's does."""
    fresh_grads = True
    save_inputs = (0,)

    def forward(self, x):
        return self.xp.expm1(_float_input(x))

    def backward(self, gy):  # exp(x), not y + 1: that would be 0 in the tail, -1 + 1
        return gy * self.call(Exp(), self.saved_values()[0])


@register("erf")
class Erf(Function):
    """The error function (for the exact GELU). d/dx erf(x) = 2/sqrt(pi) exp(-x^2)."""
    fresh_grads = True
    save_inputs = (0,)

    def forward(self, x):
        return backend.erf(_float_input(x))

    def backward(self, gy):
        (x,) = self.saved_values()
        return gy * (self.call(Exp(), -(x * x)) * (2.0 / math.sqrt(math.pi)))


@register("cumsum")
class Cumsum(Function):
    """Running sum along `dim`; its adjoint is the running sum from the other end."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        return self.xp.cumsum(x, axis=self.dim)

    def backward(self, gy):
        rev = (slice(None),) * self.dim + (slice(None, None, -1),)
        return self.call(Cumsum(self.dim), gy[rev])[rev]


# -------------------------------------- common ops: functional API (Tensor methods: the _bind table)
def sin(x): return Sin()(x)
def cos(x): return Cos()(x)
def sign(x): return Sign()(x)
def floor(x): return Floor()(x)
def ceil(x): return Ceil()(x)
def erf(x): return Erf()(x)
def expm1(x): return Expm1()(x)


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, exact for large |x| (a primitive: see Softplus); linear above
    beta * x > threshold, as PyTorch's F.softplus."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
        raise ValueError(f"softplus: beta must be a positive number, got {beta!r}")
    return Softplus(float(beta), float(threshold))(_t(x, "softplus"))


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x (a primitive: see LeakyRelu)."""
    return LeakyRelu(float(negative_slope))(_t(x, "leaky_relu"))


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * expm1(x). Composed; expm1 only sees min(x, 0), so large
    positive x can neither overflow nor turn the masked gradient into 0 * inf = NaN."""
    x = _t(x, "elu")
    neg = Expm1()(clamp(x, max=0.0))  # clamp: an integer x becomes float32 first
    return Where((x.data > 0))(x, neg * alpha if alpha != 1 else neg)


_SQRT1_2, _SQRT2_PI = 1.0 / math.sqrt(2.0), math.sqrt(2.0 / math.pi)


def gelu(x, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF. approximate="none" (PyTorch's default): the exact
    0.5 x (1 + erf(x / sqrt 2)), with erf a primitive (NumPy has none: backend.erf); "tanh": the
    approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's approximate="tanh"."""
    x = _t(x, "gelu")
    if approximate == "none":
        return x * (erf(x * _SQRT1_2) + 1.0) * 0.5
    if approximate == "tanh":
        return x * (tanh((x + x * x * x * 0.044715) * _SQRT2_PI) + 1.0) * 0.5  # x*x*x: pow is ~100x slower
    raise ValueError(f"gelu: approximate must be 'none' (exact, erf) or 'tanh', got {approximate!r}")


def flip(x, *dims):
    """Reverse the order along `dims` (flip(x, 0), flip(x, (0, 1)), x.flip(0, 1)). A view; its
    backward is the same reversal (composed from getitem)."""
    x = _t(x, "flip")
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if not dims:
        raise ValueError("flip: give the dims to reverse, e.g. x.flip(0)")
    ds = _norm_dims(dims, x.ndim, "flip")
    return GetItem(tuple(slice(None, None, -1) if i in ds else slice(None) for i in range(x.ndim)))(x)


def repeat(x, *sizes):
    """PyTorch's Tensor.repeat (NumPy's tile): repeat sizes[i] times along dim i; extra leading
    sizes add dims. Composed: reshape, expand, reshape (backward: sum over the copies)."""
    x = _t(x, "repeat")
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim or any(r < 0 for r in sizes):
        raise ValueError(f"repeat: give one non-negative count per dim (at least {x.ndim} for a tensor "
                         f"of shape {fmt_shape(x.shape)}), got {sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    y = x.reshape(*[v for s in shape for v in (1, s)])
    y = y.expand(*[v for r, s in zip(sizes, shape) for v in (r, s)])
    return y.reshape(*[r * s for r, s in zip(sizes, shape)])


def cumsum(x, dim):
    x = _t(x, "cumsum")
    if x.ndim == 0:
        return Cumsum(0)(x.reshape(1)).reshape(())
    return Cumsum(_norm_dim(dim, x.ndim, "cumsum"))(x)


def _triangle(x, diagonal: int, upper: bool, op: str) -> Tensor:
    x = _t(x, op)
    if x.ndim < 2:
        raise ShapeError(f"{op}: needs a matrix or a batch of matrices (at least 2 dims), got shape "
                         f"{fmt_shape(x.shape)}")
    n, m = x.shape[-2:]
    xp = backend.array_module(x.data)
    keep = xp.tri(n, m, diagonal - 1 if upper else diagonal, dtype=bool)
    if upper:
        keep = ~keep
    # where, not a multiply by a 0/1 mask: -inf * 0 would be NaN (triu(full(-inf), 1) is the causal
    # mask), and bool stays bool. Composed: the gradient is where's.
    return Where(keep)(x, _const(xp.zeros((), dtype=x.dtype)))


def tril(x, diagonal=0):
    """The lower triangle (j <= i + diagonal) of the last two dims, zeros elsewhere."""
    return _triangle(x, diagonal, False, "tril")


def triu(x, diagonal=0):
    """The upper triangle (j >= i + diagonal) of the last two dims, zeros elsewhere."""
    return _triangle(x, diagonal, True, "triu")


def var(x, dim=None, *, correction=1, keepdim=False):
    """sum((x - mean)^2) / (N - correction) over `dim` (all dims by default); correction=1 is the
    unbiased sample variance (PyTorch's default), 0 the population variance. Composed."""
    x = _t(x, "var")
    dims = _norm_dims(dim, x.ndim, "var")
    n = 1
    for d in (range(x.ndim) if dims is None else dims):
        n *= x.shape[d]
    if n - correction <= 0:
        raise ValueError(f"var/std: {n} element(s) over dim {dim} with correction={correction} leave "
                         f"{n - correction} degrees of freedom (the result would be inf or NaN); "
                         f"use correction=0 for the population variance, or reduce over more elements")
    d = x - mean(x, dims, keepdim=True)
    return Sum(dims, keepdim)(d * d) / (n - correction)


def std(x, dim=None, *, correction=1, keepdim=False):
    """sqrt(var(x, dim, correction=correction)); its gradient is infinite where std is 0."""
    return var(x, dim, correction=correction, keepdim=keepdim).sqrt()


def _where_numbers(cond: Any, a: Any, b: Any) -> Tensor:
    """where(cond, 1.0, 0.0): both branches numbers, so a constant tensor on cond's device, dtype
    as PyTorch picks it (float32 if either is a float, else int64, bool for two bools)."""
    c = cond.data if isinstance(cond, Tensor) else cond
    if not backend.is_array(c):
        c = backend.np.asarray(c)
    if c.dtype != bool:
        raise DTypeError(f"where: cond must be a boolean tensor, got {c.dtype}; compare first, e.g. x > 0")
    for v in (a, b):
        if not isinstance(v, (bool, int, float)):
            raise TypeError(f"where: expected Tensors or Python numbers, got {type(v).__name__}")
    kinds = {type(v) for v in (a, b)}
    dt = "float32" if float in kinds else "bool" if kinds == {bool} else "int64"
    return _const(backend.array_module(c).where(c, a, b).astype(dt))


# ======================================================================== functional API (public)
def _t(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x


def add(a, b): return _apply(Add(), a, b)
def sub(a, b): return _apply(Sub(), a, b)
def mul(a, b): return _apply(Mul(), a, b)
def div(a, b): return _apply(Div(), a, b)
def neg(x): return _apply(Neg(), x)
def exp(x): return _apply(Exp(), x)
def log(x): return _apply(Log(), x)
def sqrt(x): return _apply(Sqrt(), x)
def abs(x): return _apply(Abs(), x)  # noqa: A001 - PyTorch's name
def tanh(x): return _apply(Tanh(), x)
def sigmoid(x): return _apply(Sigmoid(), x)
def relu(x): return _apply(Relu(), x)
def clone(x): return _apply(Clone(), x)
def maximum(a, b): return _apply(Maximum(), a, b)
def minimum(a, b): return _apply(Minimum(), a, b)


def _number(v: Any) -> Any:
    """A Python int or float for a number of any kind: NumPy 2 keeps the dtype of a NumPy scalar
    (float32 array ** np.float64(2) is float64), Python numbers adapt to the array."""
    return float(v) if isinstance(v, float) else int(v)


def pow(x, exponent):  # noqa: A001 - PyTorch's name
    if isinstance(x, Tensor) and isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        if exponent.__class__ is not int and exponent.__class__ is not float:
            exponent = _number(exponent)  # np.float64 is a float subclass
        if exponent.__class__ is float and x.data.dtype.kind != "f":
            x = Cast(float32)(x)  # int ** 0.5: the default float dtype, as in PyTorch
        return PowScalar(exponent)(x)
    return Pow()(x, exponent)


def addmm(input, mat1, mat2):  # noqa: A002 - PyTorch's names
    """input + mat1 @ mat2 in one op (mat1, mat2 2-D; input broadcasts to the product)."""
    if not all(isinstance(t, Tensor) for t in (input, mat1, mat2)):
        raise TypeError("addmm: input, mat1 and mat2 must be Tensors")
    if mat1.ndim != 2 or mat2.ndim != 2:
        return input + matmul(mat1, mat2)
    return Addmm()(input, mat1, mat2)


def matmul(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"matmul: both operands must be Tensors, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    return _apply(Matmul(), a, b)


def clamp(x, min=None, max=None):  # noqa: A002 - PyTorch's names
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    x = _t(x, "clamp")
    bounds = []
    for name, v in (("min", min), ("max", max)):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not (
                    backend.is_array(v) and v.ndim == 0 and v.dtype.kind in "iuf"):
                raise TypeError(f"clamp: {name} must be a number, got {type(v).__name__}; for "
                                f"elementwise bounds use tg.maximum(x, lo) and tg.minimum(x, hi)")
            v = _number(v.item() if backend.is_array(v) else v)
        bounds.append(v)
    lo, hi = bounds
    if x.data.dtype.kind != "f" and (lo.__class__ is float or hi.__class__ is float):
        x = Cast(float32)(x)  # an integer tensor clamped to a float bound is float32, as in PyTorch
    return Clamp(lo, hi)(x)


def where(cond, a, b):
    """a where cond is True, else b (cond, a and b broadcast; cond is a bool Tensor or array)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return _where_numbers(cond, a, b)
    ref = a if isinstance(a, Tensor) else b
    c = cond.data if isinstance(cond, Tensor) else cond
    if not backend.is_array(c):
        c = backend.np.asarray(c)
    if c.dtype != bool:
        raise DTypeError(f"where: cond must be a boolean tensor, got {c.dtype}; compare first, e.g. x > 0")
    if isinstance(ref, Tensor) and backend.device_of(c) != ref.device:
        raise backend.DeviceError(f"where: cond is on {backend.device_of(c)} but the values are on "
                                  f"{ref.device}; move cond with .to({ref.device!r})")
    try:
        return Where(c)(a, b)
    except ShapeError:
        shapes = [fmt_shape(v.shape) if hasattr(v, "shape") else "() (a number)" for v in (a, b)]
        raise ShapeError(f"where: cannot broadcast cond of shape {fmt_shape(c.shape)}, a of shape "
                         f"{shapes[0]} and b of shape {shapes[1]} together; the three shapes must be "
                         f"equal or broadcastable (sizes match or are 1, aligned from the right)") from None


def sum(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    x = _t(x, "sum")
    return Sum(_norm_dims(dim, x.ndim, "sum"), keepdim)(x)


def mean(x, dim=None, keepdim=False):
    x = _t(x, "mean")
    dims = _norm_dims(dim, x.ndim, "mean")
    n = 1
    for d in (range(x.ndim) if dims is None else dims):
        n *= x.shape[d]
    return Sum(dims, keepdim)(x) / n


def _extremum_dims(x: Tensor, dim: Any, op: str) -> tuple | None:
    x = _t(x, op)
    dims = _norm_dims(dim, x.ndim, op)
    if x.data.size == 0:
        empty = [d for d in (range(x.ndim) if dims is None else dims) if x.shape[d] == 0]
        if empty:
            what = "has no elements" if dims is None else f"has size 0 in dim {empty[0]}"
            raise ShapeError(f"{op}: the tensor of shape {fmt_shape(x.shape)} {what}, and an empty set "
                             f"has no {'maximum' if op == 'amax' else 'minimum'}; reduce over a dim "
                             f"whose size is not 0, or check numel() first")
    return dims


def amax(x, dim=None, keepdim=False):
    return Amax(_extremum_dims(x, dim, "amax"), keepdim)(x)


def amin(x, dim=None, keepdim=False):
    return Amin(_extremum_dims(x, dim, "amin"), keepdim)(x)


def logsumexp(x, dim=-1, keepdim=False):
    """log(sum(exp(x), dim)), computed as m + log(sum(exp(x - m))) with m = max(x) (no overflow).
    m is a constant (detached): the result does not depend on it, so neither does the gradient."""
    m = amax(x, dim, keepdim=True).detach()
    y = (x - m).exp().sum(dim, keepdim=True).log() + m
    return y if keepdim else y.squeeze(dim)


def log_softmax(x, dim=-1):
    """x - logsumexp(x): stable for large logits."""
    return x - logsumexp(x, dim, keepdim=True)


def softmax(x, dim=-1):
    """exp(x - max) / sum(exp(x - max))."""
    e = (x - amax(x, dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


MaxMin = namedtuple("MaxMin", ["values", "indices"])


def max(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    """max() -> Tensor; max(dim) -> (values, indices) as in PyTorch; max(other) -> maximum."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    return MaxMin(amax(x, dim, keepdim), argmax(x, dim, keepdim))


def min(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    return MaxMin(amin(x, dim, keepdim), argmin(x, dim, keepdim))


def _arg(x: Tensor, dim: int | None, keepdim: bool, which: str) -> Tensor:
    xp = backend.array_module(x.data)
    if dim is None:
        return _const(xp.asarray(getattr(x.data, which)()))
    d = _norm_dim(dim, x.ndim, which)
    r = getattr(x.data, which)(axis=d)
    return _const(xp.expand_dims(r, d) if keepdim else r)


def argmax(x, dim=None, keepdim=False): return _arg(x, dim, keepdim, "argmax")
def argmin(x, dim=None, keepdim=False): return _arg(x, dim, keepdim, "argmin")


def reshape(x, *shape):
    return Reshape(_shape_arg(shape))(x)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = _norm_dim(start_dim, x.ndim, "flatten"), _norm_dim(end_dim, x.ndim, "flatten")
    return x.reshape(*x.shape[:s], -1, *x.shape[e + 1:])


def permute(x, *dims):
    dims = _shape_arg(dims)
    if sorted(_norm_dim(d, x.ndim, "permute") for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of a tensor of "
                         f"shape {fmt_shape(x.shape)}")
    return Permute(tuple(d % x.ndim for d in dims))(x)


def transpose(x, dim0, dim1):
    d0, d1 = _norm_dim(dim0, x.ndim, "transpose"), _norm_dim(dim1, x.ndim, "transpose")
    if x.ndim == 0:  # transpose(0, -1) of a scalar is the scalar, as in PyTorch
        return x
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute(tuple(dims))(x)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    return BroadcastTo(shape)(x)


def expand(x, *shape):
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return broadcast_to(x, shape)


def sum_to(x, shape):
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    return SumTo(shape)(x)


def unsqueeze(x, dim):
    d = _norm_dim(dim, x.ndim + 1, "unsqueeze")
    return x.reshape(*x.shape[:d], 1, *x.shape[d:])


def squeeze(x, dim=None):
    if dim is None:
        return x.reshape(*[s for s in x.shape if s != 1])
    dims = _norm_dims(dim, x.ndim, "squeeze")
    return x.reshape(*[s for i, s in enumerate(x.shape) if not (i in dims and s == 1)])


def getitem(x, index):
    return GetItem(_prepare_index(index, x))(x)


def _has_dims(x: Tensor, op: str, fix: str) -> None:
    if x.ndim == 0:
        raise ShapeError(f"{op}: a 0-d tensor (a scalar) has no dimension to {op} along; {fix}")


def _tensor_list(tensors: Sequence[Tensor], op: str) -> list:
    ts = list(tensors)
    if not ts:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    for k, t in enumerate(ts):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: element {k} is a {type(t).__name__}, expected a Tensor")
    return ts


def cat(tensors, dim=0):
    """Concatenate along an existing dim (PyTorch's torch.cat)."""
    ts = _tensor_list(tensors, "cat")
    for k, t in enumerate(ts):
        if t.ndim == 0:
            raise ShapeError(f"cat: tensor {k} is 0-d (a scalar) and has no dimension to concatenate "
                             f"along; join scalars with tg.stack(tensors), or reshape each to (1,)")
    return Cat(_norm_dim(dim, ts[0].ndim, "cat"))(*ts)


def stack(tensors, dim=0):
    """Join along a new dim (PyTorch's torch.stack)."""
    ts = _tensor_list(tensors, "stack")
    return Stack(_norm_dim(dim, ts[0].ndim + 1, "stack"))(*ts)


def split(x, split_size_or_sections, dim=0):
    """PyTorch semantics: an int is the size of each piece (last may be smaller); a list gives sizes."""
    _has_dims(x, "split", "reshape it to (1,) first")
    d = _norm_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0:
            raise ValueError(f"split: split_size must be positive, got {s}")
        sizes = [s] * (n // s) + ([n % s] if n % s else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if _b.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} add up to {_b.sum(sizes)} but dim {d} of "
                             f"shape {fmt_shape(x.shape)} has size {n}")
    if len(sizes) == 1:
        return (x,)
    return Split(sizes, d)(x)


def chunk(x, chunks, dim=0):
    """Split into `chunks` pieces along dim (PyTorch semantics: sizes ceil(n/chunks))."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    shape = x.data.shape
    if not shape:
        _has_dims(x, "chunk", "reshape it to (1,) first")
    d = dim if 0 <= dim < len(shape) else _norm_dim(dim, len(shape), "chunk")
    n = shape[d]
    if n % chunks == 0 and chunks > 1:  # the common case (gates of an RNN cell), kept lean
        return Split([n // chunks] * chunks, d)(x)
    return split(x, -(-n // chunks), d)


def unbind(x, dim=0):
    _has_dims(x, "unbind", "it is already a single element (use x.item() or x itself)")
    return Unbind(_norm_dim(dim, x.ndim, "unbind"))(x)


def to(x, *args, device=None, dtype=None, copy=False):
    """x.to(device) / x.to(dtype) / x.to(device, dtype) / x.to(device=..., dtype=...). Differentiable."""
    for a in args:
        if isinstance(a, str) and (a.startswith("cuda") or a == "cpu"):
            device = a
        elif isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        else:
            dtype = a
    y = x
    if dtype is not None:
        dt = as_dtype(dtype)
        if dt != y.dtype:
            if y.requires_grad and dt.kind != "f":
                raise DTypeError(f"to: cannot cast a tensor that requires grad to {dt}; detach() it first")
            y = Cast(dt)(y)
    if device is not None:
        dev = backend.normalize_device(device)
        if dev != y.device:
            y = ToDevice(dev)(y)
    return clone(y) if copy and y is x else y


def _compare(name: str, fn: str):
    def op(a, b):
        ref = a if isinstance(a, Tensor) else b
        ad = a.data if isinstance(a, Tensor) else autograd._const_like(a, ref.data, name).data
        bd = b.data if isinstance(b, Tensor) else autograd._const_like(b, ref.data, name).data
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            autograd._check_same_device(name, a, b)
        try:
            return _const(getattr(ad, fn)(bd))
        except ValueError as e:
            raise ShapeError(f"{name}: cannot compare shapes {fmt_shape(ad.shape)} and "
                             f"{fmt_shape(bd.shape)} ({e})") from None
    op.__name__ = name
    return op


eq, ne = _compare("eq", "__eq__"), _compare("ne", "__ne__")
lt, le = _compare("lt", "__lt__"), _compare("le", "__le__")
gt, ge = _compare("gt", "__gt__"), _compare("ge", "__ge__")


def _setitem(x: Tensor, index: Any, value: Any) -> None:
    x._write(_prepare_index(index, x), value, "__setitem__")  # checked, bumps x's version


# ======================================================================= Tensor methods, operators
def _bind() -> None:
    T = Tensor
    for name, f in dict(add=add, sub=sub, mul=mul, div=div, neg=neg, exp=exp, log=log, sqrt=sqrt,
                        abs=abs, tanh=tanh, sigmoid=sigmoid, relu=relu, clone=clone, pow=pow,
                        matmul=matmul, clamp=clamp, clip=clamp, maximum=maximum, minimum=minimum,
                        sum=sum, mean=mean, amax=amax, amin=amin, max=max, min=min, argmax=argmax,
                        softmax=softmax, log_softmax=log_softmax, logsumexp=logsumexp,
                        argmin=argmin, reshape=reshape, view=reshape, flatten=flatten,
                        permute=permute, transpose=transpose, expand=expand,
                        broadcast_to=broadcast_to, sum_to=sum_to, unsqueeze=unsqueeze,
                        squeeze=squeeze, split=split, chunk=chunk, unbind=unbind, to=to,
                        eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge,
                        sin=sin, cos=cos, sign=sign, floor=floor, ceil=ceil, erf=erf, expm1=expm1,
                        softplus=softplus, leaky_relu=leaky_relu, elu=elu, gelu=gelu, flip=flip,
                        repeat=repeat, cumsum=cumsum, tril=tril, triu=triu, var=var, std=std).items():
        setattr(T, name, f)
    T.__add__ = T.__radd__ = add
    T.__sub__ = sub
    T.__rsub__ = lambda x, c: Sub()(c, x)
    T.__mul__ = T.__rmul__ = mul
    T.__truediv__ = div
    T.__rtruediv__ = lambda x, c: Div()(c, x)
    T.__neg__ = neg
    T.__pow__ = pow
    T.__rpow__ = lambda x, c: Pow()(c, x)
    T.__matmul__ = matmul
    T.__rmatmul__ = lambda x, c: matmul(c, x)
    T.__abs__ = abs
    T.__getitem__ = getitem
    T.__setitem__ = _setitem
    T.__eq__, T.__ne__, T.__lt__, T.__le__, T.__gt__, T.__ge__ = eq, ne, lt, le, gt, ge
    T.__iter__ = lambda x: iter(unbind(x, 0)) if x.ndim else (_ for _ in ()).throw(
        TypeError("iteration over a 0-d tensor"))
    T.T = property(lambda x: Permute(tuple(reversed(range(x.ndim))))(x) if x.ndim > 1 else x)
    T.mT = property(lambda x: transpose(x, -1, -2))
    T.swapaxes = transpose
    T.float = lambda x: to(x, dtype="float32")
    T.double = lambda x: to(x, dtype="float64")
    T.long = lambda x: to(x, dtype="int64")
    T.cpu = lambda x: to(x, device="cpu")
    T.cuda = lambda x, device="cuda": to(x, device=device)
    T.contiguous = lambda x: x
    T.any = lambda x: _const(backend.array_module(x.data).asarray(x.data.any()))
    T.all = lambda x: _const(backend.array_module(x.data).asarray(x.data.all()))


_bind()

