"""Recurrent cells (RNNCell, LSTMCell, GRUCell) and sequence layers (RNN, LSTM, GRU), built only from
primitive Tensor ops, so backpropagation through time is the engine's ordinary backward over the
unrolled graph. There is no backward code in this file.

Imports: the public core (Tensor, ops, creation, autograd.scope) and nn.module / nn.init /
nn.functional. Equations, their mapping to the lecture notes and to PyTorch: docs/rnn.md.

One place per concept: each kind of cell is a `_Recurrence` (how many gates, how the input
projection's bias is formed, and `step`: next state from the projected input and the state).
A cell computes its input projection and calls `step` once; a layer projects all T steps in one
matmul and calls the same `step` T times inside scope("step", t).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Sequence

from .. import autograd, creation, ops
from ..errors import DeviceError, DTypeError, ShapeError, fmt_shape
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

State = tuple  # (h,) or (h, c): every step function takes and returns a tuple of tensors


# ============================================================================== the recurrences
def _project(x: Tensor, w_ih_t: Tensor, bias: Tensor | None) -> Tensor:
    """Input projection x @ W_ih^T (+ bias) for every gate at once; x is (N, D), result (N, G*H)."""
    return (x @ w_ih_t if bias is None else ops.addmm(bias, x, w_ih_t)).named("x_t W_ih^T + b")


class _Recurrence:
    """How one kind of cell turns (projected input gi, state) into the next state.

    `prepare` runs once per forward (per layer and direction): it transposes the weights and forms
    the bias of the input projection (b_ih + b_hh where b_hh is purely additive, so the time loop
    does not add it again). `step` runs once per time step and is all the per-step work there is.
    """
    name = "RNN"
    gates = 1                      # G: weight_ih is (G*H, D)
    n_state = 1                    # 1 for (h,), 2 for LSTM's (h, c)
    extra: tuple[str, ...] = ()    # extra (H,) parameters, e.g. LSTM peepholes

    def prepare(self, p: dict) -> tuple[Tensor, Tensor | None, tuple]:
        """p: weight_ih, weight_hh, bias_ih, bias_hh (or None) and the extras, by base name.
        Returns (W_ih^T, bias of the input projection, constants for step)."""
        b_ih, b_hh = p["bias_ih"], p["bias_hh"]
        w_ih_t = p["weight_ih"].T.named("W_ih^T")
        bias = (b_ih + b_hh).named("b") if b_ih is not None else None
        return w_ih_t, bias, (p["weight_hh"].T.named("W_hh^T"),)

    def inputs(self, gi: Tensor, k: tuple) -> Any:
        """What `step` takes from the input projection gi (..., G*H): by default gi itself. Runs
        once on the projection of all steps, so work moved here leaves the time loop."""
        return gi

    def step(self, gi: Any, state: State, k: tuple) -> State:
        raise NotImplementedError


class _Elman(_Recurrence):
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu."""

    def __init__(self, nonlinearity: str) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.act = nonlinearity

    def step(self, gi: Tensor, state: State, k: tuple) -> State:
        a = ops.addmm(gi, state[0], k[0]).named("a_t")  # gi + h @ W_hh^T, one op
        return ((a.tanh() if self.act == "tanh" else a.relu()).named("h_t"),)


