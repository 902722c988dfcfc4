"""Trace the recorded autodiff graph into plain data, then draw it as a `graphviz.Digraph`:
op and tensor nodes, clusters by time step and/or module, collapsed long unrolls, gradient colours,
backward order, memory per step and truncated-BPTT cuts.

Imports: the core (autograd, tensor, backend, nn.module) and the `graphviz` package. Nothing in
tinygrad_rnn imports viz. Node ids come from positions in creation order, never from `id()`,
so the same graph always gives the same DOT text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import graphviz

from .. import autograd
from ..autograd import Function
from ..nn.module import Module, Parameter
from ..tensor import Tensor

# The tag kinds that make clusters: "time" clusters by step (nested in layer/direction when a
# graph has several), "module" by the module path that nn.Module.__call__ records.
_TIME_KINDS = ("layer", "direction", "step")
_MODULE_KINDS = ("module",)
# Colours: sequential scale for gradient magnitude, pale (small) to dark red (large).
_PALETTE = ("#d9d9d9", "#fee8c8", "#fdbb84", "#fc8d59", "#e34a33", "#b30000", "#67000d")
_STYLE = {
    "op": dict(shape="box", style="rounded,filled", fillcolor="#f7f7f7", color="#7f7f7f"),
    "param": dict(shape="box", style="filled,bold", fillcolor="#ffe08a", color="#b8860b"),
    "leaf": dict(shape="box", style="filled", fillcolor="#cfe8ff", color="#3b7dbf"),
    "output": dict(shape="box", style="filled,bold", fillcolor="#c9f0c9", color="#2e8b57",
                   peripheries="2"),
    "cut": dict(shape="octagon", style="filled,dashed", fillcolor="#ffe0e0", color="#cc0000",
                fontcolor="#990000"),
    "zero_state": dict(shape="box", style="filled,dashed", fillcolor="#eeeeee", color="#888888"),
    "summary": dict(shape="box", style="rounded,dashed,filled", fillcolor="#fafafa",
                    color="#555555", fontsize="11"),
    "note": dict(shape="note", style="filled", fillcolor="#fff3cd", color="#c9a227"),
}


# ---------------------------------------------------------------------------------- plain data
@dataclass
class Node:
    """One drawn node: an op, a leaf/parameter, a root output, a cut marker or a collapse summary."""
    id: str
    kind: str                    # op | param | leaf | output | cut | zero_state | summary
    title: str                   # op name or tensor name
    shapes: tuple = ()           # ((shape, dtype), ...) of the outputs / the tensor
    path: tuple = ()             # cluster path: the selected tags, outermost first
    step: Any = None             # innermost ("step", t) value, None outside time steps
    index: int = -1              # creation order (ops) / first use (leaves)
    fn: Function | None = None
    tensor: Tensor | None = None
    grad: float | None = None    # gradient norm of this node's value(s), when known
    visit: int = -1              # backward visit order (ops)
    extra: list = field(default_factory=list)  # more label lines


@dataclass
class Edge:
    """Data flows src -> dst (into input `slot`); `grad` is the norm of the gradient sent back
    along it. `count` > 1 when a collapse merged several edges into one."""
    src: str
    dst: str
    slot: int = 0
    out_index: int = 0
    grad: float | None = None
    kind: str = "data"           # data | cut
    count: int = 1


@dataclass
class Trace:
    nodes: dict                  # id -> Node, in a deterministic order
    edges: list                  # [Edge]
    steps: list                  # distinct step values in order of first appearance
    recorded: bool               # backward ran inside record_grads() for these functions
    hidden: dict = field(default_factory=dict)   # summary id -> {"steps", "ops", "edges"}

    def step_nodes(self, step: Any) -> list:
        return [n for n in self.nodes.values() if n.kind == "op" and n.step == step]


def _flatten_roots(roots: Iterable[Any]) -> list:
    out, stack = [], list(roots)[::-1]
    while stack:
        r = stack.pop()
        if isinstance(r, Tensor):
            out.append(r)
        elif isinstance(r, (list, tuple)):
            stack.extend(list(r)[::-1])
        else:
            raise TypeError(f"draw_graph: roots must be Tensors (or lists/tuples of Tensors), got "
                            f"{type(r).__name__}")
    return out


def _name_maps(model: Any, names: Any) -> tuple[dict, dict]:
    """(leaf names by id, non-leaf names by (id(creator), out_index)). Dicts keyed by Tensor are
    read through .items() only: Tensor == is elementwise, so no lookups by tensor."""
    leaf: dict = {}
    nonleaf: dict = {}
    models = [] if model is None else (list(model) if isinstance(model, (list, tuple)) else [model])
    for m in models:
        if isinstance(m, Module):
            prefix = m._name or ""
            for k, p in m.named_parameters():
                leaf.setdefault(id(p), f"{prefix}.{k}" if prefix else k)
        elif isinstance(m, dict):
            for k, p in m.items():
                if isinstance(p, Module):  # {"lstm": lstm}: names like lstm.weight_hh_l0
                    for kk, pp in p.named_parameters():
                        leaf.setdefault(id(pp), f"{k}.{kk}")
                else:
                    leaf.setdefault(id(p), str(k))
        else:
            raise TypeError(f"draw_graph: model must be an nn.Module, a dict name -> tensor or a list "
                            f"of those, got {type(m).__name__}")
    pairs = names.items() if isinstance(names, dict) else (names or ())
    for t, n in pairs:
        if isinstance(n, Tensor) and not isinstance(t, Tensor):
            t, n = n, t  # accept {"name": tensor} as well
        if not isinstance(t, Tensor):
            raise TypeError(f"draw_graph: names maps tensors to strings, got key {type(t).__name__}")
        if t.creator is None:
            leaf[id(t)] = str(n)
        else:
            nonleaf[(id(t.creator), t.out_index)] = str(n)
    return leaf, nonleaf


def _step_of(tags: tuple) -> Any:
    step = None
    for k, v in tags:
        if k == "step":
            step = v
    return step


def trace(*roots: Any, model: Any = None, names: Any = None, cluster: Any = "time",
          show_cut: bool = True) -> Trace:
    """Collect the graph reachable from `roots` as plain nodes and edges (no drawing)."""
    rts = _flatten_roots(roots)
    if not rts:
        raise ValueError("draw_graph: give at least one tensor (e.g. the loss) to draw the graph of")
    leaf_names, nonleaf_names = _name_maps(model, names)
    fns = autograd.iter_graph(rts)
    kinds = _cluster_kinds(cluster)
    # layer/direction only nest when the graph has more than one of them
    present = {k: {v for f in fns for kk, v in f.tags if kk == k} for k in ("layer", "direction")}
    kinds = tuple(k for k in kinds if k not in present or len(present[k]) > 1)

    nodes: dict = {}
    fid: dict = {}
    steps: list = []
    seen_steps: set = set()
    recorded = False
    for k, fn in enumerate(fns):
        nid = f"op{k}"
        fid[id(fn)] = nid
        step = _step_of(fn.tags)
        if step is not None and step not in seen_steps:
            seen_steps.add(step)
            steps.append(step)
        gnorms = getattr(fn, "grad_out_norms", None)
        if gnorms is not None:
            recorded = True
        node = Node(nid, "op", fn.name, tuple(fn.out_meta), _path(fn.tags, kinds), step, k, fn=fn,
                    grad=_combine(gnorms) if gnorms is not None else None, visit=fn.visit)
        label = [nonleaf_names[(id(fn), i)] for i in range(len(fn.out_meta))
                 if (id(fn), i) in nonleaf_names]
        if label:
            node.title = f"{' / '.join(label)} = {fn.name}"
        nodes[nid] = node

    edges: list = []
    leaf_ids: dict = {}
    for fn in fns:
        dst = fid[id(fn)]
        gin = getattr(fn, "grad_in_norms", None)
        for slot, p in enumerate(fn.next):
            if p is None:
                continue
            src_obj, idx = p
            if isinstance(src_obj, Function):
                src = fid[id(src_obj)]
            else:
                src = leaf_ids.get(id(src_obj))
                if src is None:
                    src = f"leaf{len(leaf_ids)}"
                    leaf_ids[id(src_obj)] = src
                    nodes[src] = _leaf_node(src, src_obj, leaf_names, len(leaf_ids) - 1)
            g = gin[slot] if gin is not None and slot < len(gin) else None
            edges.append(Edge(src, dst, slot, idx, g))

    for i, r in enumerate(rts):
        if r.creator is None:
            if id(r) not in leaf_ids:  # a leaf given as a root: draw it alone
                src = f"leaf{len(leaf_ids)}"
                leaf_ids[id(r)] = src
                nodes[src] = _leaf_node(src, r, leaf_names, len(leaf_ids) - 1)
            continue
        oid = f"out{i}"
        title = leaf_names.get(id(r)) or r.name or nonleaf_names.get((id(r.creator), r.out_index)) \
            or ("output" if len(rts) == 1 else f"output {i}")
        gn = getattr(r.creator, "grad_out_norms", None)
        g = gn[r.out_index] if gn is not None else None
        nodes[oid] = Node(oid, "output", title, ((r.shape, r.dtype),), (), None, -1, tensor=r, grad=g)
        edges.append(Edge(fid[id(r.creator)], oid, 0, r.out_index, g))

    tr = Trace(nodes, edges, steps, recorded)
    if show_cut:
        _find_cuts(tr, fns, fid)
    return tr


def _leaf_node(nid: str, t: Tensor, leaf_names: dict, k: int) -> Node:
    kind = "param" if isinstance(t, Parameter) else "leaf"
    title = leaf_names.get(id(t)) or t.name or ("parameter" if kind == "param" else "input")
    g = None
    if t.grad is not None:
        g = float(math.sqrt(float((t.grad.numpy().astype("float64") ** 2).sum())))
    return Node(nid, kind, title, ((t.shape, t.dtype),), (), None, k, tensor=t, grad=g)


def _combine(norms: Sequence[float | None]) -> float | None:
    vals = [n for n in norms if n is not None]
    return math.sqrt(sum(v * v for v in vals)) if vals else None


def _cluster_kinds(cluster: Any) -> tuple:
    if cluster is None or cluster is False:
        return ()
    parts = [cluster] if isinstance(cluster, str) else list(cluster)
    kinds: list = []
    for p in parts:
        for q in str(p).replace("+", ",").split(","):
            q = q.strip()
            if q == "time":
                kinds += _TIME_KINDS
            elif q == "module":
                kinds += _MODULE_KINDS
            elif q:
                raise ValueError(f"draw_graph: cluster={cluster!r} is not understood; use None, "
                                 f"'time', 'module' or 'time+module'")
    return tuple(kinds)


def _path(tags: tuple, kinds: tuple) -> tuple:
    return tuple(t for t in tags if t[0] in kinds)


# ----------------------------------------------------------------------------- truncated BPTT
def _find_cuts(tr: Trace, fns: list, fid: dict) -> None:
    """Mark where a carried state enters the first step of a loop without a gradient path.

    Heuristic (documented in docs/visualization.md): per loop (ops sharing the tags outside the
    step tag), compare the first two steps op by op. Where step s1 takes input `slot` of its i-th
    op from step s0, step s0's i-th op takes the same input from the previous step's state. If that
    input is recorded as "no gradient" (`None` in `.next`: a detached tensor or a constant), the
    gradient of the unrolled graph stops there: we draw a boundary node feeding those inputs."""
    groups: dict = {}
    for fn in fns:
        step = _step_of(fn.tags)
        if step is None:
            continue
        outer = _outer_tags(fn.tags)
        groups.setdefault(outer, {}).setdefault(step, []).append(fn)
    k = 0
    for outer, by_step in groups.items():
        order = sorted(by_step, key=lambda s: by_step[s][0].index)
        if len(order) < 2:
            continue
        s0, s1 = order[0], order[1]
        ops0, ops1 = by_step[s0], by_step[s1]
        if [f.name for f in ops0] != [f.name for f in ops1]:
            continue
        in0 = {id(f) for f in ops0}
        targets = []
        for a, b in zip(ops0, ops1):
            for slot, (pa, pb) in enumerate(zip(a.next, b.next)):
                if pa is None and pb is not None and isinstance(pb[0], Function) and id(pb[0]) in in0:
                    targets.append((a, slot))
        if not targets:
            continue
        zero, seen = _state_values(targets)
        nid = f"cut{k}"
        k += 1
        if seen and zero:
            kind, title = "zero_state", "initial state = 0\n(constant, no gradient)"
        elif seen:
            kind, title = "cut", "detached state\n(BPTT cut: gradient stops here)"
        else:
            kind, title = "cut", "state without gradient\n(detached or constant):\ngradient stops here"
        first = tr.nodes[fid[id(targets[0][0])]]
        tr.nodes[nid] = Node(nid, kind, title, (), _strip_step(first.path), None,
                             targets[0][0].index)
        for fn, slot in targets:
            tr.edges.append(Edge(nid, fid[id(fn)], slot, 0, None, kind="cut"))


def _outer_tags(tags: tuple) -> tuple:
    """The tags outside the innermost step tag: identifies one time loop."""
    last = max((i for i, t in enumerate(tags) if t[0] == "step"), default=-1)
    return tags[:last]


def _strip_step(path: tuple) -> tuple:
    out = []
    for t in path:
        if t[0] == "step":
            break
        out.append(t)
    return tuple(out)


def _state_values(targets: list) -> tuple[bool, bool]:
    """(all visible state inputs are zero, any state input was visible). Inputs are visible only
    while their op still holds them for backward (`saved`), i.e. before backward freed them."""
    seen = False
    zero = True
    for fn, slot in targets:
        si = type(fn).save_inputs
        saved = getattr(fn, "saved", None)
        if saved is None or slot not in si:
            continue
        t = saved[si.index(slot)]
        seen = True
        xp = _xp(t.data)
        if bool(xp.any(t.data != 0)):
            zero = False
    return zero, seen


def _xp(a: Any) -> Any:
    from ..backend import array_module
    return array_module(a)


# ----------------------------------------------------------------------------------- collapse
def collapse_steps(tr: Trace, k: int) -> Trace:
    """Keep the first and last `k` steps; replace the steps between by one summary node per loop.
    Edges into/out of the hidden steps are redirected to the summary and merged (`count`); edges
    inside the hidden steps are counted in `hidden`, so every original edge is accounted for."""
    if k is None or k < 0:
        raise ValueError(f"draw_graph: collapse must be a non-negative number of steps, got {k!r}")
    groups: dict = {}       # loop key -> ordered steps
    for n in tr.nodes.values():
        if n.kind == "op" and n.step is not None:
            key = _strip_step(n.path)
            lst = groups.setdefault(key, [])
            if n.step not in lst:
                lst.append(n.step)
    remap: dict = {}
    hidden: dict = {}
    summaries: dict = {}
    for j, (key, steps) in enumerate(groups.items()):
        if len(steps) <= 2 * k + 1:
            continue
        hide = set(steps[k:len(steps) - k])
        sid = f"summary{j}"
        members = [n for n in tr.nodes.values() if n.kind == "op" and n.step in hide
                   and _strip_step(n.path) == key]
        for n in members:
            remap[n.id] = sid
        first = min(n.index for n in members)
        summaries[sid] = Node(sid, "summary", "", (), key, None, first)
        hidden[sid] = {"steps": len(hide), "ops": len(members), "edges": 0,
                       "first": steps[k], "last": steps[len(steps) - k - 1]}
    if not remap:
        return tr
    nodes = {nid: n for nid, n in tr.nodes.items() if nid not in remap}
    # place each summary where its first hidden op was, so the text order stays stable
    ordered: dict = {}
    pending = sorted(summaries.values(), key=lambda s: s.index)
    for nid, n in nodes.items():
        while pending and n.kind == "op" and n.index > pending[0].index:
            s = pending.pop(0)
            ordered[s.id] = s
        ordered[nid] = n
    for s in pending:
        ordered[s.id] = s
    merged: dict = {}
    for e in tr.edges:
        src, dst = remap.get(e.src, e.src), remap.get(e.dst, e.dst)
        if src == dst and src in hidden:
            hidden[src]["edges"] += e.count
            continue
        if src in hidden or dst in hidden:
            key = (src, dst, e.kind)
            m = merged.get(key)
            if m is None:
                merged[key] = Edge(src, dst, e.slot, e.out_index, e.grad, e.kind, e.count)
            else:
                m.count += e.count
                m.grad = _combine([m.grad, e.grad]) if (m.grad is not None or e.grad is not None) else None
            continue
        merged[(len(merged), "keep")] = Edge(e.src, e.dst, e.slot, e.out_index, e.grad, e.kind, e.count)
    visible = {n.step for n in nodes.values() if n.kind == "op"}
    steps = [s for s in tr.steps if s in visible]
    return Trace(ordered, list(merged.values()), steps, tr.recorded, hidden)


# ------------------------------------------------------------------------------------- memory
def _saved_arrays(fn: Function) -> list:
    """Arrays a Function holds for its backward: saved input tensors, kept outputs, kept masks."""
    out = []
    saved = getattr(fn, "saved", None)
    if saved:
        out += [t.data for t in saved if isinstance(t, Tensor)]
    so = getattr(fn, "saved_out", None)
    if so is not None:
        out += list(so) if isinstance(so, tuple) else [so]
    keep = getattr(fn, "keep", None)
    if keep is not None:
        out += [a for a in (keep if isinstance(keep, (tuple, list)) else [keep]) if hasattr(a, "nbytes")]
    return out


def _root_base(a: Any) -> Any:
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def saved_bytes(tr: Trace) -> tuple[dict, int, bool]:
    """(bytes per step, bytes outside steps, any freed). Each array object is counted once, at
    the first op (creation order) that holds it; the storage of leaves (parameters, inputs that
    require grad) is not counted: it exists whether or not backward is coming."""
    leaf_bases = {id(_root_base(n.tensor.data)) for n in tr.nodes.values()
                  if n.kind in ("param", "leaf") and n.tensor is not None}
    seen: set = set()
    per_step: dict = {}
    outside = 0
    freed = False
    for n in tr.nodes.values():
        if n.kind != "op":
            continue
        if n.fn.freed:
            freed = True
        total = 0
        for a in _saved_arrays(n.fn):
            if id(a) in seen or id(_root_base(a)) in leaf_bases:
                continue
            seen.add(id(a))
            total += int(a.nbytes)
        if n.step is None:
            outside += total
        else:
            per_step[n.step] = per_step.get(n.step, 0) + total
    return per_step, outside, freed


def fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# -------------------------------------------------------------------------------------- draw
class GraphDigraph(graphviz.Digraph):
    """A `graphviz.Digraph` whose rendering (`pipe`, `render`, Jupyter display) falls back to the
    pip-installable renderer when the system Graphviz `dot` is missing (see viz.render)."""

    def pipe(self, format: str | None = None, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        from .render import run_renderer, system_dot  # looked up per call (tests patch them)
        if system_dot() is not None or args:
            return super().pipe(format, *args, **kwargs)
        data = run_renderer(self.source, format or self.format or "svg")
        enc = kwargs.get("encoding")
        return data.decode(enc) if enc else data

    def render(self, filename: Any = None, directory: Any = None, view: bool = False,
               cleanup: bool = False, format: str | None = None, *args: Any, **kwargs: Any) -> str:  # noqa: A002
        from .render import render as render_file, system_dot
        if system_dot() is not None or args or view:
            return super().render(filename, directory, view, cleanup, format, *args, **kwargs)
        import os
        fmt = format or self.format or "pdf"
        src = self.save(filename, directory=directory)
        out = kwargs.get("outfile") or f"{src}.{fmt}"
        render_file(self, out, format=fmt)
        if cleanup:
            os.remove(src)
        return os.fspath(out)


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _fmt_meta(shapes: tuple) -> str:
    if not shapes:
        return ""
    if len(shapes) > 1 and all(s == shapes[0] for s in shapes):
        return f"{len(shapes)} x {_fmt_shape(shapes[0][0])} {shapes[0][1]}"
    return ", ".join(f"{_fmt_shape(s)} {d}" for s, d in shapes[:3]) + (" ..." if len(shapes) > 3 else "")


def _fmt_norm(g: float) -> str:
    return "0" if g == 0 else f"{g:.2e}"


def _values(a: Any, max_elems: int) -> str | None:
    if a is None or getattr(a, "size", max_elems + 1) > max_elems:
        return None
    from ..backend import to_numpy
    import numpy as np
    return np.array2string(to_numpy(a), precision=3, separator=", ", suppress_small=True)


class _Scale:
    """Log-magnitude colour scale of gradient norms."""

    def __init__(self, values: list, grad_range: tuple | None) -> None:
        pos = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
        if grad_range is not None:
            lo, hi = (math.log10(grad_range[0]), math.log10(grad_range[1]))
        elif pos:
            lo, hi = math.log10(min(pos)), math.log10(max(pos))
        else:
            lo, hi = -1.0, 0.0
        lo, hi = math.floor(lo), math.ceil(hi)
        if hi <= lo:
            hi = lo + 1
        self.lo, self.hi = lo, hi

    def frac(self, g: float) -> float:
        return min(1.0, max(0.0, (math.log10(g) - self.lo) / (self.hi - self.lo)))

    def color(self, g: float | None) -> str:
        # _PALETTE[0] is reserved for an exact zero, so the smallest non-zero gradient is not
        # mistaken for "no gradient"
        if g is None or not math.isfinite(g):
            return "#000000"
        if g <= 0:
            return _PALETTE[0]
        return _PALETTE[1 + round(self.frac(g) * (len(_PALETTE) - 2))]

    def width(self, g: float | None) -> str:
        if g is None or not math.isfinite(g) or g <= 0:
            return "0.8"
        return f"{0.8 + 2.4 * self.frac(g):.2f}"

    def legend(self) -> str:
        cols = _PALETTE[1:]
        n = len(cols)
        cells = f'<TD BGCOLOR="{_PALETTE[0]}" WIDTH="28" HEIGHT="14"></TD><TD WIDTH="6"></TD>' + "".join(
            f'<TD BGCOLOR="{c}" WIDTH="28" HEIGHT="14"></TD>' for c in cols)
        marks = {0: self.lo, n - 1: self.hi}
        if (self.hi - self.lo) % 2 == 0 and n % 2 == 1:
            marks[n // 2] = (self.lo + self.hi) // 2
        ticks = '<TD><FONT POINT-SIZE="9">0</FONT></TD><TD></TD>' + "".join(
            f'<TD><FONT POINT-SIZE="9">1e{marks[i]}</FONT></TD>' if i in marks else "<TD></TD>"
            for i in range(n))
        return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">'
                f'<TR><TD COLSPAN="{n + 2}"><B>gradient norm (log scale)</B></TD></TR>'
                f"<TR>{cells}</TR><TR>{ticks}</TR>"
                f'<TR><TD COLSPAN="{n + 2}"><FONT POINT-SIZE="9">edge colour and width: the '
                f"gradient flowing back along it</FONT></TD></TR></TABLE>>")


def _cluster_label(tag: tuple) -> str:
    kind, value = tag
    if kind == "step":
        return f"t = {value}"
    if kind == "module":
        return str(value)
    if kind == "layer":
        return f"layer {value}"
    if kind == "direction":
        return {0: "forward", 1: "reverse"}.get(value, str(value)) if isinstance(value, int) \
            else str(value)
    return f"{kind} = {value}"


def draw_graph(*roots: Any, model: Any = None, names: Any = None, cluster: Any = "time",
               collapse: int | None = None, show_grads: bool = False, backward_order: bool = False,
               show_memory: bool = False, show_saved: bool = False, show_values: int | bool = False,
               show_cut: bool = True, rankdir: str = "LR", grad_range: tuple | None = None,
               title: str | None = None) -> graphviz.Digraph:
    """Draw the graph that produced `roots` (e.g. the loss) as a `graphviz.Digraph`.

    Args:
        model: an nn.Module (or list of them, or a dict name -> tensor) naming the parameters,
            e.g. `rnn.weight_hh_l0`. `names={tensor: "h_1"}` names any tensor (leaf or not);
            otherwise `tensor.name` is used.
        cluster: "time" (one cluster per time step, `t = 3`), "module", "time+module" or None.
        collapse: keep the first and last `collapse` steps, summarise the rest in one node.
        show_grads: after backward, annotate nodes with gradient norms and colour the edges by the
            gradient flowing back (run backward inside `record_grads()` for intermediate norms).
        backward_order: number the ops in the order backward visited them.
        show_memory: label each time-step cluster with the bytes its ops saved for backward.
        show_saved: list the shapes each op holds for backward. show_values: print the values of
            tensors with at most this many elements (True means 6).
        show_cut: mark carried state that enters the unroll without a gradient (truncated BPTT).
        rankdir: "LR" (time flows left to right) or "TB".
    """
    tr = trace(*roots, model=model, names=names, cluster=cluster, show_cut=show_cut)
    full = tr
    if collapse is not None:
        tr = collapse_steps(tr, collapse)
    max_vals = 6 if show_values is True else int(show_values or 0)

    g = GraphDigraph(name="tinygrad_rnn", format="svg")
    g.attr(rankdir=rankdir, newrank="true", fontname="Helvetica", fontsize="12",
           nodesep="0.25", ranksep="0.35", compound="true")
    g.attr("node", fontname="Helvetica", fontsize="10", height="0.3", margin="0.08,0.04")
    g.attr("edge", fontname="Helvetica", fontsize="8", arrowsize="0.6", color="#555555")

    notes: list = []
    scale = None
    if show_grads:
        if not tr.recorded:
            notes.append("Only leaf gradients (.grad) are shown: intermediate gradient norms were "
                         "not recorded.\nRun backward inside `with tg.record_grads():` "
                         "(viz.record_grads) to see the gradient flowing along every edge.")
        vals = [e.grad for e in tr.edges] + [n.grad for n in tr.nodes.values()]
        if all(v is None for v in vals):
            notes.append("No gradients yet: call loss.backward() (inside tg.record_grads()) "
                         "before drawing with show_grads=True.")
        scale = _Scale(vals, grad_range)
    if backward_order and all(n.visit < 0 for n in tr.nodes.values() if n.kind == "op"):
        notes.append("backward_order: no backward has run through this graph yet.")

    mem_label: dict = {}
    if show_memory:
        per_step, outside, freed = saved_bytes(full)
        for s, b in per_step.items():
            mem_label[s] = f"saved for backward: {fmt_bytes(b)}"
        total = sum(per_step.values()) + outside
        line = (f"saved for backward: {fmt_bytes(total)} in all "
                f"({fmt_bytes(sum(per_step.values()))} in {len(per_step)} steps)")
        if freed:
            line += ("\n(backward already freed some saved arrays: draw before backward, or "
                     "use retain_graph=True)")
        notes.append(line)

    # ---- nodes, grouped into clusters by path
    by_path: dict = {}
    for n in tr.nodes.values():
        by_path.setdefault(n.path, []).append(n)
    for n in tr.nodes.values():
        attrs = dict(_STYLE.get(n.kind, _STYLE["op"]))
        attrs["label"] = _esc(_node_label(n, tr, show_grads, backward_order, show_saved, max_vals))
        if n.kind == "op" and show_grads and n.grad is not None and scale is not None:
            attrs["color"] = scale.color(n.grad)
            attrs["penwidth"] = "1.5"
        n.attrs = attrs  # type: ignore[attr-defined]

    tree = _cluster_tree(by_path)
    built: dict = {}
    for path in sorted(tree, key=lambda p: (-len(p), tree[p])):
        sub = graphviz.Digraph(name=f"cluster_{len(built)}_{_safe(path[-1])}")
        _style_cluster(sub, path, mem_label)
        for n in by_path.get(path, []):
            sub.node(n.id, **n.attrs)
        built[path] = sub
    # attach children to parents, children in creation order; deepest first so each is complete
    children: dict = {}
    for path in tree:
        children.setdefault(path[:-1], []).append(path)
    for path in sorted(tree, key=lambda p: -len(p)):
        for ch in sorted(children.get(path, []), key=lambda p: tree[p]):
            built[path].subgraph(built[ch])
    for n in by_path.get((), []):
        g.node(n.id, **n.attrs)
    for ch in sorted(children.get((), []), key=lambda p: tree[p]):
        g.subgraph(built[ch])

    # ---- keep sibling step clusters in time order with invisible edges (independent steps,
    # e.g. a bidirectional layer, would otherwise be stacked in one rank)
    for parent, chs in sorted(children.items(), key=lambda kv: (len(kv[0]), tree.get(kv[0], -1))):
        step_chs = sorted([c for c in chs if c[-1][0] == "step"], key=lambda p: tree[p])
        for a, b in zip(step_chs, step_chs[1:]):
            na = _last_op(by_path, tree, a)
            nb = _first_op(by_path, tree, b)
            if na is not None and nb is not None:
                g.edge(na, nb, style="invis", weight="0")

    # ---- edges
    multi = {n.id for n in tr.nodes.values() if n.kind == "op" and len(n.shapes) > 1}
    # Steps are ranked by the recurrence alone: edges that fan out from shared nodes outside the
    # steps (weights, W^T, the input projection) into every step do not pull the layout.
    in_step = {n.id for n in tr.nodes.values() if n.kind == "summary"
               or (n.step is not None and any(t[0] == "step" for t in n.path))}
    for e in tr.edges:
        attrs: dict = {}
        if e.kind != "cut" and e.src not in in_step and e.dst in in_step:
            attrs["constraint"] = "false"
        if e.kind == "cut":
            attrs.update(style="dashed", color="#cc0000", arrowhead="tee")
        elif scale is not None and e.grad is not None:
            attrs.update(color=scale.color(e.grad), penwidth=scale.width(e.grad),
                         tooltip=f"gradient norm {_fmt_norm(e.grad)}")
        elif scale is not None and tr.recorded:
            attrs.update(color="#bbbbbb", style="dotted")
        label = []
        if e.src in multi:
            label.append(f"[{e.out_index}]")
        if e.count > 1:
            label.append(f"x{e.count}")
        if label:
            attrs["label"] = " ".join(label)
        g.edge(e.src, e.dst, **attrs)

    if scale is not None and (tr.recorded or any(n.grad is not None for n in tr.nodes.values())):
        g.node("legend", label=scale.legend(), shape="plaintext")
    for i, text in enumerate(notes):
        g.node(f"note{i}", label=_esc(text), **_STYLE["note"])
    if title:
        g.attr(label=title, labelloc="t", fontsize="14")
    return g


def _esc(text: str) -> str:
    """DOT line breaks: graphviz reads the two characters \\n in a label as a new line."""
    return text.replace("\n", "\\n")


def _safe(tag: tuple) -> str:
    return "".join(c if c.isalnum() else "_" for c in f"{tag[0]}_{tag[1]}")


def _cluster_tree(by_path: dict) -> dict:
    """Every cluster path (and its prefixes) -> the smallest creation index inside it."""
    tree: dict = {}
    for path, nodes in by_path.items():
        first = min((n.index for n in nodes), default=0)
        for d in range(1, len(path) + 1):
            p = path[:d]
            tree[p] = min(tree.get(p, first), first)
    return tree


def _first_op(by_path: dict, tree: dict, path: tuple) -> str | None:
    cands = [n for p, ns in by_path.items() if p[:len(path)] == path for n in ns if n.kind == "op"]
    return min(cands, key=lambda n: n.index).id if cands else None


def _last_op(by_path: dict, tree: dict, path: tuple) -> str | None:
    cands = [n for p, ns in by_path.items() if p[:len(path)] == path for n in ns if n.kind == "op"]
    return max(cands, key=lambda n: n.index).id if cands else None


def _style_cluster(sub: graphviz.Digraph, path: tuple, mem_label: dict) -> None:
    tag = path[-1]
    label = _cluster_label(tag)
    if tag[0] == "step" and tag[1] in mem_label:
        label += f"\n{mem_label[tag[1]]}"
    # several lines: "\l" ends each line left-justified (a "\n" would centre them)
    label = label.replace("\n", "\\l") + "\\l" if "\n" in label else label
    if tag[0] == "step":
        sub.attr(label=label, style="rounded,filled", fillcolor="#eef4fb", color="#7fa7d0",
                 fontsize="12", fontcolor="#1f4e79", labeljust="l")
    elif tag[0] == "module":
        sub.attr(label=label, style="rounded,dashed", color="#a0522d", fontcolor="#a0522d",
                 fontsize="11", labeljust="l")
    else:
        sub.attr(label=label, style="rounded", color="#888888", fontsize="11", labeljust="l")


def _node_label(n: Node, tr: Trace, show_grads: bool, backward_order: bool, show_saved: bool,
                max_vals: int) -> str:
    lines: list = []
    if n.kind == "summary":
        h = tr.hidden[n.id]
        return (f"... {h['steps']} steps hidden (t = {h['first']} .. {h['last']}) ...\n"
                f"{h['ops']} ops, {h['edges']} edges inside")
    if n.kind in ("cut", "zero_state"):
        return n.title
    head = n.title
    if backward_order and n.kind == "op" and n.visit >= 0:
        head = f"#{n.visit}  {head}"
    lines.append(head)
    meta = _fmt_meta(n.shapes)
    if meta:
        lines.append(meta)
    if max_vals:
        arr = None
        if n.tensor is not None:
            arr = n.tensor.data
        elif n.fn is not None and getattr(n.fn, "saved_out", None) is not None \
                and not isinstance(n.fn.saved_out, tuple):
            arr = n.fn.saved_out
        v = _values(arr, max_vals)
        if v is not None:
            lines.append(v)
    if show_saved and n.kind == "op":
        if n.fn.freed:
            lines.append("saved: freed by backward")
        else:
            arrs = _saved_arrays(n.fn)
            if arrs:
                lines.append("saves " + " ".join(_fmt_shape(a.shape) for a in arrs))
    if show_grads and n.grad is not None:
        lines.append(f"grad norm {_fmt_norm(n.grad)}")
    return "\n".join(lines)
