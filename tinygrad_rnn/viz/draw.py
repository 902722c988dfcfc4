"""Draw a traced graph (viz.graph) as a `graphviz.Digraph`: op and tensor nodes labelled with
their math names (viz.labels), clusters by time step and/or module, levels of detail for long
unrolls, gradient colours on one log scale, backward order, memory per step and truncated-BPTT
cuts. `render` (the public viz.render) draws tensors first, then hands DOT text to viz.render.

Imports: graph, labels and render (this package), the core, the `graphviz` package.
"""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import graphviz

from ..backend import to_numpy
from ..errors import fmt_shape
from .graph import (Node, Trace, _combine, _saved_arrays, collapse_steps, fmt_bytes, fold_scopes, fold_steps,
                    saved_bytes, step_of, trace)
from .labels import math_label, output_names
from .render import GraphDigraph, write

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
    "state": dict(shape="box", style="filled,dashed", fillcolor="#eeeeee", color="#888888"),
    "summary": dict(shape="box", style="rounded,dashed,filled", fillcolor="#fafafa",
                    color="#555555", fontsize="11"),
    "step": dict(shape="box", style="rounded,filled", fillcolor="#eef4fb", color="#7fa7d0",
                 fontsize="11", fontcolor="#1f4e79"),
    "loss": dict(shape="box", style="rounded,filled,bold", fillcolor="#f3e8ff", color="#8e6cb8"),
    "const": dict(shape="ellipse", style="filled", fillcolor="#f2f2f2", color="#999999",
                  fontcolor="#555555"),
    "note": dict(shape="note", style="filled", fillcolor="#fff3cd", color="#c9a227"),
}


def _fmt_meta(shapes: tuple) -> str:
    if not shapes:
        return ""
    if len(shapes) > 1 and all(s == shapes[0] for s in shapes):
        return f"{len(shapes)} x {fmt_shape(shapes[0][0])} {shapes[0][1]}"
    return ", ".join(f"{fmt_shape(s)} {d}" for s, d in shapes[:3]) + (" ..." if len(shapes) > 3 else "")


def _fmt_norm(g: float) -> str:
    return "0" if g == 0 else f"{g:.2e}"


def _values(a: Any, max_elems: int) -> str | None:
    if a is None or getattr(a, "size", max_elems + 1) > max_elems:
        return None
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
        ticks = '<TD><FONT POINT-SIZE="10">0</FONT></TD><TD></TD>' + "".join(
            f'<TD><FONT POINT-SIZE="10">1e{marks[i]}</FONT></TD>' if i in marks else "<TD></TD>"
            for i in range(n))
        return (f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">'
                f'<TR><TD COLSPAN="{n + 2}"><B>gradient norm (log scale)</B></TD></TR>'
                f"<TR>{cells}</TR><TR>{ticks}</TR>"
                f'<TR><TD COLSPAN="{n + 2}"><FONT POINT-SIZE="10">edge colour and width: the '
                f'gradient flowing back along it;<BR/>node border: the gradient of its output'
                f"</FONT></TD></TR></TABLE>")


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


_AUTO_FULL_OPS = 36   # steps="auto" draws every step op by op up to this many ops in steps


def _levels(tr: Trace, collapse: int | None, steps: Any, expand_loss: bool) -> Trace:
    """The drawn level of detail: collapse the middle of long unrolls, fold steps into boxes,
    fold each loss into one box."""
    if collapse is not None:
        tr = collapse_steps(tr, collapse)
    if steps == "auto":
        n_ops = sum(1 for n in tr.nodes.values() if n.kind == "op" and n.step is not None)
        steps = "all" if n_ops <= _AUTO_FULL_OPS else "final"
    elif not (steps in ("all", "last", "final", "none") or isinstance(steps, (int, list, tuple, range))):
        raise ValueError(f"draw_graph: steps={steps!r} is not understood; use 'auto', 'all', "
                         f"'last', 'final', 'none', a time step or a list of time steps")
    tr = fold_steps(tr, steps)
    return tr if expand_loss else fold_scopes(tr, "loss")


