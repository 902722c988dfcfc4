"""The BPTT explorer: one self-contained HTML page to walk the unrolled graph and replay backward.

    ex = viz.explore(loss, model=model)     # runs loss.backward() itself, recording every visit
    ex.save("explorer.html")                # one file, no network; `ex` alone displays in Jupyter

Optionally run the forward inside `with viz.recording():` so the page also shows the value of
every node and the line of your code that created it.

What is recorded: the engine's visit order and the gradient sent along every edge (through the
public hook autograd.observe_backward); the values the graph holds (leaves, arrays saved for
backward, or everything under `recording()`); for each leaf, its gradient as a running sum of the
terms that reach it, carried back through ops outside the time steps that only transform it
(W_hh^T; gradflow.StepTerms, which grad_by_step uses too), so the page shows W_hh.grad being
summed over t. Layout: Graphviz (system `dot` or graphviz-pure, found as viz.render finds them),
as SVG embedded in the page; the edges that fan out from shared nodes (weights, x_t, the stack of
outputs) into every step are drawn by the page, not laid out by Graphviz (laying them out costs
minutes for a 50-step LSTM). Nodes and clusters are labelled as in viz.draw_graph.
Imports: graph, labels, draw, gradflow and render (this package), the core. The page's JS/CSS
live in explorer_template.html next to this file.
"""
from __future__ import annotations

import html
import json
import os
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from graphviz.quoting import quote

from .. import autograd
from ..autograd import Function
from ..backend import to_numpy
from ..nn.module import Parameter
from ..tensor import Tensor
from .draw import _STYLE, _cluster_label, _esc, _node_label
from .gradflow import StepTerms
from .graph import Trace, collapse_steps, loop_key, loops_of, norm, step_of, trace
from .labels import math_label
from .render import _INSTALL, RenderError, find_renderer, run_renderer

_TEMPLATE = Path(__file__).with_name("explorer_template.html")
HEAT_MAX = 512          # heat maps for tensors with at most this many elements
PREVIEW = 4             # leading entries printed for each gradient sum
MAX_LAYOUT_OPS = 2500   # above this many ops the page shows the first/last steps only


# ------------------------------------------------------------------------- forward recording
_FORWARD: "weakref.WeakKeyDictionary[Function, tuple]" = weakref.WeakKeyDictionary()


class recording:
    """`with viz.recording():` around a forward pass remembers, for every op created inside, the
    line of your code that created it and the value it computed, for viz.explore to show.

    It watches returns from Function.__call__ with a profile function (sys.setprofile), so the
    engine's hot path is untouched when not recording; inside, the forward runs about 4-5 times
    slower (a 50-step LSTM: 3 ms -> 14 ms). It watches the current thread only; a profiler already
    installed is replaced while recording and restored on exit."""

    def __enter__(self) -> "recording":
        self._prev = sys.getprofile()
        sys.setprofile(_profile)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(self._prev)


_CALL_CODE = Function.__call__.__code__


def _profile(frame: Any, event: str, arg: Any) -> None:
    if event != "return" or frame.f_code is not _CALL_CODE or arg is None:
        return
    fn = frame.f_locals.get("self")
    if getattr(fn, "index", None) is None:  # no graph recorded (no_grad, constants)
        return
    outs = arg if isinstance(arg, tuple) else (arg,)
    _FORWARD[fn] = (autograd._user_frame(frame), tuple(o.data for o in outs))


# ---------------------------------------------------------------------------------- numbers
def _host(a: Any) -> np.ndarray:
    return np.asarray(to_numpy(a.data if isinstance(a, Tensor) else a), dtype=np.float64)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _stats(a: np.ndarray) -> dict:
    if a.size == 0:
        return {"n": 0}
    fin = a[np.isfinite(a)]
    out = {"n": int(a.size), "norm": _fmt(norm(fin)) if fin.size else "nan"}
    if fin.size:
        out.update(min=_fmt(float(fin.min())), max=_fmt(float(fin.max())),
                   mean=_fmt(float(fin.mean())), std=_fmt(float(fin.std())))
    if fin.size != a.size:
        out["nonfinite"] = int(a.size - fin.size)
    return out


