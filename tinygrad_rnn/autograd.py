"""The autodiff engine: `Function` (one per primitive op), grad mode, graph tags, backward traversal.

Imports: errors, backend, tensor. Nothing here knows about nn, optim or viz; they read what the
engine records (tags, creation index, visit order, optional gradient norms).

Graph layout (PyTorch-like): a non-leaf Tensor points to its `creator` Function; a Function points
to its parents through `next`, a tuple with one entry per tensor input: `(function, output_index)`
for a non-leaf input, `(leaf_tensor, 0)` for a leaf that requires grad, `None` otherwise. Functions
hold strong references only to what their backward needs (`saved`), never to their outputs, so the
graph has no reference cycles and reference counting frees it as soon as the user drops the root.
"""
from __future__ import annotations

import contextvars
import gc
import heapq
import threading
from typing import Any, Callable, Iterable, Sequence

from . import backend
from .errors import (AnomalyError, DTypeError, GradError, GraphFreedError, InplaceError, ShapeError,
                     dtype_problem, fmt_shape)
from .tensor import Tensor, last_write, write_clock

_np = backend.np  # NumPy, named here only for the CPU fast paths (type checks, errstate)
_ndarray = backend.ndarray
_make = Tensor._make
_as_array = backend.as_array
_array_module = backend.array_module

# ------------------------------------------------------------------------------------ engine state
# Grad mode, tags, anomaly checks, gradient recording, observers and the backward mode are per
# thread (and per asyncio task), as PyTorch's grad mode is per thread: a no_grad() in one thread
# never changes what another thread records. They live in one immutable `_State` held by a
# ContextVar: every op reads it once (ContextVar.get is cheaper than a threading.local
# attribute), and a mode change installs a new record, so no thread ever sees another's change.
class _State:
    """One thread's engine state. Never mutated: `replace` makes the changed copy."""

    __slots__ = ("grad_enabled", "tags", "record", "anomaly", "observers", "fast")

    def __init__(self, grad_enabled: bool = True, tags: tuple = (), record: bool = False,
                 anomaly: bool = False, observers: tuple = (), fast: bool = False) -> None:
        self.grad_enabled = grad_enabled  # record a graph (no_grad / enable_grad / set_grad_enabled)
        self.tags = tags                  # ((kind, value), ...) pushed by scope(), put on new Functions
        self.record = record              # record_grads(): backward stores gradient norms (viz)
        self.anomaly = anomaly            # detect_anomaly(): check outputs and gradients
        self.observers = observers        # observe_backward(): callbacks run in backward
        self.fast = fast                  # inside a plain backward: gradient values are arrays

    def replace(self, **changes: Any) -> "_State":
        new = object.__new__(_State)
        for k in _State.__slots__:
            setattr(new, k, changes[k] if k in changes else getattr(self, k))
        return new


_STATE: contextvars.ContextVar = contextvars.ContextVar("tinygrad_rnn_engine", default=_State())
_state = _STATE.get          # the calling thread's state (hot path: one call per op)
_set_state = _STATE.set
_META: dict = {}             # shape -> interned out_meta record ((shape, dtype),)
_new = object.__new__
_counter = write_clock       # creation index: stable node ids for drawings, tie-break in the heap;
#                              the same clock stamps in-place writes (Tensor._bump_version)


class _Override:
    """Base of the context managers that change one field of the calling thread's state and put
    back, on exit, that field's previous value (only that field: a plain set_grad_enabled() call
    inside a scope() block survives the scope's exit, as in PyTorch)."""
    field = ""

    def _push(self, value: Any) -> None:
        st = _state()
        self._prev = getattr(st, self.field)
        _set_state(st.replace(**{self.field: value}))

    def __exit__(self, *exc: Any) -> None:
        _set_state(_state().replace(**{self.field: self._prev}))


def is_grad_enabled() -> bool:
    return _state().grad_enabled


