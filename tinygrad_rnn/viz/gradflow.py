"""Gradient flow through time, measured on the unrolled graph: ||dL/dh_t|| for every step, the
optional Jacobian norms ||dh_T/dh_t||, and each step's term of a shared weight's gradient
(W_hh.grad = sum over t of one term per step), plus a matplotlib plot of them.

Imports: the core, nn (modules, utils), NumPy for the returned host arrays; matplotlib only inside
plot_gradient_flow (the optional extra "plot").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .. import autograd
from ..autograd import Function
from ..backend import to_numpy
from ..nn.module import Module
from ..tensor import Tensor
from .graph import norm, output_tensor, step_of

_FLOW_KIND = "flow_step"  # gradient_flow's own step tag, distinct from the layers' ("step", t)


# ------------------------------------------------------------------------ per-step weight terms
@dataclass
class StepGrads:
    """Per-step terms of parameter gradients. For each name: `terms[name]` (S, *shape) with one
    row per step in `steps`, `outside[name]` the part from ops outside any step (e.g. an input
    projection computed for all steps at once), `total[name]` = sum of terms + outside, which is
    the parameter's gradient. `norms[name]` (S,) are the terms' norms."""
    steps: list
    terms: dict = field(default_factory=dict)
    outside: dict = field(default_factory=dict)
    total: dict = field(default_factory=dict)

    @property
    def norms(self) -> dict:
        return {k: np.array([norm(row) for row in v]) for k, v in self.terms.items()}


def _param_list(params: Any) -> list:
    if isinstance(params, Module):
        return list(params.named_parameters())
    if isinstance(params, Tensor):
        return [(params.name or "param", params)]
    if isinstance(params, dict):
        return [(str(k), v) for k, v in params.items()]
    out = []
    for i, p in enumerate(params):
        if isinstance(p, tuple):
            out.append((str(p[0]), p[1]))
        else:
            out.append((p.name or f"param{i}", p))
    return out


class StepTerms:
    """An observe_backward callback that keeps apart the gradient terms reaching `leaves`.

    A weight used at every step receives one gradient contribution per use; the engine sums them.
    This observer keeps each contribution: the gradient sent along every edge from a leaf, or from
    an op outside the steps that only transforms one leaf (W_hh^T, a split of W: the "region"),
    into the rest of the graph, with the backward visit (`event`, counting this observer's calls),
    the input slot and the step tag (`kind`) of the op that sent it. `carried()` takes the terms on
    a transform's output back to its leaf with tg.grad: the transform's backward is linear in the
    gradient, so the terms still sum exactly to the leaf's gradient. `leaves`: default, every leaf
    of the graph of `roots`. grad_by_step and viz.explore read their per-step terms from it."""

    def __init__(self, roots: list, leaves: list | None = None, kind: str = "step") -> None:
        fns = autograd.iter_graph(roots)
        consumers: dict = {}
        for fn in fns:
            for slot, p in enumerate(fn.next):
                if p is not None:
                    consumers.setdefault(id(p[0]), []).append((fn, slot))
        if leaves is None:
            leaves = list({id(p[0]): p[0] for fn in fns for p in fn.next
                           if p is not None and isinstance(p[0], Tensor)}.values())
        # the region: ops outside the steps fed by one leaf (or region op) only, mapped to the leaf
        self.region: dict = {}   # id(op) -> its leaf
        self.ops: list = []      # the region's ops
        by_id = {id(t): t for t in leaves}
        frontier = list(by_id)
        while frontier:
            key = frontier.pop()
            for fn, _ in consumers.get(key, []):
                if id(fn) in self.region or step_of(fn.tags, kind) is not None:
                    continue
                ins = {id(q[0]) for q in fn.next if q is not None}
                if len(ins) == 1:
                    self.region[id(fn)] = by_id[key] if key in by_id else self.region[key]
                    self.ops.append(fn)
                    frontier.append(id(fn))
        self.taps: dict = {}     # id(consumer) -> [(slot, step)]: the edges whose terms are kept
        for key in list(by_id) + list(self.region):
            for fn, slot in consumers.get(key, []):
                if id(fn) not in self.region:
                    self.taps.setdefault(id(fn), []).append((slot, step_of(fn.tags, kind)))
        self.raw: list = []      # (event, slot, step, source (leaf or region op), out_index, grad)
        self.events = 0

    def __call__(self, fn: Function, grads_out: tuple, grads_in: tuple) -> None:
        for slot, step in self.taps.get(id(fn), ()):
            g = grads_in[slot]
            if g is not None:
                src, idx = fn.next[slot]
                self.raw.append((self.events, slot, step, src, idx, g.copy()))  # the engine reuses g
        self.events += 1

    def carried(self, key: Callable[[int, int, Any], Any]) -> dict:
        """The terms summed by key(event, slot, step) and by leaf: {key: {id(leaf): array}}, keys
        in the order of their first term. The terms of one key on the region's outputs are carried
        back in one tg.grad (the graph must still be there: backward with retain_graph=True)."""
        out: dict = {}
        through: dict = {}       # key -> {(id(op), out_index): [op, out_index, grad]}
        for event, slot, step, src, idx, g in self.raw:
            k = key(event, slot, step)
            b = out.setdefault(k, {})
            if isinstance(src, Tensor):
                b[id(src)] = g if id(src) not in b else b[id(src)] + g
            else:
                t = through.setdefault(k, {}).setdefault((id(src), idx), [src, idx, None])
                t[2] = g if t[2] is None else t[2] + g
        visits = [(f, f.visit) for f in self.ops]  # tg.grad renumbers them; drawings read them
        for k, outs in through.items():
            items = list(outs.values())
            leaves = list({id(self.region[id(f)]): self.region[id(f)] for f, _, _ in items}.values())
            gs = autograd.grad([output_tensor(f, i) for f, i, _ in items], leaves,
                               grad_outputs=[Tensor(g) for _, _, g in items], retain_graph=True,
                               allow_unused=True)
            for leaf, g in zip(leaves, gs):
                if g is not None:
                    b = out[k]
                    b[id(leaf)] = g.data if id(leaf) not in b else b[id(leaf)] + g.data
        for f, v in visits:
            f.visit = v
        return out


def grad_by_step(loss: Tensor, params: Any, kind: str = "step") -> StepGrads:
    """Split the gradient of `loss` w.r.t. shared parameters into one term per time step.

    A weight used at every step receives one gradient contribution per use; the engine sums them.
    Here each contribution is kept apart, keyed by the step tag (`kind`, default the ("step", t)
    tags of the RNN layers and viz.time_step) of the op that used the weight: one backward runs
    inside `tg.observe_backward` (a StepTerms observer), which reports the gradient each op sends
    along each input edge. Where the weight is first transformed outside the steps (the layers
    compute W_hh.T once), each step's term is carried back through that transformation with
    `tg.grad(..., grad_outputs=term)`: the transformation's backward is linear in the gradient,
    so the terms still sum exactly to the gradient.

    Runs backward with retain_graph=True and does not touch `.grad`; call it instead of, or
    before, loss.backward(). Returns a StepGrads (NumPy arrays on the host).
    """
    named = _param_list(params)
    ps = [p for _, p in named]
    split = StepTerms([loss], ps, kind)
    with autograd.observe_backward(split):
        totals = autograd.grad([loss], ps, retain_graph=True, allow_unused=True)
    buckets = split.carried(lambda event, slot, step: "outside" if step is None else step)
    steps = sorted((s for s in buckets if s != "outside"), key=_sort_key)
    out = StepGrads(steps)
    for (name, p), tot in zip(named, totals):
        z = np.zeros(p.shape, dtype=np.float64)
        rows = [to_numpy(buckets[s][id(p)]).astype(np.float64) if id(p) in buckets[s] else z for s in steps]
        out.terms[name] = np.stack(rows) if rows else np.zeros((0,) + tuple(p.shape))
        outside = buckets.get("outside", {}).get(id(p))
        out.outside[name] = z.copy() if outside is None else to_numpy(outside).astype(np.float64)
        out.total[name] = z.copy() if tot is None else to_numpy(tot.data).astype(np.float64)
    return out


def _sort_key(s: Any) -> tuple:
    return (0, s, "") if isinstance(s, (int, float)) else (1, 0, str(s))


# ------------------------------------------------------------------------------ gradient flow
@dataclass
class GradientFlow:
    """What gradient_flow measured, as NumPy arrays indexed by time step t = 0..T-1.

    grad_norms: ||dL/dh_t|| (h_t the state after reading x_t; all layers, whole batch).
    cell_grad_norms: ||dL/dc_t|| for LSTMs (the cell-state path), else None.
    jacobian_norms: ||dh_T/dh_t||_F (RMS over the batch), when asked for.
    weight_terms: name -> (T, *shape), step t's term of that parameter's gradient;
    weight_grads: name -> the gradient (the sum of the terms); weight_term_norms: name -> (T,).
    total_norm: the norm of all parameter gradients together; clip_coef: the factor
    nn.utils.clip_grad_norm_(max_norm=clip) applied (1.0 when not clipping).
    """
    label: str
    loss: float
    grad_norms: np.ndarray
    cell_grad_norms: np.ndarray | None = None
    jacobian_norms: np.ndarray | None = None
    weight_terms: dict = field(default_factory=dict)
    weight_grads: dict = field(default_factory=dict)
    total_norm: float = 0.0
    clip: float | None = None
    clip_coef: float = 1.0

    @property
    def steps(self) -> np.ndarray:
        return np.arange(len(self.grad_norms))

    @property
    def weight_term_norms(self) -> dict:
        return {k: np.array([norm(row) for row in v]) for k, v in self.weight_terms.items()}

    def recurrent_weight(self) -> str | None:
        """Name of the (first) hidden-to-hidden weight, e.g. 'weight_hh_l0'."""
        return next((k for k in self.weight_terms if "weight_hh" in k), None)


def _is_layer(model: Any) -> bool:
    return hasattr(model, "num_layers") and hasattr(model, "batch_first")


def _direction(n: int, batch: int, seed: int, ref: Tensor) -> list:
    """Fixed random unit vectors (one per loss term), independent of the library's RNG."""
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n):
        v = rng.standard_normal((batch, ref.shape[-1]))
        v /= np.linalg.norm(v)
        out.append(Tensor(v, dtype=ref.dtype, device=ref.device))
    return out