class _LSTM(_Recurrence):
    """Gates i, f, g, o (PyTorch order): i,f,o = sigmoid(.), g = tanh(.), c_t = f*c_{t-1} + i*g,
    h_t = o * tanh(c_t). With peepholes (Gers & Schmidhuber) i and f also see w_ci*c_{t-1} and
    w_cf*c_{t-1}, o sees w_co*c_t (diagonal weights, i.e. elementwise)."""
    name, gates, n_state = "LSTM", 4, 2

    def __init__(self, peephole: bool) -> None:
        self.peephole = bool(peephole)
        self.extra = ("weight_ci", "weight_cf", "weight_co") if peephole else ()

    def prepare(self, p: dict) -> tuple[Tensor, Tensor | None, tuple]:
        w_ih_t, bias, k = super().prepare(p)
        return w_ih_t, bias, k + tuple(p[n] for n in self.extra)

    def step(self, gi: Tensor, state: State, k: tuple) -> State:
        h, c = state
        i, f, g, o = (a.named(n) for a, n in zip(ops.addmm(gi, h, k[0]).named("a_t").chunk(4, -1),
                                                ("a_t^i", "a_t^f", "a_t^g", "a_t^o")))
        if self.peephole:
            _, w_ci, w_cf, w_co = k
            i, f = (i + w_ci * c).sigmoid(), (f + w_cf * c).sigmoid()
        else:
            i, f = i.sigmoid(), f.sigmoid()
        fc = (f.named("f_t") * c).named("f_t⊙c_{t-1}")
        c = (fc + (i.named("i_t") * g.tanh().named("g_t")).named("i_t⊙g_t")).named("c_t")
        o = ((o + w_co * c) if self.peephole else o).sigmoid().named("o_t")
        return (o * c.tanh().named("tanh(c_t)")).named("h_t"), c


class _GRU(_Recurrence):
    """Gates r, z, n (PyTorch order). r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    h_t = (1 - z) * n + z * h_{t-1}  (z here is 1 - z of the lecture notes; see docs/rnn.md).
    reset_after=True  (PyTorch, cuDNN): n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    reset_after=False (the notes):      n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""
    name, gates = "GRU", 3

    def __init__(self, reset_after: bool) -> None:
        self.reset_after = bool(reset_after)

    def prepare(self, p: dict) -> tuple[Tensor, Tensor | None, tuple]:
        if self.reset_after:
            # b_hr, b_hz are additive: fold them into the projection bias. b_hn sits inside
            # r * (W_hn h + b_hn), so it stays in the recurrent term (see inputs()).
            w_hh_t, b_ih, b_hh = p["weight_hh"].T.named("W_hh^T"), p["bias_ih"], p["bias_hh"]
            hidden = w_hh_t.shape[0]
            if b_ih is None:
                return p["weight_ih"].T.named("W_ih^T"), None, (w_hh_t, None, hidden)
            b_hrz, b_hn = b_hh.split([2 * hidden, hidden], 0)
            w_ih_t = p["weight_ih"].T.named("W_ih^T")
            return w_ih_t, b_ih + ops.cat([b_hrz, creation.zeros_like(b_hn)]), (w_hh_t, b_hn, hidden)
        w_ih_t, bias, (w_hh_t,) = super().prepare(p)
        hidden = w_hh_t.shape[0]
        return w_ih_t, bias, tuple(w_hh_t.split([2 * hidden, hidden], 1))  # W_h{r,z}^T, W_hn^T

    def inputs(self, gi: Tensor, k: tuple) -> Any:
        if not self.reset_after:
            return gi
        # reset_after: per step, ONE addmm gives [x_rz + h W_hrz^T, h W_hn^T + b_hn]: its added term
        # is c = [gi_rz, b_hn]; gi_n is added after the reset gate. Built here for all steps at once.
        hidden, b_hn = k[2], k[1]
        g_rz, g_n = gi.split([2 * hidden, hidden], -1)
        tail = b_hn.expand(*g_n.shape) if b_hn is not None else creation.zeros_like(g_n)
        return ops.cat([g_rz, tail], -1), g_n

    def step(self, gi: Any, state: State, k: tuple) -> State:
        h = state[0]
        if self.reset_after:
            c, i_n = gi
            rz, h_n = ops.addmm(c, h, k[0]).named("a_t").split([2 * k[2], k[2]], -1)
            r, z = rz.named("a_t^{rz}").sigmoid().chunk(2, -1)
            n = (i_n + r.named("r_t") * h_n.named("h_{t-1} W_hn^T + b_hn")).tanh()
        else:
            i_r, i_z, i_n = gi.chunk(3, -1)
            h_r, h_z = (h @ k[0]).chunk(2, -1)
            r, z = (i_r + h_r).sigmoid().named("r_t"), (i_z + h_z).sigmoid()
            n = ops.addmm(i_n, (r * h).named("r_t⊙h_{t-1}"), k[1]).tanh()
        n, z = n.named("n_t"), z.named("z_t")
        return ((n + z * (h - n)).named("h_t"),)  # = (1 - z) * n + z * h with one op fewer


# ===================================================================================== helpers
def detach_state(state: Any) -> Any:
    """Cut the graph behind a recurrent state for truncated BPTT: a Tensor, or a (nested) tuple or
    list of Tensors such as LSTM's (h, c), is returned detached; None passes through.

        out, state = lstm(chunk, state)
        loss.backward()
        state = detach_state(state)   # the next chunk starts from these values, not this graph
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"detach_state: expected a Tensor, a tuple/list of Tensors or None, got "
                    f"{type(state).__name__}")