def draw_graph(*roots: Any, model: Any = None, names: Any = None, cluster: Any = "time",
               steps: Any = "auto", expand_loss: bool = False, collapse: int | None = None,
               show_grads: bool = False, backward_order: bool = False, show_memory: bool = False,
               show_saved: bool = False, show_values: int | bool = False, show_cut: bool = True,
               show_constants: bool = False, rankdir: str = "TB", grad_range: tuple | None = None,
               title: str | None = None) -> graphviz.Digraph:
    """Draw the graph that produced `roots` (e.g. the loss) as a `graphviz.Digraph`.

    Args:
        model: an nn.Module (or list of them, or a dict name -> tensor) naming the parameters,
            e.g. `rnn.weight_hh_l0`. `names={tensor: "h_1"}` names any tensor (leaf or not);
            otherwise the name given by `tensor.named("h_t")` is used (the cells name theirs).
        cluster: "time" (one cluster per time step, `t = 3`), "module", "time+module" or None.
        steps: which time steps are drawn op by op; every other step is one box "t = k" whose
            edges still carry h_{t-1}, c_{t-1}, x_t in and h_t, c_t out. "auto" (default): all
            steps when they hold at most 36 ops in all, else "final"; "final": the last step
            of the last loop (the top layer's last direction) only; "last": the last step of
            every loop; "all", "none", a step or a list of steps.
        expand_loss: draw the ops inside cross_entropy / mse_loss (default: one box per loss).
        collapse: keep the first and last `collapse` steps, summarise the rest in one node.
        show_grads: after backward, annotate nodes with gradient norms and colour the edges by the
            gradient flowing back (run backward inside `record_grads()` for intermediate norms).
        grad_range: (lo, hi), the fixed colour scale of show_grads, e.g. (1e-3, 10): pass the same
            one to drawings that are meant to be compared (default: fitted to this graph).
        backward_order: number the ops #k in the order the engine's backward visited them (it
            runs the op with the highest generation first, so an op that depends only on inputs,
            such as a per-step x_t @ W_ih^T, comes after the recurrence it feeds).
        show_memory: label each time-step cluster with the bytes its ops saved for backward.
        show_saved: list the shapes each op holds for backward. show_values: print the values of
            tensors with at most this many elements (True means 6).
        show_cut: mark carried state that enters the unroll without a gradient (truncated BPTT).
        show_constants: draw the inputs that need no gradient (the x of w * x) as grey ovals,
            while their op still holds them (before backward, or with retain_graph=True).
        rankdir: "TB" (default: time flows down the page, so a long unroll stays as wide as one
            step) or "LR" (time flows left to right: wider, for slides).
    """
    full = trace(*roots, model=model, names=names, cluster=cluster, show_cut=show_cut,
                 constants=show_constants)
    tr = _levels(full, collapse, steps, expand_loss)
    max_vals = 6 if show_values is True else int(show_values or 0)

    g = GraphDigraph(name="tinygrad_rnn", format="svg")
    g.attr(rankdir=rankdir, fontname="Helvetica", fontsize="12",
           nodesep="0.2", ranksep="0.3", compound="true")
    g.attr("node", fontname="Helvetica", fontsize="10", height="0.3", margin="0.06,0.03")
    g.attr("edge", fontname="Helvetica", fontsize="10", arrowsize="0.6", color="#555555")

    # a group's gradient: what flows back into it along the edges it sends out
    for n in tr.nodes.values():
        if n.kind in ("step", "summary"):
            n.grad = _combine([e.grad for e in tr.edges if e.src == n.id])

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
    node_attrs: dict = {}
    for n in tr.nodes.values():
        attrs = dict(_STYLE.get(n.kind, _STYLE["op"]))
        attrs["label"] = _esc(_node_label(n, tr, show_grads, backward_order, show_saved, max_vals,
                                          mem_label))
        if n.kind in ("op", "step", "summary", "loss") and show_grads and n.grad is not None \
                and scale is not None:
            attrs["color"] = scale.color(n.grad)
            attrs["penwidth"] = "1.5" if n.kind == "op" else "2.5"
        node_attrs[n.id] = attrs

    tree = _cluster_tree(by_path)
    built: dict = {}
    for path in sorted(tree, key=lambda p: (-len(p), tree[p])):
        sub = graphviz.Digraph(name=f"cluster_{len(built)}_{_safe(path[-1])}")
        _style_cluster(sub, path, mem_label)
        for n in by_path.get(path, []):
            sub.node(n.id, **node_attrs[n.id])
        built[path] = sub
    # attach children to parents, children in creation order; deepest first so each is complete
    children: dict = {}
    for path in tree:
        children.setdefault(path[:-1], []).append(path)
    for path in sorted(tree, key=lambda p: -len(p)):
        for ch in sorted(children.get(path, []), key=lambda p: tree[p]):
            built[path].subgraph(built[ch])
    for n in by_path.get((), []):
        g.node(n.id, **node_attrs[n.id])
    for ch in sorted(children.get((), []), key=lambda p: tree[p]):
        g.subgraph(built[ch])

    # ---- keep sibling step clusters in time order with invisible edges (independent steps,
    # e.g. a bidirectional layer, would otherwise be stacked in one rank)
    for parent, chs in sorted(children.items(), key=lambda kv: (len(kv[0]), tree.get(kv[0], -1))):
        step_chs = sorted([c for c in chs if c[-1][0] == "step"], key=lambda p: tree[p])
        for a, b in zip(step_chs, step_chs[1:]):
            na = _last_op(by_path, a)
            nb = _first_op(by_path, b)
            if na is not None and nb is not None:
                g.edge(na, nb, style="invis", weight="0")

    # ---- edges
    legend = _edges(g, tr, full, scale)
    if scale is not None and (tr.recorded or any(n.grad is not None for n in tr.nodes.values())):
        legend["scale"] = True
    if backward_order and any(n.visit >= 0 for n in tr.nodes.values() if n.kind == "op"):
        legend["order"] = True
    kinds = {n.kind for n in tr.nodes.values()}
    legend.update({k: True for k in ("step", "loss", "zero_state", "state", "cut") if k in kinds})
    if show_grads and any(n.grad == 0 for n in tr.nodes.values()):
        legend["zero"] = True
    text = _legend(legend, scale)
    if text:
        g.node("legend", label=text, shape="plaintext")
    for i, note in enumerate(notes):
        g.node(f"note{i}", label=_esc(note), **_STYLE["note"])
    if title:  # wrapped, so that a long title does not widen the picture
        g.attr(label=_esc("\n".join(textwrap.wrap(title, 90))), labelloc="t", fontsize="14")
    return g


