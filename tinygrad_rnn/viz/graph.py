"""Trace the recorded autodiff graph into plain data (no drawing): op and tensor nodes with their
cluster paths (time step, module), edges with the gradient sent back along them, truncated-BPTT
cuts, collapsed long unrolls and the memory each step holds for backward.

The drawing (viz.draw) and the BPTT explorer read this data; the engine is only read, through
its public graph records (`iter_graph`, `Function.next/tags/index/visit/out_meta/out_names`).
Node ids come from positions in creation order, never from `id()`, so the same graph always
gives the same ids. Imports: the core (autograd, tensor, backend, nn.module), NumPy-free.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .. import autograd
from ..autograd import Function, step_of  # step_of: re-exported for viz (one "which step" helper)
from ..backend import array_module, to_numpy
from ..nn.module import Module, Parameter
from ..tensor import Tensor

# The tag kinds that make clusters: "time" clusters by step (nested in layer/direction when a
# graph has several), "module" by the module path that nn.Module.__call__ records.
_TIME_KINDS = ("layer", "direction", "step")
_MODULE_KINDS = ("module",)


def loop_key(tags: tuple) -> tuple:
    """The tags outside the innermost ("step", t) tag (all of them when there is none): what
    identifies one time loop (its layer, direction...) among the loops of a graph."""
    last = max((i for i, t in enumerate(tags) if t[0] == "step"), default=len(tags))
    return tuple(tags[:last])


def loops_of(fns: Iterable[Function]) -> dict:
    """The ops inside time steps, by loop (loop_key of their tags) and step: {loop: {step: [fn]}},
    each list in the order of `fns` (creation order for iter_graph)."""
    loops: dict = {}
    for fn in fns:
        step = step_of(fn.tags)
        if step is not None:
            loops.setdefault(loop_key(fn.tags), {}).setdefault(step, []).append(fn)
    return loops


def norm(g: Any) -> float:
    """Euclidean norm of a gradient (a Tensor or an array; None counts as 0), in float64 on the
    host; of a list or tuple of them, the norm of all their entries together."""
    if g is None:
        return 0.0
    if isinstance(g, (list, tuple)):
        return math.sqrt(sum(norm(x) ** 2 for x in g))
    a = to_numpy(g.data if isinstance(g, Tensor) else g).astype("float64")
    return float(math.sqrt(float((a * a).sum())))


# ---------------------------------------------------------------------------------- plain data
@dataclass
class Node:
    """One drawn node: an op, a leaf/parameter, a root output, a cut marker or a collapse summary."""
    id: str
    kind: str                    # op | param | leaf | output | cut | zero_state, or a merged
    #                              group: summary (collapsed steps) | step (one folded step) | loss
    title: str                   # op name (ops) or tensor name
    shapes: tuple = ()           # ((shape, dtype), ...) of the outputs / the tensor
    path: tuple = ()             # cluster path: the selected tags, outermost first
    step: Any = None             # innermost ("step", t) value, None outside time steps
    index: int = -1              # creation order (ops) / first use (leaves)
    fn: Function | None = None
    tensor: Tensor | None = None
    grad: float | None = None    # gradient norm of this node's value(s), when known
    visit: int = -1              # backward visit order (ops)
    extra: list = field(default_factory=list)  # more label lines
    names: tuple = ()            # ops: the math name template of each output ("h_t"), or None


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
    origin: str = ""             # the node the edge leaves in the unmerged graph, when a merge
    #                              redirected it (its output `out_index` is the tensor carried)


@dataclass
class Trace:
    nodes: dict                  # id -> Node, in a deterministic order
    edges: list                  # [Edge]
    steps: list                  # distinct step values in order of first appearance
    recorded: bool               # backward ran inside record_grads() for these functions
    hidden: dict = field(default_factory=dict)   # summary id -> {"steps", "ops", "edges"}

    def step_nodes(self, step: Any) -> list:
        return [n for n in self.nodes.values() if n.kind == "op" and n.step == step]


def output_tensor(fn: Function, i: int = 0) -> Tensor:
    """A Tensor standing for output `i` of a recorded op, for `tg.grad` (as an output to start
    from, or an input to take the gradient of). The graph does not keep output values: its data
    is a read-only zero of the output's shape and dtype, never read by backward."""
    shape, dtype = fn.out_meta[i]
    t = Tensor._make(fn.xp.broadcast_to(fn.xp.zeros((), dtype=dtype), shape), True)
    t.creator, t.out_index = fn, i
    return t


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


def trace(*roots: Any, model: Any = None, names: Any = None, cluster: Any = "time",
          show_cut: bool = True, constants: bool = False) -> Trace:
    """Collect the graph reachable from `roots` as plain nodes and edges (no drawing).
    constants: also add the inputs that need no gradient (kind "const", edge kind "const"), where
    their op still holds them (before backward, or after backward(retain_graph=True))."""
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
        step = step_of(fn.tags)
        if step is not None and step not in seen_steps:
            seen_steps.add(step)
            steps.append(step)
        gnorms = getattr(fn, "grad_out_norms", None)
        if gnorms is not None:
            recorded = True
        node = Node(nid, "op", fn.name, tuple(fn.out_meta), _path(fn.tags, kinds), step, k, fn=fn,
                    grad=_combine(gnorms) if gnorms is not None else None, visit=fn.visit)
        own = fn.__dict__.get("out_names") or {}
        node.names = tuple(nonleaf_names.get((id(fn), i), own.get(i))
                           for i in range(len(fn.out_meta)))
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
    if constants:
        _add_constants(tr, fns, fid, leaf_names)
    return tr