_BASE_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _add_params(module: Module, rec: _Recurrence, sfx: str, d_in: int, hidden: int, bias: bool,
                device: Any, dtype: Any) -> None:
    """Register one cell's parameters on `module` under PyTorch's names + `sfx` ('' for a cell,
    '_l0', '_l0_reverse'... for a layer); values are drawn later by _reset."""
    def make(*shape: int) -> Parameter:
        return Parameter(creation.zeros(*shape, dtype=dtype or "float32", device=device))

    gh = rec.gates * hidden
    setattr(module, "weight_ih" + sfx, make(gh, d_in))
    setattr(module, "weight_hh" + sfx, make(gh, hidden))
    if bias:
        setattr(module, "bias_ih" + sfx, make(gh))
        setattr(module, "bias_hh" + sfx, make(gh))
    for name in rec.extra:
        setattr(module, name + sfx, make(hidden))


def _get_params(module: Module, rec: _Recurrence, sfx: str) -> dict:
    """The parameters of one cell by base name (bias_ih/bias_hh None when bias=False)."""
    return {n: getattr(module, n + sfx, None) for n in _BASE_NAMES + rec.extra}


def _reset(module: Module, hidden: int) -> None:
    """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), in registration order, as PyTorch."""
    k = 1.0 / math.sqrt(hidden)
    for p in module.parameters():
        init.uniform_(p, -k, k)


def _check_sizes(layer: str, input_size: Any, hidden_size: Any, num_layers: Any = 1) -> None:
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")