def gradient_flow(model: Any, x: Tensor, loss: str | Callable = "last", hx: Any = None,
                  weights: Sequence[str] | None = None, jacobian: bool = False,
                  clip: float | None = None, label: str | None = None, seed: int = 0) -> GradientFlow:
    """Run `model` over the sequence `x` one step at a time and measure how the gradient of a
    loss flows back through time.

    model: a cell (nn.RNNCell/LSTMCell/GRUCell: `state = cell(x_t, state)`) or a one-directional
    layer (nn.RNN/LSTM/GRU, called with one step at a time and its state). x: (T, B, D), or
    (B, T, D) for a batch_first layer. loss: "last" (L = <v, y_T>, v a fixed random unit vector, so
    dL/dy_T has norm 1 for every model), "all" (L = sum_t <v_t, y_t>) or a callable taking the
    list of per-step outputs y_t (the top layer's h_t) and returning a scalar Tensor.
    weights: parameter names whose per-step gradient terms to return (default: all).
    jacobian: also compute ||dh_T/dh_t||_F (one backward per state unit: small models only).
    clip: also report the effect of nn.utils.clip_grad_norm_(max_norm=clip) on the gradients.
    """
    from .. import nn

    layer = _is_layer(model)
    if layer and getattr(model, "bidirectional", False):
        raise ValueError("gradient_flow: a bidirectional layer reads the sequence in both "
                         "directions, so it cannot be run one step at a time; measure each "
                         "direction with a one-directional layer (bidirectional=False)")
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise ValueError(f"gradient_flow: x must be a 3-d Tensor (T, B, D) (or (B, T, D) for a "
                         f"batch_first layer), got {getattr(x, 'shape', type(x).__name__)}")
    batch_first = layer and model.batch_first
    xs = x.unbind(1 if batch_first else 0)
    state = hx
    states: list = []
    cells: list = []
    outs: list = []
    for t, x_t in enumerate(xs):
        with autograd.scope(_FLOW_KIND, t):
            if layer:
                out, state = model(x_t.unsqueeze(1 if batch_first else 0), state)
                y = out.squeeze(1 if batch_first else 0)
            else:
                state = model(x_t, state)
                y = state[0] if isinstance(state, tuple) else state
        states.append(state[0] if isinstance(state, tuple) else state)
        if isinstance(state, tuple):
            cells.append(state[1])
        outs.append(y)
    if callable(loss):
        L = loss(outs)
    elif loss == "last":
        v = _direction(1, outs[-1].shape[0], seed, outs[-1])[0]
        L = (outs[-1] * v).sum()
    elif loss == "all":
        vs = _direction(len(outs), outs[0].shape[0], seed, outs[0])
        L = outs[0] * vs[0]
        for y, v in zip(outs[1:], vs[1:]):
            L = L + y * v
        L = L.sum()
    else:
        raise ValueError(f"gradient_flow: loss must be 'last', 'all' or a callable, got {loss!r}")

    jac = None
    if jacobian:
        jac = _jacobian_norms(states)
    named = [(n, p) for n, p in model.named_parameters() if weights is None or n in weights]
    if weights is not None:
        missing = sorted(set(weights) - {n for n, _ in named})
        if missing:
            raise KeyError(f"gradient_flow: no parameters named {missing}; the model has "
                           f"{[n for n, _ in model.named_parameters()]}")
    sg = grad_by_step(L, named, kind=_FLOW_KIND)
    # dL/dh_t, dL/dc_t: gradients w.r.t. the per-step states; touches no .grad, frees the graph
    # A layer returns its state h_n as a new tensor (a stack of each layer's final h), while
    # y_t and the next step use the layer's inner h_t: take the gradient of those inner tensors
    # (the inputs of that stack) so that h_t's gradient counts every path, also at the last step.
    T = len(xs)
    h_in = [_inner(h) for h in states]
    c_in = [_inner(c) for c in cells]
    flat = [h for hs in h_in for h in hs] + [c for cs in c_in for c in cs]
    gs = list(autograd.grad([L], flat, allow_unused=True))
    norms = np.array([norm([gs.pop(0) for _ in hs]) for hs in h_in])
    cnorms = np.array([norm([gs.pop(0) for _ in cs]) for cs in c_in]) if cells else None
    flow = GradientFlow(label or type(model).__name__, float(L.item()), norms, cnorms, jac)
    for name, _ in named:
        terms = sg.terms[name]
        if terms.shape[0] != T:  # a step whose ops never used this weight
            full = np.zeros((T,) + terms.shape[1:])
            for row, s in zip(terms, sg.steps):
                full[s] = row
            terms = full
        flow.weight_terms[name] = terms
        flow.weight_grads[name] = sg.total[name]
    flow.total_norm = norm(list(flow.weight_grads.values()))
    if clip is not None:
        # measure the factor with the library's own clip_grad_norm_ on copies of the gradients
        stand_ins = []
        for g in flow.weight_grads.values():
            t = Tensor(g)
            t.grad = Tensor(g.copy())
            stand_ins.append(t)
        nn.utils.clip_grad_norm_(stand_ins, clip)
        num = sum(float((s.grad.numpy() * g).sum()) for s, g in zip(stand_ins, flow.weight_grads.values()))
        flow.clip = float(clip)
        flow.clip_coef = num / max(flow.total_norm ** 2, 1e-300)
    return flow