def _add_constants(tr: Trace, fns: list, fid: dict, leaf_names: dict) -> None:
    """One node per constant input (no gradient) that an op still holds, e.g. the x of w * x."""
    cut = {(e.dst, e.slot) for e in tr.edges if e.kind == "cut"}
    ids: dict = {}
    for fn in fns:
        si, saved = type(fn).save_inputs, getattr(fn, "saved", None)
        for slot, p in enumerate(fn.next):
            if p is not None or not saved or slot not in si or (fid[id(fn)], slot) in cut:
                continue
            t = saved[si.index(slot)]
            nid = ids.get(id(t))
            if nid is None:
                nid = ids[id(t)] = f"const{len(ids)}"
                title = leaf_names.get(id(t)) or t.name or "constant"
                tr.nodes[nid] = Node(nid, "const", title, ((t.shape, t.dtype),), (), None, fn.index,
                                     tensor=t)
            tr.edges.append(Edge(nid, fid[id(fn)], slot, 0, None, kind="const"))


def _leaf_node(nid: str, t: Tensor, leaf_names: dict, k: int) -> Node:
    kind = "param" if isinstance(t, Parameter) else "leaf"
    title = leaf_names.get(id(t)) or t.name or ("parameter" if kind == "param" else "input")
    g = None
    if t.grad is not None:
        g = norm(t.grad)
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
    k = 0
    for by_step in loops_of(fns).values():
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
        kind = _state_kind(targets)
        nid = f"cut{k}"
        k += 1
        title = {"zero_state": "initial state = 0\n(a constant: no gradient flows into it)",
                 "cut": "detached state\n(truncated BPTT: the gradient stops here)",
                 "state": "state given without gradient\n(initial state, or detached)"}[kind]
        first = tr.nodes[fid[id(targets[0][0])]]
        tr.nodes[nid] = Node(nid, kind, title, (), loop_key(first.path), None,
                             targets[0][0].index)
        for fn, slot in targets:
            tr.edges.append(Edge(nid, fid[id(fn)], slot, 0, None, kind="cut"))


# What a state without gradient held, keyed by the op that reads it: the values are visible only
# while the op keeps them for backward, so a drawing after backward reuses what an earlier one
# (or any trace) saw, and the initial state looks the same before and after backward.
_STATE_KIND: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _state_kind(targets: list) -> str:
    """"zero_state" (all visible state inputs are zero: the initial state), "cut" (a non-zero
    state without gradient: a detached state, truncated BPTT) or "state" (not visible: backward
    freed the saved inputs before any trace saw them)."""
    first = targets[0][0]
    known = _STATE_KIND.get(first)
    if known is not None:
        return known
    seen, zero = False, True
    for fn, slot in targets:
        si = type(fn).save_inputs
        saved = getattr(fn, "saved", None)
        if saved is None or slot not in si:
            continue
        t = saved[si.index(slot)]
        seen = True
        if bool(array_module(t.data).any(t.data != 0)):
            zero = False
    if not seen:
        return "state"
    kind = "zero_state" if zero else "cut"
    _STATE_KIND[first] = kind
    return kind


# ------------------------------------------------------------------------- levels of detail
def merge(tr: Trace, groups: dict, info: dict | None = None) -> Trace:
    """Replace nodes by group nodes: `groups` maps a node id to its group's Node. Edges into and
    out of a group are redirected to it; those carrying the same tensor (same source op and
    output; for a "summary" group, any tensor) between the same two nodes become one edge with a
    `count`; edges inside a group are
    counted in `hidden[group id]["edges"]` (with "ops", the number of members), so every edge of
    `tr` is accounted for; `info` adds entries to a group's `hidden` record. A group node takes the
    place of its first member in the node order."""
    if not groups:
        return tr
    hidden = dict(tr.hidden)
    for g in {id(g): g for g in groups.values()}.values():
        hidden[g.id] = {**(info or {}).get(g.id, {}), "ops": 0, "edges": 0}
    for nid in groups:
        h = hidden[groups[nid].id]
        h["ops"] += 1
        v = tr.nodes[nid].visit
        if v >= 0:  # the backward visits of the members: (first, last)
            a, b = h.get("visits", (v, v))
            h["visits"] = (min(a, v), max(b, v))
    nodes: dict = {}
    for nid, n in tr.nodes.items():
        g = groups.get(nid)
        if g is None:
            nodes[nid] = n
        elif g.id not in nodes:
            nodes[g.id] = g
    merged: dict = {}
    for e in tr.edges:
        src = groups[e.src].id if e.src in groups else e.src
        dst = groups[e.dst].id if e.dst in groups else e.dst
        if src == dst and e.src in groups:
            hidden[src]["edges"] += e.count
            continue
        if src != e.src or dst != e.dst:
            origin = e.origin or e.src
            # into or out of collapsed steps: one edge per pair of nodes (it stands for one edge
            # per hidden step); otherwise one per tensor carried (h_t and c_t stay apart)
            summary = "summary" in (nodes[src].kind, nodes[dst].kind)
            key = (src, dst, e.kind) if summary else (src, dst, origin, e.out_index, e.kind)
            m = merged.get(key)
            if m is None:
                merged[key] = Edge(src, dst, e.slot, e.out_index, e.grad, e.kind, e.count, origin)
            else:
                m.count += e.count
                m.grad = _combine([m.grad, e.grad]) if (m.grad is not None or e.grad is not None) else None
            continue
        merged[(len(merged), "keep")] = e
    visible = {n.step for n in nodes.values() if n.kind == "op"}
    steps = [s for s in tr.steps if s in visible]
    return Trace(nodes, list(merged.values()), steps, tr.recorded, hidden)