def _heat(a: np.ndarray) -> dict | None:
    """A small tensor as a 2-D grid of bytes (hex), scaled symmetrically by max |a|."""
    if a.size == 0 or a.size > HEAT_MAX:
        return None
    m = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(1, -1)
    fin = np.where(np.isfinite(m), m, 0.0)
    scale = float(np.abs(fin).max())
    q = np.round((fin / scale if scale > 0 else fin) * 127 + 128).clip(0, 255).astype(np.uint8)
    return {"rows": int(m.shape[0]), "cols": int(m.shape[1]), "scale": _fmt(scale), "hex": q.tobytes().hex()}


def _describe(a: np.ndarray) -> dict:
    d = {"stats": _stats(a)}
    h = _heat(a)
    if h is not None:
        d["heat"] = h
    return d


def _preview(a: np.ndarray) -> list:
    return [_fmt(float(v)) for v in a.reshape(-1)[:PREVIEW]]


# ------------------------------------------------------------------------------ the recording
class _Backward:
    """What backward did, from observe_backward: per visited Function, in visit order,
    the gradient of each output and the gradient sent along each edge (host float64 copies)."""

    def __init__(self) -> None:
        self.events: list = []   # (fn, grads_out, grads_in)

    def __call__(self, fn: Function, gys: tuple, gxs: tuple) -> None:
        self.events.append((fn, tuple(None if g is None else _host(g).copy() for g in gys),
                            tuple(None if g is None else _host(g).copy() for g in gxs)))


def _run_backward(roots: list) -> tuple[_Backward, StepTerms, dict]:
    """Run root.backward(retain_graph=True) for each root inside observe_backward; return the
    record, the per-step terms of every leaf's gradient and each reached leaf's .grad before it
    (a gradient accumulates into .grad)."""
    before = {}
    for fn in autograd.iter_graph(roots):
        for p in fn.next:
            if p is not None and isinstance(p[0], Tensor):
                g = p[0].grad
                before[id(p[0])] = None if g is None else _host(g.data).copy()
    rec, terms = _Backward(), StepTerms(roots)
    try:
        with autograd.observe_backward(rec), autograd.observe_backward(terms):
            for r in roots:
                r.backward(retain_graph=True)
    except autograd.GraphFreedError as e:
        raise autograd.GraphFreedError(
            f"viz.explore runs the backward itself, to record it: call viz.explore(loss, ...) "
            f"instead of loss.backward(), on a graph that backward has not freed yet. ({e})") from None
    return rec, terms, before


def _value_of(fn: Function, consumers: dict) -> tuple | None:
    """Output arrays of fn: recorded by recording(), else found where backward kept them."""
    rec = _FORWARD.get(fn)
    if rec is not None:
        return rec[1]
    outs: list = [None] * len(fn.out_meta)
    so = getattr(fn, "saved_out", None)
    if so is not None:
        for i, a in enumerate(so if isinstance(so, tuple) else (so,)):
            outs[i] = a
    for c in consumers.get(id(fn), ()):
        saved = getattr(c, "saved", None) or ()
        for t in saved:
            if isinstance(t, Tensor) and t.creator is fn and outs[t.out_index] is None:
                outs[t.out_index] = t.data
    return tuple(outs) if any(o is not None for o in outs) else None


def _math_name(n: Any) -> str:
    """The math name of a traced node (h_3, c_3, W_hh^T...), '' for an op without one: viz's one
    label function (labels.math_label) read for the page."""
    title, op_line = math_label(n)
    return title if (op_line or n.kind != "op") else ""