def _edges(g: graphviz.Digraph, tr: Trace, full: Trace, scale: "_Scale | None") -> dict:
    """Draw the edges of `tr`; returns which kinds of edge the legend must explain."""
    seen: dict = {}
    multi = {n.id for n in tr.nodes.values() if n.kind == "op" and len(n.shapes) > 1}
    groups = {n.id for n in tr.nodes.values() if n.kind in ("step", "summary", "loss")}
    # Steps are ranked by the recurrence alone: edges that fan out from shared nodes outside the
    # steps (weights, W^T, the input projection) into every step do not pull the layout.
    in_step = {n.id for n in tr.nodes.values() if n.kind in ("summary", "step")
               or (n.step is not None and step_of(n.path) is not None)}
    # an edge without gradient beside one that carries it from the same node (y * y: the op
    # sends the whole gradient 2 y g along its first edge)
    carried = {(e.src, e.dst) for e in tr.edges if e.grad is not None}
    for e in tr.edges:
        attrs: dict = {}
        if e.kind != "cut" and e.src not in in_step and e.dst in in_step:
            attrs["constraint"] = "false"
        label = []
        if e.kind == "cut" and tr.nodes[e.src].kind == "cut":
            attrs.update(style="dashed", color="#cc0000", arrowhead="tee")
        elif e.kind in ("cut", "const"):  # no gradient flows back; nothing is cut
            attrs.update(style="dashed", color="#888888")
            seen["const"] = seen.get("const") or e.kind == "const"
        elif scale is not None and e.grad is not None:
            attrs.update(color=scale.color(e.grad), penwidth=scale.width(e.grad),
                         tooltip=f"gradient norm {_fmt_norm(e.grad)}")
            if e.grad == 0:
                seen["zero"] = True
        elif scale is not None and tr.recorded:
            attrs.update(color="#999999", style="dotted")
            if (e.src, e.dst) in carried:
                label.append("(its gradient\\nis on the other edge)")
                seen["shared"] = True
            else:
                seen["none"] = True
        src_node = full.nodes.get(e.origin or e.src)
        if "summary" in (tr.nodes[e.src].kind, tr.nodes[e.dst].kind):
            if e.count > 1:
                label.append(f"x{e.count}")  # one edge per hidden step
        elif (e.src in groups or e.dst in groups) and src_node is not None \
                and src_node.step is not None:  # a state passed between steps: h_2, c_2
            name = _edge_name(src_node, e.out_index)
            if name:
                label.insert(0, name)
        elif e.src in multi:
            name = _edge_name(tr.nodes[e.src], e.out_index)
            label.insert(0, name or f"[{e.out_index}]")
        if label:
            attrs["label"] = " ".join(label)
        g.edge(e.src, e.dst, **attrs)
    return seen


def _edge_name(src: Node, out_index: int) -> str | None:
    if src.kind == "op":
        names = output_names(src)
        return names[out_index] if out_index < len(names) else None
    return None