def _check_float_input(layer: str, x: Any, what: str, ref: Tensor) -> None:
    """A Tensor of the parameters' float dtype on their device, or a clear error."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {what} must be a Tensor, got {type(x).__name__}; wrap it with "
                        f"tinygrad_rnn.Tensor(...)")
    if x.dtype.kind != "f":  # integer/bool data: converting the model to it is never the fix
        raise DTypeError(f"{layer}: {what} has dtype {x.dtype}, but recurrent layers need floating-"
                         f"point data like their parameters ({ref.dtype}); convert it with "
                         f"{what}.to(dtype='{ref.dtype}'), or, if it holds token ids, map them to vectors "
                         f"with nn.Embedding first")
    if x.dtype != ref.dtype:
        raise DTypeError(f"{layer}: {what} has dtype {x.dtype} but the parameters are {ref.dtype}; "
                         f"convert the input (x.to(dtype='{ref.dtype}')) or the model "
                         f"(model.to(dtype='{x.dtype}')) so they match")
    if x.device != ref.device:
        raise DeviceError(f"{layer}: {what} is on {x.device} but the parameters are on {ref.device}; "
                          f"move one of them with .to({ref.device!r}) / .to({x.device!r})")


def _check_state_kind(layer: str, hx: Any, n_state: int, pair: str, single: str) -> None:
    """LSTM state: a tuple/list of two tensors; RNN/GRU state: one tensor. Name the mix-up."""
    is_seq = isinstance(hx, (tuple, list))
    if n_state == 2 and not (is_seq and len(hx) == 2):
        got = f"a {type(hx).__name__} of {len(hx)}" if is_seq else f"a {type(hx).__name__}"
        raise TypeError(f"{layer}: the state must be a tuple {pair} of two tensors (hidden and cell "
                        f"state), got {got}; pass both, as in lstm(x, (h, c)), or None for zeros")
    if n_state == 1 and is_seq:
        raise TypeError(f"{layer}: the state must be a single tensor {single}, got a "
                        f"{type(hx).__name__} of {len(hx)}; only LSTM takes a pair (h, c). Pass the "
                        f"hidden state alone (e.g. h, not (h, c)), or None for zeros")


# ======================================================================================= cells
class _CellBase(Module):
    """Parameters weight_ih (G*H, D), weight_hh (G*H, H), bias_ih, bias_hh (G*H,) + extras (H,)."""

    def __init__(self, rec: _Recurrence, input_size: int, hidden_size: int, bias: bool,
                 device: Any, dtype: Any) -> None:
        super().__init__()
        _check_sizes(rec.name + "Cell", input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        self.rec = rec
        _add_params(self, rec, "", input_size, hidden_size, bias, device, dtype)
        if not bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch."""
        _reset(self, self.hidden_size)

    def _cell(self, x: Tensor, hx: Any) -> tuple[State, bool]:
        """Validate, run one step; returns (new state, was the input batched)."""
        layer = type(self).__name__
        _check_float_input(layer, x, "input", self.weight_ih)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            seq = (f"; a cell runs ONE time step: for a whole sequence use nn.{layer[:-4]} or loop "
                   f"over x.unbind(0)" if x.ndim == 3 else "")
            raise ShapeError(f"{layer}: input has shape {fmt_shape(x.shape)}, expected "
                             f"(batch, input_size={self.input_size}) or (input_size={self.input_size},) "
                             f"for one unbatched sample{seq}")
        batched = x.ndim == 2
        if not batched:
            x = x.unsqueeze(0)
        batch = x.shape[0]
        names = ("hx", "cx") if self.rec.n_state == 2 else ("hx",)
        if hx is None:
            state = tuple(creation.zeros(batch, self.hidden_size, dtype=x.dtype, device=x.device)
                          for _ in names)
        else:
            parts = hx if self.rec.n_state == 2 else (hx,)
            _check_state_kind(layer, hx, self.rec.n_state, "(h, c)", "hx")
            want = (batch, self.hidden_size) if batched else (self.hidden_size,)
            state = []
            for name, s in zip(names, parts):
                _check_float_input(layer, s, name, self.weight_ih)
                if tuple(s.shape) != want:
                    raise ShapeError(f"{layer}: {name} has shape {fmt_shape(s.shape)}, expected "
                                     f"{fmt_shape(want)} = (batch, hidden_size) for an input of shape "
                                     f"{fmt_shape(x.shape if batched else x.shape[1:])}")
                state.append(s if batched else s.unsqueeze(0))
            state = tuple(state)
        w_ih_t, bias, k = self.rec.prepare(_get_params(self, self.rec, ""))
        return self.rec.step(self.rec.inputs(_project(x, w_ih_t, bias), k), state, k), batched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """Elman cell: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu). `h = cell(x, h)`.

    x: (B, D) or (D,); h: (B, H) or (H,), None means zeros. weight_ih (H, D), weight_hh (H, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        super().__init__(_Elman(nonlinearity), input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        (h,), batched = self._cell(input, hx)
        return h if batched else h.squeeze(0)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity='relu'")


class LSTMCell(_CellBase):
    """LSTM cell, PyTorch layout: weight_ih (4H, D), weight_hh (4H, H), gate order i, f, g, o.

        i, f, g, o = chunk(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')

    `h, c = cell(x, (h, c))`; the state None means zeros. peephole=True adds weight_ci, weight_cf,
    weight_co (each (H,)): i and f get + w_ci*c, + w_cf*c (the old cell), o gets + w_co*c' (the new).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(_LSTM(peephole), input_size, hidden_size, bias, device, dtype)
        self.peephole = bool(peephole)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        (h, c), batched = self._cell(input, hx)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")


class GRUCell(_CellBase):
    """GRU cell, PyTorch layout: weight_ih (3H, D), weight_hh (3H, H), gate order r, z, n.

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        reset_after=True:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   (PyTorch, cuDNN)
        reset_after=False: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)   (the lecture notes)
        h' = (1 - z) * n + z * h

    This z is the lecture notes' 1 - z_t: the notes write h_t = (1 - z_t) h_{t-1} + z_t h~_t,
    so z_notes = 1 - z = sigmoid(-(...)), i.e. the notes' update-gate weights are the negated
    W_iz, W_hz, b_iz, b_hz. `h = cell(x, h)`, h None means zeros.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, reset_after: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(_GRU(reset_after), input_size, hidden_size, bias, device, dtype)
        self.reset_after = bool(reset_after)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        (h,), batched = self._cell(input, hx)
        return h if batched else h.squeeze(0)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")


# ============================================================================== sequence layers
class _RNNBase(Module):
    """Stacked, optionally bidirectional recurrence over a sequence (PyTorch API and layout)."""

    def __init__(self, rec: _Recurrence, input_size: int, hidden_size: int, num_layers: int,
                 bias: bool, batch_first: bool, dropout: float, bidirectional: bool,
                 device: Any, dtype: Any) -> None:
        super().__init__()
        _check_sizes(rec.name, input_size, hidden_size, num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"{rec.name}: dropout must be a number in [0, 1), got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{rec.name}: dropout={dropout} does nothing with num_layers=1 (dropout is "
                          f"applied between stacked layers, not after the last)", stacklevel=3)
        self.rec = rec
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        dirs = 2 if bidirectional else 1
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else hidden_size * dirs
            for d in range(dirs):
                _add_params(self, rec, self._suffix(layer, d), d_in, hidden_size, bias, device, dtype)
        self.reset_parameters()

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch."""
        _reset(self, self.hidden_size)

    # ------------------------------------------------------------------------------ validation
    def _layout(self, batched: bool) -> str:
        if not batched:
            return "(T, input_size) unbatched"
        return "(B, T, input_size) since batch_first=True" if self.batch_first else \
            "(T, B, input_size) since batch_first=False"

    def _check_input(self, x: Any) -> None:
        name = self.rec.name
        _check_float_input(name, x, "input", self.weight_ih_l0)
        if x.ndim not in (2, 3):
            raise ShapeError(f"{name}: input has shape {fmt_shape(x.shape)} ({x.ndim} dims); expected "
                             f"{self._layout(True)}, or {self._layout(False)}")
        if x.shape[-1] != self.input_size:
            hint = ""
            other = [d for d in range(x.ndim - 1) if x.shape[d] == self.input_size]
            if other:
                hint = (f"; dim {other[0]} has size {self.input_size}: if the features are there, "
                        f"move them last (e.g. x.transpose({other[0]}, {x.ndim - 1}))")
            raise ShapeError(f"{name}: input has shape {fmt_shape(x.shape)}, expected "
                             f"{self._layout(x.ndim == 3)}: the last dim must be input_size="
                             f"{self.input_size}, got {x.shape[-1]}{hint}")
        if 0 in x.shape:
            raise ShapeError(f"{name}: input has shape {fmt_shape(x.shape)}; the sequence length and "
                             f"batch size must be at least 1")

    def _swap_hint(self, x_shape: tuple, got_batch: int) -> str:
        """If `got_batch` (from h0 or lengths) matches the time dim, batch_first looks swapped."""
        if len(x_shape) != 3:
            return ""
        tdim = 1 if self.batch_first else 0
        if got_batch == x_shape[tdim] != x_shape[1 - tdim]:
            return (f". It matches dim {tdim} of the input, which batch_first={self.batch_first} "
                    f"reads as time: is the input {'(T, B, D)' if self.batch_first else '(B, T, D)'}? "
                    f"Then pass batch_first={not self.batch_first}")
        return ""

    def _initial_state(self, hx: Any, x_shape: tuple, batch: int, batched: bool, ref: Tensor) -> list:
        """-> one state tuple per (layer, direction), each tensor (B, H)."""
        name, dirs, n = self.rec.name, (2 if self.bidirectional else 1), self.rec.n_state
        count = self.num_layers * dirs
        if hx is None:
            zero = creation.zeros(batch, self.hidden_size, dtype=ref.dtype, device=ref.device)
            return [(zero,) * n] * count
        labels = ("h0", "c0") if n == 2 else ("h0",)
        _check_state_kind(name, hx, n, "(h0, c0)", "h0")
        parts = tuple(hx) if n == 2 else (hx,)
        want = (count, batch, self.hidden_size) if batched else (count, self.hidden_size)
        per = []
        for label, s in zip(labels, parts):
            _check_float_input(name, s, label, ref)
            if tuple(s.shape) != want:
                hint = self._swap_hint(x_shape, s.shape[1]) if s.ndim == 3 and batched else ""
                if tuple(s.shape) == want[1:] and count == 1:
                    hint = f"; add the leading dim with {label}.unsqueeze(0)"
                raise ShapeError(f"{name}: {label} has shape {fmt_shape(s.shape)}, expected "
                                 f"{fmt_shape(want)} = (num_layers * num_directions={count}, "
                                 f"{'batch=' + str(batch) + ', ' if batched else ''}hidden_size="
                                 f"{self.hidden_size}) for an input of shape {fmt_shape(x_shape)}{hint}")
            per.append((s if batched else s.unsqueeze(1)).unbind(0))
        return [tuple(p[i] for p in per) for i in range(count)]

    def _masks(self, lengths: Any, x_shape: tuple, steps: int, batch: int, ref: Tensor) -> tuple | None:
        """Validate `lengths`; -> (per-step (B, 1) bool masks, (T, B, 1) float mask) or None when
        every sequence is full length (then no masking at all)."""
        name = self.rec.name
        if isinstance(lengths, Tensor) or hasattr(lengths, "tolist"):
            if getattr(getattr(lengths, "dtype", None), "kind", "i") not in "iu":  # torch: checked below
                raise DTypeError(f"{name}: lengths must hold integers, got dtype {lengths.dtype}")
            vals = lengths.tolist()
        elif isinstance(lengths, numbers.Integral):
            vals = [lengths]
        else:
            vals = list(lengths)
        if isinstance(vals, int):
            vals = [vals]
        if any(isinstance(v, (list, tuple)) for v in vals):
            raise ShapeError(f"{name}: lengths must be a flat sequence or 1-D tensor with one int per "
                             f"sequence, got nested values {vals!r}; flatten it (e.g. lengths.reshape(-1))")
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in vals):
            raise DTypeError(f"{name}: lengths must be integers (one per sequence), got {vals!r}")
        vals = [int(v) for v in vals]
        if len(vals) != batch:
            raise ShapeError(f"{name}: got {len(vals)} lengths for a batch of {batch} sequences "
                             f"(input shape {fmt_shape(x_shape)}, {self._layout(len(x_shape) == 3)}); "
                             f"give one length per sequence{self._swap_hint(x_shape, len(vals))}")
        bad = [(b, v) for b, v in enumerate(vals) if not 1 <= v <= steps]
        if bad:
            b, v = bad[0]
            why = "must be at least 1" if v < 1 else f"is longer than the {steps} time steps of the input"
            raise ShapeError(f"{name}: lengths[{b}] = {v} {why}; every length must be in 1..{steps} "
                             f"(input shape {fmt_shape(x_shape)}, {self._layout(len(x_shape) == 3)})")
        if all(v == steps for v in vals):
            return None
        t_idx = creation.arange(steps, device=ref.device).unsqueeze(1)
        valid = (t_idx < Tensor(vals, device=ref.device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
        return valid.unbind(0), valid.to(dtype=ref.dtype)

    # --------------------------------------------------------------------------------- forward
    def _run(self, x: Tensor, layer: int, direction: int, state: State, masks: tuple | None) -> tuple:
        """One direction of one layer over the whole sequence x (T, B, D) -> ((T, B, H), final state)."""
        rec = self.rec
        w_ih_t, bias, k = rec.prepare(_get_params(self, rec, self._suffix(layer, direction)))
        steps, batch = x.shape[0], x.shape[1]
        # All T input projections in one matmul; unbind (not x[t]) gives per-step views whose
        # backward is a single stack, so BPTT stays linear in T.
        gi = rec.inputs(_project(x.reshape(steps * batch, x.shape[2]), w_ih_t, bias).reshape(steps, batch, -1), k)
        gis = gi.unbind(0) if isinstance(gi, Tensor) else list(zip(*(g.unbind(0) for g in gi)))
        hs: list = [None] * steps
        with autograd.gc_paused():  # the unrolled graph is ~12 new objects per op and step
            for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                with autograd.scope("step", t):
                    new = rec.step(gis[t], state, k)
                    if masks is not None:  # past its length a sequence keeps its state (packed semantics)
                        m = masks[0][t]
                        new = tuple(ops.where(m, a, b) for a, b in zip(new, state))
                    state = new
                    hs[t] = state[0]
        return ops.stack(hs, 0), state

    def _forward(self, x: Any, hx: Any, lengths: Any) -> tuple[Tensor, State]:
        self._check_input(x)
        autograd.check_input(x, "x", 1 if self.batch_first and x.ndim == 3 else 0,  # detect_anomaly
                             f"the input of {type(self).__name__}")
        x_shape = tuple(x.shape)
        batched = x.ndim == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)  # the loop runs time-major; one copy here, one back at the end
        steps, batch = x.shape[0], x.shape[1]
        states = self._initial_state(hx, x_shape, batch, batched, self.weight_ih_l0)
        masks = None if lengths is None else self._masks(lengths, x_shape, steps, batch, x)
        dirs = 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outs = []
            with autograd.scope("layer", layer):
                for d in range(dirs):
                    with autograd.scope("direction", "reverse" if d else "forward"):
                        out, final = self._run(x, layer, d, states[layer * dirs + d], masks)
                    outs.append(out)
                    finals.append(final)
                x = outs[0] if dirs == 1 else ops.cat(outs, -1)
                if masks is not None:
                    x = x * masks[1]  # outputs past a sequence's length are zero
                if self.dropout and layer < self.num_layers - 1:
                    x = F.dropout(x, self.dropout, self.training)
        if not batched:
            x = x.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        final = tuple(ops.stack([f[i] for f in finals], 0) for i in range(self.rec.n_state))
        if not batched:
            final = tuple(s.squeeze(1) for s in final)
        return x, final

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False)):
            v = getattr(self, name)
            if v != default:
                s += f", {name}={v}"
        return s