# --------------------------------------------------------------------------------- the page
class Explorer:
    """The recorded graph and backward; `save(path)` writes the page, `html()` returns it, and in
    Jupyter the object displays itself inline."""

    def __init__(self, data: dict, dot: str, renderer: str = "auto") -> None:
        self.data = data
        self.dot = dot
        self._renderer = renderer
        self._svg: str | None = None

    @property
    def svg(self) -> str:
        if self._svg is None:
            if find_renderer(self._renderer) is None:
                raise RenderError(f"viz.explore: the explorer page lays out the graph with Graphviz, "
                                  f"and no Graphviz renderer was found. To use it, {_INSTALL}")
            svg = run_renderer(self.dot, "svg", self._renderer).decode("utf-8")
            self._svg = svg[svg.index("<svg"):]
        return self._svg

    def html(self) -> str:
        page = _TEMPLATE.read_text(encoding="utf-8")
        payload = json.dumps(self.data, separators=(",", ":")).replace("</", "<\\/")
        svg = self.svg.replace("</script", "<\\/script")
        return (page.replace("/*TITLE*/", html.escape(self.data["title"]))
                    .replace("/*DATA*/", payload)
                    .replace("<!--SVG-->", svg))

    def save(self, path: str | os.PathLike) -> Path:
        out = Path(path)
        if not out.suffix:
            out = out.with_suffix(".html")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.html(), encoding="utf-8")
        return out

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" '
                f'style="width:100%;height:640px;border:1px solid #ccc"></iframe>')

    def __repr__(self) -> str:
        d = self.data
        return (f"<viz.Explorer: {len(d['nodes'])} nodes, {len(d['visits'])} backward visits, "
                f"{len(d['steps'])} time steps; .save('explorer.html') writes the page>")


def explore(*roots: Any, model: Any = None, names: Any = None, title: str | None = None,
            expanded: int = 3, renderer: str = "auto", max_ops: int = MAX_LAYOUT_OPS) -> Explorer:
    """Record the graph of `roots` (e.g. the loss) and one backward through it, for the explorer
    page. Runs `root.backward(retain_graph=True)` itself for each root (accumulating into `.grad`
    as loss.backward() would, keeping the graph), so call it instead of loss.backward().

    model / names: name the parameters and tensors, as in viz.draw_graph.
    expanded: long unrolls open with the first and last `expanded` steps expanded (the others can
    be expanded in the page). max_ops: a graph with more ops is laid out with only those steps
    (the page says so). renderer: as in viz.render ("auto", "dot", "graphviz-pure" or a path).
    Raises RenderError (saying what to install) when no Graphviz renderer is found."""
    rts = [r for r in roots]
    if not rts or not all(isinstance(r, Tensor) for r in rts):
        raise TypeError("viz.explore: give the tensors to explore (e.g. the loss), got "
                        f"{[type(r).__name__ for r in rts]}")
    if find_renderer(renderer) is None:
        raise RenderError(f"viz.explore: the explorer page lays out the graph with Graphviz, and "
                          f"no Graphviz renderer was found. To use it, {_INSTALL}")
    rec, terms, before = _run_backward(rts)
    tr = trace(*rts, model=model, names=names, cluster="time")
    data, dot = _page_data(tr, rec, terms, before, title, expanded, max_ops)
    return Explorer(data, dot, renderer)