_LEGEND_ROWS = {
    "order": "#k  the order in which the engine's backward visited the ops (#0 first). It runs "
             "the op farthest from the inputs (highest generation) first: along the recurrence "
             "the last step comes first, while an op fed only by inputs and weights (a per-step "
             "x_t W_ih^T) comes late",
    "step": "box t = k  one time step drawn folded (draw_graph(steps=...) expands it); its edges "
            "carry h_(t-1) (and c_(t-1)) in, h_t (and c_t) out",
    "loss": "loss box  the ops of a loss function (draw_graph(expand_loss=True) shows them)",
    "zero_state": "grey dashed box  the initial state: a constant (zeros by default), so no "
                  "gradient flows into it. Not a cut",
    "state": "grey dashed box  a state that enters the first step without gradient: the initial "
             "state, or a detached one (its values were freed by backward before any drawing)",
    "cut": "red octagon  a detached state (truncated BPTT): the gradient stops there",
    "const": "grey oval  a constant input: it needs no gradient, so none is sent to it",
    "none": "dotted grey edge  no gradient is sent along it (the op's backward returns None "
            "there: the input is a constant or does not require grad)",
    "shared": "dotted grey edge beside a coloured one  the op uses the same tensor twice (y * y) "
              "and sends the whole gradient (2 y g) along one edge",
    "zero": "pale grey  a gradient that is exactly 0: an output the loss does not read, or "
            "the forget gate at t = 0, where c_(-1) = 0 makes dL/df_0 = dL/dc_0 ⊙ c_(-1) = 0",
}


def _legend(seen: dict, scale: "_Scale | None") -> str:
    rows = [r for k, r in _LEGEND_ROWS.items() if seen.get(k)]
    if not rows and not seen.get("scale"):
        return ""
    cells = []
    if seen.get("scale") and scale is not None:
        cells.append(f"<TR><TD ALIGN=\"LEFT\">{scale.legend()}</TD></TR>")
    for r in rows:
        head, _, rest = r.partition("  ")
        lines = textwrap.wrap(f"{head}: {rest}", 64)
        body = '<BR ALIGN="LEFT"/>'.join(_html(x) for x in lines)
        body = body.replace(_html(head) + ":", f"<B>{_html(head)}</B>:", 1)
        cells.append(f'<TR><TD ALIGN="LEFT">{body}<BR ALIGN="LEFT"/></TD></TR>')
    return ('<<TABLE BORDER="1" COLOR="#bbbbbb" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
            + "".join(cells) + "</TABLE>>")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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


def _first_op(by_path: dict, path: tuple) -> str | None:
    cands = [n for p, ns in by_path.items() if p[:len(path)] == path for n in ns if n.kind == "op"]
    return min(cands, key=lambda n: n.index).id if cands else None


def _last_op(by_path: dict, path: tuple) -> str | None:
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
                max_vals: int, mem_label: dict) -> str:
    lines: list = []
    if n.kind == "summary":
        h = tr.hidden[n.id]
        lines = [f"... {h['steps']} steps hidden (t = {h['first']} .. {h['last']}) ...",
                 f"{h['ops']} ops, {h['edges']} edges inside"]
    elif n.kind == "step":
        lines = [n.title, f"one step: {tr.hidden[n.id]['ops']} ops"]
        if n.step in mem_label:
            lines.append(mem_label[n.step])
    elif n.kind == "loss":
        lines = [n.title, f"{tr.hidden[n.id]['ops']} ops", _fmt_meta(n.shapes)]
    if lines:
        visits = tr.hidden[n.id].get("visits") if n.id in tr.hidden else None
        if backward_order and visits is not None:
            lines[0] = f"#{visits[0]}..#{visits[1]}  {lines[0]}"
        if show_grads and n.grad is not None:
            lines.append(f"grad norm {_fmt_norm(n.grad)}")
        return "\n".join(lines)
    if n.kind in ("cut", "zero_state", "state"):
        return n.title
    head, op_line = math_label(n)
    if backward_order and n.kind == "op" and n.visit >= 0:
        head = f"#{n.visit}  {head}"
    lines.append(head)
    if op_line:
        lines.append(op_line)
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
                lines.append("saves " + " ".join(fmt_shape(a.shape) for a in arrs))
    if show_grads and n.grad is not None:
        lines.append(f"grad norm {_fmt_norm(n.grad)}")
    return "\n".join(lines)


def render(graph_or_roots: Any, path: str | os.PathLike, format: str | None = None,  # noqa: A002
           renderer: str = "auto", **draw_options: Any) -> Path:
    """Write a drawing of a graph to `path` and return the path.

    graph_or_roots: a `graphviz.Digraph`/`Source` (e.g. from draw_graph), DOT text, or tensors
    (drawn with `draw_graph(*roots, **draw_options)`). format: "svg", "png" or "pdf"; by default
    taken from the file suffix, else "svg". When no renderer is installed, the DOT source is
    written to `path` with suffix ".gv" and a RenderError says what to install."""
    if isinstance(graph_or_roots, str) or hasattr(graph_or_roots, "source"):
        if draw_options:
            raise TypeError(f"render: drawing options {sorted(draw_options)} only apply when "
                            f"render() draws tensors; pass them to draw_graph instead")
        graph = graph_or_roots
    else:
        roots = graph_or_roots if isinstance(graph_or_roots, (list, tuple)) else [graph_or_roots]
        graph = draw_graph(*roots, **draw_options)
    return write(graph, path, format, renderer)