def _inner(state: Tensor) -> list:
    """The tensors a layer stacked into its returned state (one per layer), as handles that
    tinygrad_rnn.grad accepts; the state itself when it was not made by a stack."""
    fn = state.creator
    if fn is None or fn.name != "stack" or not all(
            p is not None and isinstance(p[0], Function) for p in fn.next):
        return [state]
    return [output_tensor(f, i) for f, i in fn.next]


def _jacobian_norms(states: list) -> np.ndarray:
    """||dh_T/dh_t||_F per step, RMS over the batch: one backward per unit of h_T."""
    h_T = states[-1]
    units = int(np.prod(h_T.shape)) // h_T.shape[-2] if h_T.ndim >= 2 else h_T.shape[0]
    if units > 512:
        raise ValueError(f"gradient_flow: jacobian=True needs one backward per state unit "
                         f"({units}); use a model with at most 512 state units")
    batch = h_T.shape[-2] if h_T.ndim >= 2 else 1
    sq = np.zeros(len(states))
    flat_shape = h_T.shape
    for j in range(units):
        e = np.zeros(flat_shape, dtype=to_numpy(h_T.data).dtype)
        # unit j of every sample at once: samples do not interact, so each sample's row of its
        # own Jacobian lands in its own slice
        e.reshape(-1, batch, flat_shape[-1])[j // flat_shape[-1], :, j % flat_shape[-1]] = 1
        gs = autograd.grad([h_T], states, grad_outputs=[Tensor(e, dtype=h_T.dtype, device=h_T.device)],
                           retain_graph=True, allow_unused=True)
        for t, g in enumerate(gs):
            if g is not None:
                a = to_numpy(g.data).astype(np.float64)
                sq[t] += (a * a).sum()
    return np.sqrt(sq / batch)


# ---------------------------------------------------------------------------------- plotting
def plot_gradient_flow(flows: Any, quantity: str = "hidden", ax: Any = None, title: str | None = None,
                       path: Any = None, clipped: bool = False) -> Any:
    """Plot gradient norms against time step on a log scale, one line per model.

    flows: a GradientFlow, a list of them, or a dict label -> GradientFlow.
    quantity: "hidden" (||dL/dh_t||; LSTMs add ||dL/dc_t|| dashed), "jacobian" (||dh_T/dh_t||), or
    "weight" (the norms of each step's term of the recurrent weight's gradient; with clipped=True
    also the terms after clip_grad_norm_, dashed). Returns the matplotlib Figure; saves it to
    `path` if given. Needs matplotlib: pip install "tinygrad-rnn[plot]".
    """
    try:
        import matplotlib
        if ax is None and path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('plot_gradient_flow needs matplotlib: pip install "tinygrad-rnn[plot]" '
                          '(or pip install matplotlib)') from None
    if isinstance(flows, GradientFlow):
        items = [(flows.label, flows)]
    elif isinstance(flows, dict):
        items = list(flows.items())
    else:
        items = [(f.label, f) for f in flows]
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    else:
        fig = ax.figure
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (lab, f) in enumerate(items):
        c = colors[i % len(colors)]
        t = f.steps
        if quantity == "hidden":
            ax.semilogy(t, _positive(f.grad_norms), color=c, label=f"{lab}: ||dL/dh_t||")
            if f.cell_grad_norms is not None:
                ax.semilogy(t, _positive(f.cell_grad_norms), color=c, ls="--",
                            label=f"{lab}: ||dL/dc_t|| (cell state)")
        elif quantity == "jacobian":
            if f.jacobian_norms is None:
                raise ValueError(f"plot_gradient_flow: {lab} has no jacobian norms; run "
                                 f"gradient_flow(..., jacobian=True)")
            ax.semilogy(t, _positive(f.jacobian_norms), color=c, label=f"{lab}: ||dh_T/dh_t||")
        elif quantity == "weight":
            name = f.recurrent_weight() or next(iter(f.weight_terms))
            norms = f.weight_term_norms[name]
            ax.semilogy(t, _positive(norms), color=c, label=f"{lab}: ||step t's term of {name}.grad||")
            if clipped:
                if f.clip is None:
                    raise ValueError(f"plot_gradient_flow: {lab} was measured without clip=; run "
                                     f"gradient_flow(..., clip=max_norm)")
                ax.semilogy(t, _positive(norms * f.clip_coef), color=c, ls="--",
                            label=f"{lab}: after clip_grad_norm_({f.clip:g})")
        else:
            raise ValueError(f"plot_gradient_flow: quantity must be 'hidden', 'jacobian' or "
                             f"'weight', got {quantity!r}")
    ax.set_xlabel("time step t")
    ax.set_ylabel({"hidden": "gradient norm", "jacobian": "||dh_T/dh_t||",
                   "weight": "norm of the step's term"}[quantity])
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    if path is not None:
        fig.tight_layout()
        fig.savefig(path)
    return fig


def _positive(a: np.ndarray) -> np.ndarray:
    """Zeros cannot be drawn on a log axis: show them as gaps."""
    a = np.asarray(a, dtype=np.float64).copy()
    a[a <= 0] = np.nan
    return a