def _page_data(tr: Trace, rec: _Backward, terms: StepTerms, before: dict, title: str | None,
               expanded: int, max_ops: int) -> tuple[dict, str]:
    fns = [n.fn for n in tr.nodes.values() if n.kind == "op"]
    fid = {id(n.fn): n.id for n in tr.nodes.values() if n.kind == "op"}
    lid = {id(n.tensor): n.id for n in tr.nodes.values() if n.kind in ("param", "leaf")}
    consumers: dict = {}
    for fn in fns:
        for p in fn.next:
            if p is not None:
                consumers.setdefault(id(p[0]), []).append(fn)
    events = {id(fn): (k, gys, gxs) for k, (fn, gys, gxs) in enumerate(rec.events)}

    # ---- edges: index by (dst fn, slot) so each visit can light the edges it sends along
    edge_at: dict = {}
    for k, e in enumerate(tr.edges):
        if e.kind == "data" and e.dst.startswith("op"):
            edge_at[(e.dst, e.slot)] = k

    # ---- nodes
    nodes = []
    for n in tr.nodes.values():
        d: dict = {"id": n.id, "kind": n.kind, "name": _math_name(n) if n.kind != "cut" else n.title,
                   "step": n.step, "shapes": [[list(s), str(dt)] for s, dt in n.shapes]}
        if n.fn is not None:
            fn = n.fn
            d.update(op=fn.name, visit=events[id(fn)][0] if id(fn) in events else -1,
                     layer=step_of(fn.tags, "layer"), direction=step_of(fn.tags, "direction"),
                     module=step_of(fn.tags, "module"),
                     line=_FORWARD[fn][0] if fn in _FORWARD else None)
            vals = _value_of(fn, consumers)
            if vals is not None:
                d["value"] = [None if v is None else _describe(_host(v)) for v in vals[:4]]
            ev = events.get(id(fn))
            if ev is not None:
                d["grad"] = [None if g is None else _describe(g) for g in ev[1][:4]]
        elif n.tensor is not None:
            t = n.tensor
            d["value"] = [_describe(_host(t.data))]
            d["op"] = "parameter" if isinstance(t, Parameter) else ("leaf" if n.kind == "leaf" else "output")
            if t.grad is not None and n.kind != "output":  # .grad after this backward
                d["grad"] = [_describe(_host(t.grad.data))]
            if n.kind == "output" and t.creator is not None and id(t.creator) in events:
                g = events[id(t.creator)][1][t.out_index]
                d["grad"] = [None if g is None else _describe(g)]
        nodes.append(d)

    # ---- leaves: what .grad receives along each edge, and the per-step terms (StepTerms:
    # what reaches a leaf directly or through the ops outside the steps that only transform it)
    leaves: dict = {}
    for n in tr.nodes.values():
        if n.kind in ("param", "leaf") and n.tensor.requires_grad:
            g0 = before.get(id(n.tensor))
            leaves[n.id] = {"name": n.title, "sum": None if g0 is None else g0.copy(),
                            "direct": None if g0 is None else g0.copy(), "terms": [],
                            "arrivals": [], "before": g0 is not None}

    visits = []
    for k, (fn, gys, gxs) in enumerate(rec.events):
        nid = fid.get(id(fn))
        v: dict = {"node": nid, "edges": []}
        for slot, (p, g) in enumerate(zip(fn.next, gxs)):
            if p is None or g is None:
                continue
            ek = edge_at.get((nid, slot))
            if ek is not None:
                v["edges"].append([ek, _fmt(norm(g))])
            L = leaves.get(lid.get(id(p[0])))
            if L is not None:
                L["direct"] = g.copy() if L["direct"] is None else L["direct"] + g
                L["arrivals"].append([k, _fmt(norm(g)), _fmt(norm(L["direct"])), _preview(L["direct"])])
        visits.append(v)
    for (k, _, step), by_leaf in terms.carried(lambda *key: key).items():
        for key, term in by_leaf.items():
            L = leaves.get(lid.get(key))
            if L is not None:
                term = _host(term)
                L["sum"] = term.copy() if L["sum"] is None else L["sum"] + term
                L["terms"].append([k, step, _fmt(norm(term)), _fmt(norm(L["sum"])), _preview(L["sum"])])
    leaf_out = {}
    for nid, L in leaves.items():
        fin = L["direct"]
        leaf_out[nid] = {"name": L["name"], "terms": L["terms"], "arrivals": L["arrivals"],
                         "before": L["before"],
                         "final": None if fin is None else {"norm": _fmt(norm(fin)), "preview": _preview(fin)}}

    # ---- gradient flow: ||dL/dh_t||, ||dL/dc_t|| per step, from the recorded output gradients
    flow = _flow(tr, events)

    # ---- layout: the whole graph, or its first/last steps when it is too large
    n_ops = len(fns)
    note = None
    shown = tr
    hidden_map: dict = {}
    if n_ops > max_ops and tr.steps:
        shown = collapse_steps(tr, expanded)
        summary_of = {n.path: n.id for n in shown.nodes.values() if n.kind == "summary"}
        for nid, n in tr.nodes.items():
            if nid not in shown.nodes:
                hidden_map[nid] = summary_of.get(loop_key(n.path))
        note = (f"This graph has {n_ops} ops, too many to lay out whole: the page shows the first "
                f"and last {expanded} time steps; the hidden steps are summarised in one node "
                f"(pass max_ops= to viz.explore to lay out more).")
    steps = [s for s in tr.steps]
    initially = []
    if len(shown.steps) > 2 * expanded + 1 and not hidden_map:
        initially = shown.steps[expanded:len(shown.steps) - expanded]
    # an edge keeps its index in tr.edges as its id; one that a collapse merged gets "m<k>"
    index = {(e.src, e.dst, e.slot, e.kind): k for k, e in enumerate(tr.edges)}
    ids = [index.get((e.src, e.dst, e.slot, e.kind), f"m{k}") for k, e in enumerate(shown.edges)]
    dot, fan, clusters = _dot(shown, ids, title)
    data = {
        "title": title or "BPTT explorer",
        "nodes": nodes, "steps": steps, "collapsed": initially, "note": note, "clusters": clusters,
        "edges": [{"src": e.src, "dst": e.dst, "slot": e.slot, "fan": k in fan,
                   "shown": e.src in shown.nodes and e.dst in shown.nodes}
                  for k, e in enumerate(tr.edges)],
        "hidden": hidden_map,
        "summaries": {sid: h for sid, h in shown.hidden.items()},
        "visits": visits, "leaves": leaf_out, "flow": flow,
    }
    return data, dot