class _GradMode(_Override):
    """Base of no_grad / enable_grad / set_grad_enabled: a context manager and a decorator."""
    field = "grad_enabled"
    mode = True

    def __enter__(self) -> None:
        self._push(self.mode)

    def __call__(self, func: Callable) -> Callable:
        import functools

        mode = self.mode

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return func(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Ops run inside record no graph (inference, optimizer updates). Also a decorator.
    Per thread: other threads keep recording."""
    mode = False


class enable_grad(_GradMode):
    """Turns graph recording back on inside a no_grad block. Also a decorator."""
    mode = True


class set_grad_enabled(_GradMode):
    """Set grad mode for the calling thread. As in PyTorch it takes effect when called, so a plain
    `set_grad_enabled(False)` switches recording off until `set_grad_enabled(True)`; used with
    `with`, the previous mode comes back on exit; used as a decorator, it applies to each call."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._push(self.mode)

    def __enter__(self) -> None:
        pass  # already set by __init__

    def __call__(self, func: Callable) -> Callable:
        self.__exit__()  # decorating is not a mode change: undo __init__'s
        return super().__call__(func)


class scope(_Override):
    """Tag every op created inside with (kind, value), e.g. scope("step", 3) or scope("module", "lstm").

    Tags are what viz uses to cluster a graph by time step or module, and what detect_anomaly prints.
    Per thread: ops created by other threads are not tagged.
    """
    field = "tags"

    def __init__(self, kind: str, value: Any) -> None:
        self.tag = (kind, value)

    def __enter__(self) -> "scope":
        self._push(_state().tags + (self.tag,))
        return self


def current_tags() -> tuple:
    return _state().tags


_gc_lock = threading.Lock()
_gc_depth = 0                # threads inside gc_paused (or a backward) right now
_gc_was_enabled = False


class gc_paused:
    """Pause Python's cyclic garbage collector inside (e.g. around an RNN's time loop). The graph
    has no reference cycles (reference counting frees it), but it is a large number of new
    objects, and each automatic collection pass would walk all of them again. The collector is
    process-wide: it is switched back on when the last thread leaves its paused region."""

    def __enter__(self) -> None:
        global _gc_depth, _gc_was_enabled
        with _gc_lock:
            if _gc_depth == 0:
                _gc_was_enabled = gc.isenabled()
                gc.disable()
            _gc_depth += 1

    def __exit__(self, *exc: Any) -> None:
        global _gc_depth
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


class record_grads(_Override):
    """Inside this context, backward stores on each Function the norms of the gradients it
    received (`grad_out_norms`) and sent to each input (`grad_in_norms`), for drawings."""
    field = "record"

    def __enter__(self) -> None:
        self._push(True)


class detect_anomaly(_Override):
    """Check every op's output in forward for NaN and every gradient in backward for NaN and Inf;
    the first one found raises AnomalyError naming the op, its tags (module, step), the user line
    that created it, or the input that carried the NaN in. Inf in a forward value is legitimate
    (the library masks attention scores with -inf) and is not reported. Off by default: when off
    it costs one flag test per op."""
    field = "anomaly"

    def __enter__(self) -> None:
        self._push(True)
        # AnomalyError reports each NaN/Inf with the op, tags and user line; NumPy's context-free
        # RuntimeWarning (an error under -W error) would otherwise preempt that report.
        self._errstate = _np.errstate(all="ignore")
        self._errstate.__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._errstate.__exit__(*exc)


class observe_backward(_Override):
    """Inside this context, every backward calls `callback(fn, grads_out, grads_in)` right after
    each Function's backward, in the engine's visit order (`fn.visit`). `grads_out` holds the
    gradient of each of fn's outputs (None where none arrived), `grads_in` the gradient fn sends
    along each edge of `fn.next` (None where no gradient flows), already reduced to that input's
    shape and dtype. Values are arrays (Tensors under create_graph); a callback must not modify
    them, and must copy what it keeps (the engine later sums further terms into some in place).
    This is the public way for tools (viz.grad_by_step, the BPTT explorer) to watch the backward
    sweep; it costs one test per Function when no observer is active. Per thread: only
    backward passes run by the thread that entered the context call the callback."""
    field = "observers"

    def __init__(self, callback: Callable[["Function", tuple, tuple], None]) -> None:
        self.callback = callback

    def __enter__(self) -> "observe_backward":
        self._push(_state().observers + (self.callback,))
        return self


def _user_frame(frame: Any = None) -> str:
    """file:line (source) of the innermost frame outside the tinygrad_rnn package (the user's
    code), walking out from `frame` (default: the caller's); viz.recording uses it too."""
    import linecache
    import os
    import sys

    pkg = os.path.dirname(os.path.abspath(__file__))
    f = sys._getframe(1) if frame is None else frame
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(pkg):
        f = f.f_back
    if f is None:
        return "<unknown>"
    src = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
    return f"{f.f_code.co_filename}:{f.f_lineno} ({src})"


def describe_tags(tags: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in tags) if tags else "no tags"


def step_of(tags: tuple, kind: str = "step") -> Any:
    """The value of the innermost `(kind, value)` tag (the time step of an op), or None."""
    value = None
    for k, v in tags:
        if k == kind:
            value = v
    return value


def _first_nan(x: Any) -> str:
    xp = _array_module(x)
    idx = xp.argwhere(xp.isnan(x))[0] if x.ndim else ()
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def check_input(t: Tensor, name: str = "input", time_dim: int | None = None, where: str = "") -> None:
    """Under detect_anomaly(), raise AnomalyError if `t`, a tensor fed to the library from
    outside, holds NaN: "input x has NaN at [3, 0, 0]: time step 3". `time_dim` is the time
    axis of a sequence (layers pass it); `where` names the receiver. No-op when the mode is off."""
    if not _state().anomaly:
        return
    x = t.data
    if x.dtype.kind != "f" or x.size == 0:
        return
    xp = _array_module(x)
    if bool(xp.isnan(x).any()):
        at = _first_nan(x)
        step = None
        if time_dim is not None and x.ndim:
            step = int(xp.argwhere(xp.isnan(x))[0][time_dim])
        raise AnomalyError(_input_nan_message(t, name, at, step, where))


def _input_nan_message(t: Tensor, name: str, at: str, step: Any, where: str) -> str:
    x = t.data
    n = int(_array_module(x).isnan(x).sum())
    return (f"input {t.name or name} has NaN at {at}" + (f": time step {step}" if step is not None else "")
            + f" ({n} NaN value{'s' if n != 1 else ''} in this {x.dtype} tensor of shape "
            f"{fmt_shape(x.shape)}{', ' + where if where else ''}). The NaN arrived with the data: "
            f"no op produced it. Check how the input was made (missing values, a division by zero "
            f"in preprocessing, padding filled with NaN instead of 0)")


def _input_name(fn: "Function", i: int) -> str | None:
    """The math name of input i of `fn` (a leaf's name, or the name its creator gave it)."""
    edge = fn.next[i] if i < len(fn.next) else None
    if edge is None:
        return None
    node, idx = edge
    if isinstance(node, Tensor):
        return node.name
    return node.__dict__.get("out_names", {}).get(idx)


def _check_finite(fn: "Function", arrays: Sequence[Any], where: str, inputs: Sequence[Any],
                  tensors: Sequence[Tensor] | None = None) -> None:
    """detect_anomaly's check. Forward (`tensors` given): NaN only, since Inf is a legitimate
    value there (-inf masks attention scores, log(0) of a masked probability); a NaN already in
    an input that no op produced (a leaf, data) is reported as that input's. Backward: NaN and
    Inf, since no gradient should be infinite."""
    forward = tensors is not None
    for i, a in enumerate(arrays):
        if a is None or a.dtype.kind != "f":
            continue
        xp = _array_module(a)
        if forward:
            if not bool(xp.isnan(a).any()):
                continue
            for j, (t, x) in enumerate(zip(tensors, inputs)):
                if t.creator is None and x.dtype.kind == "f" and bool(xp.isnan(x).any()):
                    raise AnomalyError(_input_nan_message(
                        t, "input", _first_nan(x), step_of(fn.tags),
                        f"input {j} of {fn.name!r}, tags: {describe_tags(fn.tags)}, "
                        f"created at {getattr(fn, 'created_at', '<unknown>')}"))
        elif bool(xp.isfinite(a).all()):
            continue
        n_nan, n_inf = int(xp.isnan(a).sum()), int(xp.isinf(a).sum())

        def stats(x: Any) -> str:
            if x is None or getattr(x, "dtype", None) is None or x.dtype.kind != "f" or x.size == 0:
                return "-"
            fin = x[xp.isfinite(x)]
            mx = float(xp.abs(fin).max()) if fin.size else float("nan")
            return f"shape {fmt_shape(x.shape)}, max|finite| {mx:.3g}, nan {int(xp.isnan(x).sum())}, inf {int(xp.isinf(x).sum())}"

        def label(j: int, x: Any) -> str:  # the input's math name, if it has one
            t = tensors[j] if tensors is not None else None
            nm = t.name if t is not None else None
            if nm is None and t is not None and t.creator is not None:
                nm = t.creator.__dict__.get("out_names", {}).get(t.out_index)
            return f"input {j}" + (f" ({nm!r})" if nm else "")

        if forward:
            ins = "; ".join(f"{label(j, x)}: {stats(x)}" for j, x in enumerate(inputs))
            name = fn.__dict__.get("out_names", {}).get(i)
            what = f"output {i}"
        else:  # `a` is the gradient sent to input i; `inputs` are the gradients of the outputs
            out_names = fn.__dict__.get("out_names", {})
            ins = "; ".join(f"gradient of output {j}"
                            + (f" ({out_names[j]!r})" if out_names.get(j) else "")
                            + f": {stats(x)}" for j, x in enumerate(inputs))
            name = _input_name(fn, i)
            what = f"the gradient for input {i}"
        raise AnomalyError(
            f"{where} of {fn.name!r} produced {n_nan} NaN and {n_inf} Inf values in {what}"
            + (f" ({name!r})" if name else "") + f" (shape {fmt_shape(a.shape)}). Tags: "
            f"{describe_tags(fn.tags)}. The op was created at "
            f"{getattr(fn, 'created_at', '<unknown>')}. {ins}. Typical fixes: clip gradients "
            f"(nn.utils.clip_grad_norm_), lower the learning rate, or guard log/sqrt/div inputs.")


# ------------------------------------------------------------------------------------------ Function
class Function:
    """One primitive op. Subclasses define `forward(*arrays) -> array | tuple` on backend arrays
    (use `self.xp`, never numpy directly) and `backward(*grads)`, one gradient per input (None
    where none is needed), written with Python operators and the helpers below (`output`,
    `saved_values`, `const`, `call`). In a plain backward the formula runs on raw arrays (fast);
    under create_graph=True the same formula runs on Tensors, so it is differentiable again.

    Class attributes: `name` (graph label, set by ops.register), `save_inputs` (indices of the
    inputs backward needs, available as `self.saved_values()`), `save_output` (keep the output
    array, returned by `self.output()`), `check(*arrays)` (optional input validation that raises
    ShapeError with a clear message). Non-tensor arguments (dim, shape, index...) go to `__init__`.
    """

    # Slots (not a per-instance dict) for everything the engine touches: an LSTM step creates a
    # dozen Functions, and a dict per Function is measurable. Op parameters live in __dict__.
    __slots__ = ("xp", "next", "generation", "tags", "index", "out_meta", "saved", "saved_out",
                 "keep", "visit", "__dict__", "__weakref__")
    name = "function"
    save_inputs: tuple = ()
    save_output = False
    check: Any = None
    broadcasts = False        # may return gradients of another shape/dtype than its inputs
    fresh_grads = False       # backward returns new arrays (no views/aliases of gy or saved
    #                           data), so the engine may sum further gradients into them in place
    # Graph Functions also carry: saved (inputs listed in save_inputs, as Tensors), saved_out,
    # keep (arrays a forward kept, e.g. masks), post ({out_index: [weakref | None, hooks]} for
    # retain_grad/hooks on outputs), visit (order in the last backward), freed. Read only after
    # they are set; a backward without retain_graph sets saved/saved_out/keep to None.
    grad_out_norms: Any = None
    grad_in_norms: Any = None
    post: Any = None          # {out_index: [weakref | None, hooks]}: set by retain_grad/register_hook

    @property
    def freed(self) -> bool:
        """Did a backward (without retain_graph) release what this Function saved?"""
        return self.saved is None

    def forward(self, *xs: Any) -> Any:
        raise NotImplementedError

    def backward(self, *gys: Any) -> Any:
        raise NotImplementedError

    # Helpers for backward formulas. In a plain backward gradient values are arrays and these
    # return arrays; under create_graph they return Tensors wired into the graph. One formula
    # (operators + these helpers) serves both.
    def output(self, i: int = 0) -> Any:
        """The i-th output (saved by `save_output`)."""
        y = self.saved_out
        if y.__class__ is tuple:
            y = y[i]
        st = _state()
        if st.fast:
            return y
        t = _make(y, st.grad_enabled)
        if st.grad_enabled:
            t.creator, t.out_index = self, i
        return t

    def saved_values(self) -> tuple:
        """The inputs listed in `save_inputs`: arrays in a plain backward, else Tensors."""
        s = self.saved
        if _state().fast:
            return (s[0].data, s[1].data) if len(s) == 2 else tuple([t.data for t in s])
        return s

    def const(self, a: Any) -> Any:
        """A non-differentiable array (mask, weights) usable in a backward formula."""
        return a if _state().fast else _make(a, False)

    def call(self, op: "Function", *args: Any) -> Any:
        """Apply another op inside a backward formula: straight to its forward on arrays in a
        plain backward, as a recorded op under create_graph."""
        if _state().fast:
            op.xp = self.xp
            y = op.forward(*args)
            return y if y.__class__ is _ndarray or y.__class__ is tuple else _as_array(y, self.xp)
        return op(*args)

    def weight_grad(self, a: Any, gy: Any) -> Any:
        """The gradient of a 2-D weight W in `a @ W` (a of shape (..., k), gy of shape (..., m)):
        the sum over every leading index of a^T gy, shape (k, m). In a plain backward it is an
        OuterSum: a weight shared by T time steps gets its T terms folded in a few large matmuls
        by the engine. Under create_graph it is the recorded product (the engine reduces a
        batched one to W's shape)."""
        if _state().fast:
            k = a.shape[-1]
            if a.ndim != 2:
                a, gy = a.reshape(-1, k), gy.reshape(-1, gy.shape[-1])
            return OuterSum(a, gy)
        return a.swapaxes(-1, -2) @ gy

    def __call__(self, *inputs: Any) -> Any:
        # Hot path: every op of every time step goes through here, so it is written for speed
        # (no comprehensions, one- and two-input cases unrolled, the single-output case first).
        # Numbers, GPU arrays and device checks take the slow path (_prepare); a device mix that
        # reaches NumPy/CuPy raises there and is explained by _explain.
        n = len(inputs)
        try:
            if n == 2:
                x0 = inputs[0].data
                x1 = inputs[1].data
                if x0.__class__ is not _ndarray or x1.__class__ is not _ndarray:
                    raise AttributeError  # a number, a CuPy array (a NumPy scalar has .data too)
                xs: Any = (x0, x1)
            elif n == 1:
                x0 = inputs[0].data
                if x0.__class__ is not _ndarray:
                    raise AttributeError
                xs = (x0,)
            else:
                xs = tuple([t.data for t in inputs])
                for x in xs:
                    if x.__class__ is not _ndarray:
                        raise AttributeError
                x0 = xs[0] if n else None
            self.xp = _np
        except AttributeError:
            inputs, cpu = _prepare(self.name, inputs)
            xs = tuple([t.data for t in inputs])
            x0 = xs[0]
            self.xp = _np if cpu else _array_module(x0)
        if self.check is not None:
            self.check(*xs)
        try:
            y = self.forward(x0, xs[1]) if n == 2 else self.forward(*xs)
        except (ValueError, TypeError) as e:
            raise _explain(self.name, inputs, xs, e) from None
        if y.__class__ is not _ndarray:
            if y.__class__ is tuple:
                return self._finish_multi(inputs, xs, y)
            y = _as_array(y, _np)  # NumPy reductions return scalars; CuPy arrays pass unchanged
        st = _state()
        if st.anomaly:
            self._anomaly_forward(inputs, xs, (y,))
        out = _new(Tensor)
        out.data = y
        out._grad = out.name = out._hooks = None
        out.out_index = 0
        if y.base is not None or y is x0:  # maybe a view of an input (reshape, getitem, .T...)
            _share_version(out, inputs, xs)
        if not st.grad_enabled:
            out.requires_grad = False
            out.creator = None
            return out
        # edges to the inputs: (creator, out_index), (leaf, 0) or None (see the module docstring)
        gen = -1
        if n == 2:  # unrolled: most ops are binary
            t = inputs[0]
            c = t.creator
            if c is not None:
                e0: Any = (c, t.out_index)
                gen = c.generation + 1
            else:
                e0 = (t, 0) if t.requires_grad else None
                if e0 is not None:
                    gen = 0
            t = inputs[1]
            c = t.creator
            if c is not None:
                e1: Any = (c, t.out_index)
                if c.generation >= gen:
                    gen = c.generation + 1
            else:
                e1 = (t, 0) if t.requires_grad else None
                if e1 is not None and gen < 0:
                    gen = 0
            nxt: Any = (e0, e1)
        else:
            edges = []
            for t in inputs:
                c = t.creator
                if c is not None:
                    edges.append((c, t.out_index))
                    if c.generation >= gen:
                        gen = c.generation + 1
                elif t.requires_grad:
                    edges.append((t, 0))
                    if gen < 0:
                        gen = 0
                else:
                    edges.append(None)
            nxt = tuple(edges)
        if gen < 0:  # no input requires grad: no graph
            out.requires_grad = False
            out.creator = None
            return out
        self.next = nxt
        self.generation = gen
        self.tags = st.tags
        self.index = next(_counter)
        self.visit = -1
        si = self.save_inputs
        self.saved = (inputs if len(si) == n else tuple([inputs[i] for i in si])) if si else ()
        shape = y.shape
        m = _META.get(shape)
        if m is None or m[0][1] is not y.dtype:
            m = _meta(shape, y.dtype)
        self.out_meta = m
        if self.save_output:
            self.saved_out = y
        out.requires_grad = True
        out.creator = self
        return out

    def _finish_multi(self, inputs: Sequence[Tensor], xs: list, ys: tuple) -> Any:
        """The rest of __call__ for ops with several outputs (split, unbind) or a view."""
        ys = tuple([_as_array(y, _np) for y in ys])
        outs = self._finish_graph(inputs, xs, ys)
        for o in outs:
            _share_version(o, inputs, xs)
        return outs

    def _finish_graph(self, inputs: Sequence[Tensor], xs: list, ys: tuple) -> tuple:
        st = _state()
        if st.anomaly:
            self._anomaly_forward(inputs, xs, ys)
        requires = st.grad_enabled and any(t.requires_grad for t in inputs)
        if not requires:
            return tuple([_make(y, False) for y in ys])
        nxt = []
        gen = 0
        for t in inputs:
            c = t.creator
            if c is not None:
                nxt.append((c, t.out_index))
                gen = max(gen, c.generation + 1)
            else:
                nxt.append((t, 0) if t.requires_grad else None)
        self.next = tuple(nxt)
        self.generation = gen
        self.tags = st.tags
        self.index = next(_counter)
        self.visit = -1
        si = self.save_inputs
        self.saved = tuple([inputs[i] for i in si]) if si else ()
        self.out_meta = tuple([(y.shape, y.dtype) for y in ys])
        if self.save_output:
            self.saved_out = ys
        outs = []
        for i, y in enumerate(ys):
            o = _make(y, True)
            o.creator = self
            o.out_index = i
            outs.append(o)
        return tuple(outs)

    def _anomaly_forward(self, inputs: Sequence[Tensor], xs: Sequence[Any], ys: tuple) -> None:
        self.created_at = _user_frame()
        self.tags = _state().tags
        _check_finite(self, ys, "forward", xs, inputs)

    def __repr__(self) -> str:
        return f"<{self.name} #{getattr(self, 'index', '?')}>"


def _share_version(out: Tensor, inputs: Sequence[Tensor], xs: Sequence[Any]) -> None:
    """If `out` is a view of an input's storage (NumPy/CuPy `base`), share that input's version
    counter, so an in-place write through either is seen by a backward that saved the other."""
    y = out.data
    b = y.base
    for t, x in zip(inputs, xs):
        if y is x or (b is not None and (b is x or b is x.base)):
            out._version = t._version_box()
            return


def _meta(shape: tuple, dtype: Any) -> tuple:
    """The interned out_meta record of a single-output Function: a long unroll repeats a few
    shapes, so Functions share these tuples (memory), and the engine compares them by identity."""
    m = _META.get(shape)
    if m is None or m[0][1] != dtype:
        if len(_META) > 4096:
            _META.clear()
        m = _META[shape] = ((shape, dtype),)
    return m


def _prepare(op: str, inputs: tuple) -> tuple:
    """Slow path of Function.__call__: wrap numbers as constants, check that all tensors share a
    device. Returns (tensors, on_cpu)."""
    ref = None
    for a in inputs:
        if isinstance(a, Tensor):
            ref = a
            break
    if ref is None:
        raise TypeError(f"{op}: expected at least one Tensor argument, got "
                        f"{[type(a).__name__ for a in inputs]}")
    tensors = []
    for a in inputs:
        if not isinstance(a, Tensor):
            a = _const_like(a, ref.data, op)
        else:
            _check_same_device(op, ref, a)
        tensors.append(a)
    return tuple(tensors), type(ref.data) is _ndarray


def _explain(op: str, inputs: Sequence[Any], xs: list, e: Exception) -> Exception:
    """Turn a NumPy/CuPy failure inside a forward into an error that names the op, the shapes or
    devices, and the fix."""
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    for t in tensors[1:]:
        if t.device != tensors[0].device:
            try:
                _check_same_device(op, tensors[0], t)
            except backend.DeviceError as de:
                return de
    if isinstance(e, ValueError):
        shapes = " and ".join(fmt_shape(x.shape) for x in xs)
        if "broadcast" in str(e) or "shape" in str(e):
            return ShapeError(f"{op}: cannot combine shapes {shapes} ({e}); shapes must be equal or "
                              f"broadcastable (sizes match or are 1, aligned from the right)")
        dtypes = " and ".join(str(x.dtype) for x in xs)  # not a shape problem: say what NumPy said
        return ValueError(f"{op}: {e} (inputs of shape {shapes}, dtype {dtypes})")
    return e


def _const_like(value: Any, ref: Any, op: str) -> Tensor:
    """Wrap a Python scalar / array as a constant with the reference array's dtype and device, so a
    float32 tensor times 2.0 stays float32 (NumPy 2 promotion would keep float64 NumPy scalars)."""
    xp = _array_module(ref)
    if isinstance(value, _np.generic):  # a NumPy scalar counts as a number, not as an array
        value = value.item()
    if backend.is_array(value):
        problem = dtype_problem(value.dtype, op)
        if problem:
            raise DTypeError(problem)
        if backend.device_of(value) != backend.device_of(ref):
            raise backend.DeviceError(f"{op}: array on {backend.device_of(value)} combined with a tensor on "
                                      f"{backend.device_of(ref)}; move one with .to(device)")
        return _make(value, False)
    if isinstance(value, (bool, int, float)) or hasattr(value, "__float__"):
        dt = ref.dtype
        if dt.kind in "iub" and isinstance(value, float):
            dt = _np.dtype("float32")  # int tensor * 0.5: the default float dtype, as in PyTorch
        elif dt.kind == "b" and not isinstance(value, bool):
            dt = _np.dtype("int64")  # bool tensor + 2 counts, as in PyTorch (not a logical or)
        return _make(xp.asarray(value, dtype=dt), False)
    raise TypeError(f"{op}: cannot combine a Tensor with {type(value).__name__} {value!r}; "
                    f"pass a Tensor, a number or an array")


def _check_same_device(op: str, a: Tensor, b: Tensor) -> None:
    da, db = a.device, b.device
    if da != db:
        raise backend.DeviceError(f"{op}: tensors on different devices: {da} (shape {fmt_shape(a.shape)}) "
                                  f"and {db} (shape {fmt_shape(b.shape)}); move one with .to({da!r}) "
                                  f"or .to({db!r}) first")


# ------------------------------------------------------------------------------------------- backward
# Gradients flow through the engine as "values": raw arrays in a plain backward (fast: the same
# backward formulas run on arrays, with no Tensor wrapping and with in-place updates of fresh
# temporaries), Tensors under create_graph=True (so the backward pass is itself recorded). The
# mode is `_State.fast` of the thread running the backward; ops see it only through the helpers.
def sum_to_array(x: Any, shape: tuple) -> Any:
    """Sum a broadcast array back down to `shape` (the adjoint of broadcast_to), on arrays: the
    engine's broadcast reduction in a plain backward and the forward of ops' `sum_to`."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and x.shape[lead + i] != 1)
    y = x.sum(axis=axes, keepdims=True) if axes else x
    return y.reshape(shape) if lead else y


def _sum_to(g: Any, shape: tuple) -> Any:
    """The engine's broadcast reduction of a gradient value: on arrays, or, under create_graph,
    the recorded `sum_to` op (Tensor.sum_to, bound by ops like every Tensor method)."""
    return g.sum_to(shape) if isinstance(g, Tensor) else sum_to_array(g, shape)


class OuterSum:
    """A lazily summed weight gradient: sum_k A_k^T @ G_k. A weight shared by T time steps gets T
    terms; instead of T small matmuls and T accumulations, the terms are collected and folded in
    blocks of ~1024 rows, cat(A)^T @ cat(G): a few large, efficient matmuls (what a hand-written
    BPTT does with its whole-sequence matmul), while the memory held stays bounded by one block.
    Only used in a plain backward (values are arrays)."""

    __slots__ = ("a", "g", "rows", "acc", "shape", "dtype")
    BLOCK_ROWS = 1024

    def __init__(self, a: Any, g: Any) -> None:
        self.a, self.g = [a], [g]
        self.rows = a.shape[0]
        self.acc = None
        self.shape = (a.shape[-1], g.shape[-1])
        self.dtype = g.dtype

    def extend(self, other: "OuterSum") -> None:
        self.a.extend(other.a)
        self.g.extend(other.g)
        self.rows += other.rows
        if other.acc is not None:
            self.acc = other.acc if self.acc is None else self.acc + other.acc
        if self.rows >= self.BLOCK_ROWS:
            self._fold()

    def _fold(self) -> None:
        a, g = self.a, self.g
        if len(a) == 1:
            part = a[0].T @ g[0]
        else:
            xp = _array_module(g[0])
            part = xp.concatenate(a).T @ xp.concatenate(g)
        if self.acc is None:
            self.acc = part
        else:
            self.acc += part
        self.a, self.g, self.rows = [], [], 0

    def value(self) -> Any:
        if self.a:
            self._fold()
        return self.acc


def _real(v: Any) -> Any:
    return v.value() if v.__class__ is OuterSum else v


def _accumulate(table: dict, key: Any, slot: int, n: int, g: Any, owned: set, fast: bool,
                fresh: bool = False) -> None:
    """Sum a gradient value into table[key][slot]. An array the engine allocated itself is summed
    into in place (weights shared over T steps receive T terms); other arrays are never mutated:
    a backward may hand the same array to several inputs (add)."""
    entry = table.get(key)
    if entry is None:
        entry = [None] * n
        table[key] = entry
    old = entry[slot]
    k = key if slot == 0 else (key, slot)  # the key in `owned` (see run_backward)
    if old is None:
        entry[slot] = g
        if fresh:
            owned.add(k)
        return
    if not fast:  # create_graph: the sum must be part of the graph
        entry[slot] = old + g
        return
    if old.__class__ is OuterSum:
        if g.__class__ is OuterSum:
            old.extend(g)
            return
        old = old.value()
        owned.add(k)
    elif g.__class__ is OuterSum:
        g = g.value()
    if k in owned and old.shape == g.shape:
        old += g
        entry[slot] = old
    else:
        entry[slot] = old + g
        owned.add(k)


def _wrap(v: Any) -> Tensor:
    return v if isinstance(v, Tensor) else _make(_real(v), False)


def _unwrap(t: Any, fast: bool) -> Any:
    return t.data if fast and isinstance(t, Tensor) else t


def run_backward(roots: Sequence[Tensor], grads: Sequence[Tensor], retain_graph: bool,
                 create_graph: bool, inputs: Sequence[Tensor] | None = None,
                 allow_unused: bool = True) -> tuple | None:
    """Reverse-mode sweep from `roots`. Without `inputs`, accumulate into leaves' `.grad`; with
    `inputs`, return their gradients instead (tinygrad_rnn.grad) and touch no `.grad`.

    Functions run in decreasing generation order (a heap; a Function's generation exceeds its
    inputs' creators'), so each runs once, after every consumer has sent its gradient."""
    heap: list = []
    pending: dict = {}           # Function -> [gradient value per output]
    owned: set = set()           # entries whose array nobody else references: (node, slot), or
    #                              for slot 0 (a leaf, most nodes) the node itself (no tuple to make)
    leaf_grads: dict = {}        # leaf tensor -> [gradient value]
    leaf_meta: dict = {}         # leaf tensor -> its interned (shape, dtype) record
    lazy: set = set()            # nodes that may hold an OuterSum (materialized when popped)
    want: dict = {}              # for grad(): (id(fn), out_index) or id(leaf) -> position
    captured: list = [None] * (len(inputs) if inputs is not None else 0)
    if inputs is not None:
        for pos, t in enumerate(inputs):
            if not isinstance(t, Tensor) or not t.requires_grad:
                raise GradError(f"grad: input {pos} does not require grad; only tensors with "
                                f"requires_grad=True (or results computed from them) have gradients")
            want[(id(t.creator), t.out_index) if t.creator is not None else id(t)] = pos

    # This thread only: grad mode on under create_graph (the sweep is recorded), off otherwise.
    st = _state()
    fast = not create_graph
    _set_state(st.replace(grad_enabled=create_graph, fast=fast))
    for root, g in zip(roots, grads):
        g = _unwrap(g, fast)
        if root.creator is None:
            if root.requires_grad:
                _accumulate(leaf_grads, root, 0, 1, g, owned, fast)
            continue
        fn = root.creator
        if fn not in pending:
            heapq.heappush(heap, (-fn.generation, -fn.index, fn))
        _accumulate(pending, fn, root.out_index, len(fn.out_meta), g, owned, fast)

    paused = gc_paused()  # the graph has no cycles; a collection pass over 1e5 live nodes is pure cost
    paused.__enter__()
    visit = 0
    record, observers, anomaly = st.record, st.observers, st.anomaly
    watched = record or anomaly or bool(observers)
    sent = None
    push, pop = heapq.heappush, heapq.heappop
    stamp = last_write  # [stamp of the latest in-place write]: versions are checked only if newer
    # Pending Functions are those in the heap plus `ready`, a one-slot buffer: a Function that
    # schedules a single parent (a chain of ops, most of an unrolled graph) hands it over directly.
    ready = None
    try:
        # Hot loop: one iteration per Function; the common case (arrays, no hooks, no checks)
        # is written inline, the rest goes through helpers.
        while True:
            if ready is not None:  # the one scheduled node: no heap round trip if it is alone
                if heap:
                    push(heap, (-ready.generation, -ready.index, ready))
                    fn = pop(heap)[2]
                else:
                    fn = ready
                ready = None
            elif heap:
                fn = pop(heap)[2]
            else:
                break
            gys = pending.pop(fn)
            if fn.saved is None:  # freed by an earlier backward
                raise GraphFreedError(
                    f"backward through the graph a second time: the arrays saved by {fn.name!r} "
                    f"(tags: {describe_tags(fn.tags)}) were freed after the first backward. Pass "
                    f"retain_graph=True to the first backward if you really need two, or, when "
                    f"carrying a hidden state across iterations (truncated BPTT), cut the graph "
                    f"with h = h.detach() before the next forward")
            fn.visit = visit
            visit += 1
            if stamp[0] > fn.index:  # something was written in place after fn was made
                _check_versions(fn)
            if lazy and fn in lazy:
                gys = [_real(g) for g in gys]
            if fn.post is not None:
                gys = _run_post(fn, gys, fast)
            if want:
                for i, g in enumerate(gys):
                    pos = want.get((id(fn), i))
                    if pos is not None and g is not None:
                        captured[pos] = g
            gxs = fn.backward(*gys) if len(gys) > 1 else fn.backward(gys[0])
            if gxs.__class__ is not tuple:
                gxs = (gxs,)
            if watched:
                if anomaly:
                    _check_finite(fn, [_unwrap(_real(g), fast) for g in gxs], "backward",
                                  [_unwrap(g, fast) for g in gys])
                if record:
                    fn.grad_out_norms = tuple(_norm(g) for g in gys)
                    fn.grad_in_norms = tuple(_norm(g) if p is not None else None
                                             for p, g in zip(fn.next, gxs))
                sent = [None] * len(fn.next) if observers else None
            fresh = fast and fn.fresh_grads
            bcast = fn.out_meta[0] if fn.broadcasts else None
            i = -1
            for parent in fn.next:
                i += 1
                if parent is None:
                    continue
                gx = gxs[i]
                if gx is None:
                    continue
                node, idx = parent
                leaf = node.__class__ is Tensor or isinstance(node, Tensor)
                cls = gx.__class__
                if fast and cls is not _ndarray:
                    if cls is OuterSum:
                        lazy.add(node)
                    else:
                        gx = _as_array(gx, _np)
                if bcast is not None:  # reduce a broadcast gradient; cast back a promoted dtype
                    if leaf:  # a leaf's record, interned like out_meta, made once per backward
                        meta = leaf_meta.get(node)
                        if meta is None:
                            meta = leaf_meta[node] = _meta(node.data.shape, node.data.dtype)[0]
                    else:
                        meta = node.out_meta[idx]
                    # out_meta records are interned: the same record means the input has the
                    # output's shape, and so has gx (ops return the output's shape); its dtype
                    # is tested too (by identity first: NumPy's dtype `!=` is 3x slower),
                    # as a backward formula may promote it (float32 gy times an int64 input)
                    if meta is not bcast or gx.dtype is not meta[1]:
                        shape, dtype = meta
                        if gx.shape != shape:
                            gx = _sum_to(_real(gx), shape)
                        if gx.dtype != dtype:
                            gx = _real(gx).astype(dtype) if fast else gx.to(dtype=dtype)
                if sent is not None:
                    sent[i] = gx = _real(gx)
                if leaf:
                    entry = leaf_grads.get(node)
                    if entry is None:
                        leaf_grads[node] = [gx]
                        if fresh:
                            owned.add(node)
                    elif (fast and node in owned and gx.__class__ is _ndarray
                          and entry[0].__class__ is _ndarray):
                        # an array the engine owns: sum in place (both have the leaf's shape:
                        # reduced above, or by the op contract that tests/test_op_rules.py checks)
                        entry[0] += gx
                    else:
                        _accumulate(leaf_grads, node, 0, 1, gx, owned, fast, fresh)
                    continue
                entry = pending.get(node)
                if entry is None:  # first gradient for this node: schedule it
                    if ready is None:
                        ready = node
                    else:
                        push(heap, (-node.generation, -node.index, node))
                    n_out = len(node.out_meta)
                    if n_out == 1:
                        pending[node] = [gx]
                        if fresh:
                            owned.add(node)
                        continue
                    entry = pending[node] = [None] * n_out
                if entry[idx] is None:
                    entry[idx] = gx
                    if fresh:
                        owned.add(node if idx == 0 else (node, idx))
                else:
                    _accumulate(pending, node, idx, 0, gx, owned, fast)
            if sent is not None:
                outs = tuple(None if g is None else _real(g) for g in gys)
                for cb in observers:
                    cb(fn, outs, tuple(sent))
            if not retain_graph:  # free what backward needed; keep the structure for drawings
                fn.saved = fn.saved_out = fn.keep = None  # saved None: `freed`
        for leaf, entry in leaf_grads.items():
            g = _real(entry[0])
            if leaf._hooks:
                for hook in leaf._hooks:
                    r = hook(_wrap(g))
                    if r is not None:
                        g = _hook_grad(hook, r, g, "a leaf tensor", fast)
                        owned.discard(leaf)
            if want:
                pos = want.get(id(leaf))
                if pos is not None:
                    captured[pos] = g
                continue
            old = leaf._grad  # the engine's own values: no need for the checking setter
            if old is None:
                if fast:
                    leaf._grad = _make(g if leaf in owned else g.copy(), False)
                else:
                    leaf._grad = g
            elif fast:
                old.data += g
                if hasattr(old, "_version"):  # someone shares it: count the write
                    old._bump_version()
            else:
                leaf._grad = old + g
    finally:
        _set_state(_state().replace(grad_enabled=st.grad_enabled, fast=st.fast))
        paused.__exit__()
    if inputs is None:
        return None
    out = []
    for pos, g in enumerate(captured):
        if g is None:
            if not allow_unused:
                raise GradError(f"grad: input {pos} (shape {fmt_shape(inputs[pos].shape)}) is not "
                                f"reachable from the outputs; pass allow_unused=True to get None")
            out.append(None)
        else:
            out.append(_wrap(g) if create_graph else _make(_real(g).copy() if not isinstance(g, Tensor) else g.data, False))
    return tuple(out)


def _check_versions(fn: Function) -> None:
    """Raise InplaceError if a tensor fn saved for its backward was written in place after fn
    was created (its write stamp is newer than fn's creation index: one clock numbers both)."""
    idx = fn.index
    bad = None
    for i, t in enumerate(fn.saved or ()):
        box = getattr(t, "_version", None)
        if box is not None and box[0] > idx:
            pos = fn.save_inputs[i] if i < len(fn.save_inputs) else i
            bad = f"input {pos} of {fn.name!r}, a {t._describe()}"
            break
    if bad is None and fn.save_output:
        for i, box in sorted(fn.__dict__.get("out_versions", {}).items()):
            if box[0] > idx:
                name = fn.__dict__.get("out_names", {}).get(i)
                bad = (f"output {i} of {fn.name!r} (its own result"
                       + (f", named {name!r}" if name else "") + ")")
                break
    if bad is None:
        return
    step = step_of(fn.tags)
    where = (f" at time step {step}" if step is not None else "") + (f" (tags: {describe_tags(fn.tags)})"
                                                             if fn.tags else "")
    made = getattr(fn, "created_at", None)
    raise InplaceError(
        f"backward: a tensor needed for the gradient was modified in place after the forward "
        f"saved it: {bad}. It was saved by {fn.name!r}{where}"
        + (f", created at {made}" if made else "") + ". The gradient would use the new values, "
        f"so backward refuses. Fixes: call backward() before optimizer.step() (or any other "
        f"update of the weights); clone() a tensor before editing it in place and edit the "
        f"clone; edit weights under `with tg.no_grad():` before the forward, not between the "
        f"forward and backward. Writes through `.data` are not tracked (see docs/anomaly.md)")


def _norm(g: Any) -> float | None:
    if g is None:
        return None
    a = _real(g.data if isinstance(g, Tensor) else g)
    xp = _array_module(a)
    return float(xp.sqrt((a.astype(xp.float64) ** 2).sum()))


def _hook_grad(hook: Any, r: Any, g: Any, what: str, fast: bool) -> Any:
    """A hook's replacement gradient, refused at the hook (as in PyTorch) if it does not fit."""
    name = getattr(hook, "__qualname__", type(hook).__name__)
    if not hasattr(r, "shape") or not hasattr(r, "dtype"):
        raise TypeError(f"hook {name!r} on {what} returned a {type(r).__name__}; a hook returns the "
                        f"replacement gradient (a Tensor) or None to keep the gradient")
    if tuple(r.shape) != tuple(g.shape):
        raise ShapeError(f"hook {name!r} on {what} returned a gradient of shape {fmt_shape(r.shape)} "
                         f"for a gradient of shape {fmt_shape(g.shape)}; a hook may change the values, "
                         f"not the shape")
    if r.dtype != g.dtype:
        raise DTypeError(f"hook {name!r} on {what} returned a {r.dtype} gradient for a {g.dtype} "
                         f"gradient (shape {fmt_shape(g.shape)}); return it as {g.dtype}, e.g. "
                         f"new.to(dtype={str(g.dtype)!r})")
    return _unwrap(r, fast)


def _run_post(fn: Function, gys: list, fast: bool) -> list:
    """Hooks and retain_grad() of non-leaf outputs: their gradient is final when fn is popped."""
    gys = list(gys)
    for i, (ref, hooks) in fn.post.items():
        g = gys[i]
        if g is None:
            continue
        for hook in hooks:
            r = hook(_wrap(g))
            if r is not None:
                g = _hook_grad(hook, r, g, f"output {i} of {fn.name!r}", fast)
        gys[i] = g
        t = ref() if ref is not None else None
        if t is not None:
            gd = _make(g.copy(), False) if fast else g
            t._grad = gd if t._grad is None else t._grad + gd
    return gys


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """Tensor.backward: accumulate d(root)/d(leaf) into every leaf's `.grad`."""
    g = _root_grad(root, grad, "backward")
    run_backward([root], [g], retain_graph or create_graph, create_graph)


def _root_grad(root: Tensor, grad: Any, what: str) -> Tensor:
    if not isinstance(root, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(root).__name__}")
    if not root.requires_grad:
        raise GradError(f"{what}: this tensor (shape {fmt_shape(root.shape)}) does not require grad "
                        f"and has no graph: none of the tensors it was computed from had "
                        f"requires_grad=True, or it was computed under no_grad()")
    if grad is None:
        if root.data.size != 1:
            raise GradError(f"{what}: grad can be created implicitly only for a scalar, but the output "
                            f"has shape {fmt_shape(root.shape)}; reduce it first (e.g. loss.sum() or "
                            f"loss.mean()) or pass grad=a tensor of shape {fmt_shape(root.shape)}")
        xp = _array_module(root.data)
        return _make(xp.ones(root.data.shape, dtype=root.data.dtype), False)
    if not isinstance(grad, Tensor):
        grad = _const_like(grad, root.data, what)
    if grad.shape != root.shape:
        raise ShapeError(f"{what}: grad has shape {fmt_shape(grad.shape)} but the output has shape "
                         f"{fmt_shape(root.shape)}; they must be equal")
    _check_same_device(what, root, grad)
    return grad


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple:
    """Gradients of `outputs` with respect to `inputs`, as a tuple; no `.grad` is touched."""
    backend.sync_flags()  # deferred GPU input checks fail here, as in Tensor.backward
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        gos = [grad_outputs] * len(outs) if grad_outputs is None else [grad_outputs]
    else:
        gos = list(grad_outputs)
    if len(gos) != len(outs):
        raise GradError(f"grad: {len(outs)} outputs but {len(gos)} grad_outputs")
    gs = [_root_grad(o, g, "grad") for o, g in zip(outs, gos)]
    if retain_graph is None:
        retain_graph = create_graph
    return run_backward(outs, gs, retain_graph, create_graph, inputs=ins, allow_unused=allow_unused)


def iter_graph(roots: Iterable[Tensor]) -> list:
    """Every Function reachable from `roots`, iteratively, in creation order (for viz and tools)."""
    seen: set = set()
    stack = [r.creator for r in roots if r.creator is not None]
    out = []
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        out.append(fn)
        for p in fn.next:
            if p is not None and isinstance(p[0], Function):
                stack.append(p[0])
    out.sort(key=lambda f: f.index)
    return out