def _loops(tr: Trace) -> dict:
    """Loop key (the cluster path outside the step) -> its steps in order, for the op nodes."""
    loops: dict = {}
    for n in tr.nodes.values():
        if n.kind == "op" and n.step is not None:
            lst = loops.setdefault(loop_key(n.path), [])
            if n.step not in lst:
                lst.append(n.step)
    return loops


def collapse_steps(tr: Trace, k: int) -> Trace:
    """Keep the first and last `k` steps of each loop; replace the steps between by one summary
    node per loop (see `merge` for how every edge is accounted for)."""
    if k is None or isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"draw_graph: collapse must be a non-negative number of steps, got {k!r}")
    groups: dict = {}
    info: dict = {}
    for j, (key, steps) in enumerate(_loops(tr).items()):
        if len(steps) <= 2 * k + 1:
            continue
        hide = set(steps[k:len(steps) - k])
        members = [n for n in tr.nodes.values() if n.kind == "op" and n.step in hide
                   and loop_key(n.path) == key]
        g = Node(f"summary{j}", "summary", "", (), key, None, min(n.index for n in members))
        info[g.id] = {"steps": len(hide), "first": steps[k], "last": steps[len(steps) - k - 1]}
        groups.update((n.id, g) for n in members)
    return merge(tr, groups, info)


def fold_steps(tr: Trace, show: Any = "last") -> Trace:
    """Draw each time step as one box, except the steps in `show`, which keep their ops.

    show: "last" (the last step of each loop), "final" (the last step of the last loop), "all",
    "none", a step or a list of steps. A
    folded step is a node of kind "step" titled "t = 3" at the loop's cluster path; edges
    entering and leaving it still carry one tensor each (h_{t-1}, c_{t-1}, x_t in; h_t, c_t out)."""
    if show == "all":
        return tr
    groups: dict = {}
    j = 0
    loops = _loops(tr)
    for key, steps in loops.items():
        if show == "last" or (show == "final" and key == list(loops)[-1]):
            keep = {steps[-1]}
        elif show == "final":
            keep = set()
        elif show == "none" or show is None:
            keep = set()
        else:
            keep = set(show) if isinstance(show, (list, tuple, set, range)) else {show}
        for step in steps:
            if step in keep:
                continue
            members = [n for n in tr.nodes.values() if n.kind == "op" and n.step == step
                       and loop_key(n.path) == key]
            first = min(members, key=lambda n: n.index)
            g = Node(f"step{j}", "step", f"t = {step}", (), key, step, first.index, fn=first.fn)
            j += 1
            groups.update((n.id, g) for n in members)
    return merge(tr, groups)


def fold_scopes(tr: Trace, kind: str = "loss") -> Trace:
    """Draw each call of a function that tagged its ops with scope(kind, name) (the losses tag
    theirs ("loss", "cross_entropy")) as one box of that kind titled by the name. Ops of one call
    are those connected to each other under the same outermost tag."""
    key_of: dict = {}
    for n in tr.nodes.values():
        if n.kind == "op":
            tags = n.fn.tags
            i = next((i for i, t in enumerate(tags) if t[0] == kind), None)
            if i is not None:
                key_of[n.id] = tags[:i + 1]
    parent = {nid: nid for nid in key_of}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    for e in tr.edges:
        if e.src in key_of and e.dst in key_of and key_of[e.src] == key_of[e.dst]:
            parent[find(e.src)] = find(e.dst)
    comps: dict = {}
    for nid in key_of:  # node order = creation order, so groups are numbered deterministically
        comps.setdefault(find(nid), []).append(tr.nodes[nid])
    groups: dict = {}
    for j, members in enumerate(comps.values()):
        first = min(members, key=lambda n: n.index)
        last = max(members, key=lambda n: n.index)
        name = key_of[first.id][-1][1]
        g = Node(f"{kind}{j}", kind, str(name), last.shapes, first.path, first.step, first.index,
                 fn=last.fn, grad=last.grad, visit=last.visit, names=last.names)
        groups.update((n.id, g) for n in members)
    return merge(tr, groups)


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