def _flow(tr: Trace, events: dict) -> dict:
    """||dL/dh_t|| and ||dL/dc_t|| per step of every time loop (graph.loops_of), from the gradient
    each state op's output had when backward visited it (the sum over all its uses). gradient_flow
    knows its states because it runs the model one step at a time; here only the graph is known.
    A state op is one named h_t / c_t (Tensor.named, as the built-in cells do), else, by position
    in the step, one whose output the next step reads: h where the next step multiplies it by a
    weight matrix, c otherwise."""
    node_of = {id(n.fn): n for n in tr.nodes.values() if n.kind == "op"}
    consumers: dict = {}
    for n in node_of.values():
        for p in n.fn.next:
            if p is not None and isinstance(p[0], Function):
                consumers.setdefault(id(p[0]), []).append(n.fn)
    out: dict = {"h": [], "c": []}
    for outer, by_step in loops_of(n.fn for n in node_of.values()).items():
        order = sorted(by_step, key=lambda s: by_step[s][0].index)
        kinds: dict = {}
        for st in order:
            for pos, fn in enumerate(by_step[st]):
                names = node_of[id(fn)].names
                if names and names[0] in ("h_t", "c_t"):
                    kinds[pos] = names[0][0]
        if not kinds and len(order) >= 2:
            nxt = {id(fn) for fn in by_step[order[1]]}
            for pos, fn in enumerate(by_step[order[0]]):
                later = [c for c in consumers.get(id(fn), []) if id(c) in nxt]
                if later and len(fn.out_meta) == 1:
                    kinds[pos] = "h" if any(c.name in ("matmul", "addmm", "mm") for c in later) else "c"
        if list(kinds.values()).count("h") > 1:
            continue  # not a plain recurrence: no single h_t per step
        for st in order:
            fns = by_step[st]
            for pos, kind in kinds.items():
                if pos < len(fns) and id(fns[pos]) in events:
                    g = events[id(fns[pos])][1][0]
                    out[kind].append({"t": st, "node": node_of[id(fns[pos])].id, "norm": norm(g),
                                      "loop": step_of(outer, "layer"), "dir": step_of(outer, "direction")})
    return out