class RNN(_RNNBase):
    """Elman RNN over a sequence: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu.

    `out, h_n = rnn(x, h0=None, lengths=None)`; x (T, B, D) ((B, T, D) with batch_first) or (T, D);
    h0 and h_n (num_layers * num_directions, B, H); out (T, B, num_directions * H).
    Parameters weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} (+ _reverse), as PyTorch.
    lengths: one int per sequence; outputs past a sequence's length are zero and h_n is its state at
    its last valid step (PyTorch's packed-sequence semantics).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(_Elman(nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None, *,  # noqa: A002
                lengths: Sequence[int] | Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, (h_n,) = self._forward(input, hx, lengths)
        return out, h_n

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity='relu'")


class LSTM(_RNNBase):
    """LSTM over a sequence (equations in LSTMCell; gate order i, f, g, o; PyTorch layout).

    `out, (h_n, c_n) = lstm(x, (h0, c0)=None, lengths=None)`; shapes as RNN, c like h.
    peephole=True adds weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k} (each (H,)).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 peephole: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__(_LSTM(peephole), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)
        self.peephole = bool(peephole)

    def forward(self, input: Tensor, hx: tuple | None = None, *,  # noqa: A002
                lengths: Sequence[int] | Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, (h_n, c_n) = self._forward(input, hx, lengths)
        return out, (h_n, c_n)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")


class GRU(_RNNBase):
    """GRU over a sequence (equations in GRUCell; gate order r, z, n; PyTorch layout).

    `out, h_n = gru(x, h0=None, lengths=None)`; shapes as RNN. reset_after=False uses the lecture
    notes' candidate n = tanh(W_in x + b_in + W_hn (r * h) + b_hn) with the same parameters.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 reset_after: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(_GRU(reset_after), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)
        self.reset_after = bool(reset_after)

    def forward(self, input: Tensor, hx: Tensor | None = None, *,  # noqa: A002
                lengths: Sequence[int] | Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, (h_n,) = self._forward(input, hx, lengths)
        return out, h_n

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")


__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "detach_state"]
