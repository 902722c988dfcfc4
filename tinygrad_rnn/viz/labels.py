"""Math names on drawn nodes: the one place that turns a traced node into the text a learner reads.

A tensor's name comes from `Tensor.named("h_t")` (the cells name their intermediates; users
name theirs, or pass `names={tensor: "h_1"}` to draw_graph). Names are written as templates in
the time index `t`: inside time step 3, "h_t" reads "h_3" and "c_{t-1}" reads "c_2" (in a
reverse-direction layer the previous step is t+1, so "c_{t-1}" reads "c_4"). The op that made the
tensor is the second line, in the engine's own words ("sigmoid", "addmm").

`math_label(node) -> (title, op_line)` is the public entry (the drawing and the BPTT explorer
call it). Imports: graph (this package), the standard library.
"""
from __future__ import annotations

import re
from typing import Any

from .graph import Node, step_of

# "_t", "_{t}", "_{t-1}", "_{t+2}" (not "_tanh"): the time index of a name template
_T_INDEX = re.compile(r"_\{t([+-]\d+)?\}|_t(?![A-Za-z0-9_{])")


def at_step(name: str, step: Any, reverse: bool = False) -> str:
    """The name template `name` read at time step `step` ("c_{t-1}" at 3 -> "c_2"); unchanged
    when the step is not a number. reverse: the layer runs backwards in time (t-1 means t+1)."""
    if not isinstance(step, int) or isinstance(step, bool):
        return name

    def sub(m: re.Match) -> str:
        k = int(m.group(1) or 0)
        t = step - k if reverse else step + k
        return f"_{t}" if t >= 0 else f"_{{{t}}}"  # h_12 reads as plain text; h_{-1} needs braces
    return _T_INDEX.sub(sub, name)


def _reverse(node: Node) -> bool:
    tags = node.fn.tags if node.fn is not None else ()
    return step_of(tags, "direction") in ("reverse", 1)


def output_names(node: Node) -> list:
    """The math name of each output of an op node, read at the node's time step (None where the
    output has no name)."""
    rev = _reverse(node)
    return [None if n is None else at_step(n, node.step, rev) for n in node.names]


def math_label(node: Node) -> tuple[str, str]:
    """(title, op_line) of a traced node. title: the math name(s) of what the node holds
    ("f_3", "a_3^i, a_3^f, a_3^g, a_3^o"), else the op name ("addmm") or the tensor's name; op_line: the
    op that computed it when the title is a math name, else "" (the title already says it)."""
    if node.kind != "op":
        return node.title, ""
    named = [n for n in output_names(node) if n is not None]
    if not named:
        return node.title, ""
    return ", ".join(named), node.title