def _dot(tr: Trace, ids: list, title: str | None) -> tuple[str, set, dict]:
    """DOT text for the layout (node ids n_<id>, edge ids e_<ids[k]>, cluster ids c_<tags>), the
    ids of the fan-out edges left to the page, and the step of each step cluster."""
    clusters: dict = {}
    kinds_in_step = {nid for nid, n in tr.nodes.items() if n.step is not None or n.kind == "summary"}
    first_last: dict = {}
    for n in tr.nodes.values():
        if n.step is not None:
            key = loop_key(n.path)
            lo, hi = first_last.get(key, (n.step, n.step))
            first_last[key] = (min(lo, n.step), max(hi, n.step))
    ends = {s for lo_hi in first_last.values() for s in lo_hi}
    fan: set = set()
    lines = ["digraph explorer {",
             '  rankdir=LR; newrank=true; nodesep=0.25; ranksep=0.35; fontname="Helvetica";',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
             'height=0.3, margin="0.08,0.04", fillcolor="#f7f7f7", color="#7f7f7f"];',
             '  edge [arrowsize=0.6, color="#555555"];']
    tree: dict = {}
    for n in tr.nodes.values():
        tree.setdefault(n.path, []).append(n)

    def node_line(n: Any) -> str:  # the label and fill of viz.draw_graph's plain drawing
        label = quote(_esc(_node_label(n, tr, False, False, False, 0, {})))
        fill = _STYLE.get(n.kind, _STYLE["op"])["fillcolor"]
        return f'  "{n.id}" [id="n_{n.id}", label={label}, fillcolor="{fill}"];'

    # clusters: nested by path; the step clusters get ids c_<k> with data in the page
    paths = sorted({p[:d] for p in tree for d in range(1, len(p) + 1)}, key=lambda p: (len(p), str(p)))
    children: dict = {}
    for p in paths:
        children.setdefault(p[:-1], []).append(p)

    def emit(path: tuple, depth: int) -> None:
        ind = "  " * depth
        for n in tree.get(path, []):
            lines.append(ind + node_line(n).strip())
        for ch in sorted(children.get(path, []), key=lambda p: min(
                (m.index for q, ns in tree.items() if q[:len(p)] == p for m in ns), default=0)):
            kind, val = ch[-1]
            cid = "c_" + "_".join("".join(c if c.isalnum() else "_" for c in f"{k}{v}") for k, v in ch)
            if kind == "step":
                clusters[cid] = val
            label = quote(_esc(_cluster_label(ch[-1])))
            style = ('style="rounded,filled"; fillcolor="#eef4fb"; color="#7fa7d0"' if kind == "step"
                     else 'style="rounded"; color="#888888"')
            lines.append(f'{ind}subgraph "cluster_{cid}" {{ id="{cid}"; label={label}; {style}; '
                         f'labeljust="l"; fontsize=12;')
            emit(ch, depth + 1)
            lines.append(ind + "}")

    emit((), 1)
    for k, e in zip(ids, tr.edges):
        a_in, b_in = e.src in kinds_in_step, e.dst in kinds_in_step
        attrs = [f'id="e_{k}"']
        if a_in != b_in:  # a shared node feeding every step (or fed by every step)
            inner = tr.nodes[e.dst if b_in else e.src]
            if inner.step not in ends and isinstance(k, int):
                fan.add(k)
                continue
            attrs.append("constraint=false" if b_in else "")
        if e.kind == "cut":
            attrs.append('style=dashed, color="#cc0000", arrowhead=tee')
        lines.append(f'  "{e.src}" -> "{e.dst}" [{", ".join(a for a in attrs if a)}];')
    if title:
        lines.append(f'  label={quote(_esc(title))}; labelloc="t"; fontsize=14;')
    lines.append("}")
    return "\n".join(lines), fan, clusters
