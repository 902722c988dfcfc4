"""Seeing BPTT: draw the unrolled autodiff graph clustered by time step, and measure how gradients
flow back through time.

`from tinygrad_rnn import viz`; nothing else in the package imports this subpackage. It reads what
the engine records (tags, creation order, backward visit order, gradient norms, tensor names).
Layers, bottom to top: graph (trace the graph into plain data) -> labels (math names) -> draw (DOT)
-> render (DOT text to files); gradflow measures gradients through time.
Imports: the core, nn, graphviz; matplotlib only inside plot_gradient_flow.
"""
from __future__ import annotations

from ..autograd import record_grads, scope
from .graph import Edge, Node, Trace, collapse_steps, saved_bytes, trace
from .labels import math_label
from .render import GraphDigraph, RenderError, find_renderer
from .draw import draw_graph, render
from .gradflow import GradientFlow, StepGrads, gradient_flow, grad_by_step, plot_gradient_flow
from .explore import Explorer, explore, recording


def time_step(t: int) -> scope:
    """`with viz.time_step(t):` tags every op created inside as time step t, so draw_graph can
    cluster a hand-written loop by time (the built-in RNN/LSTM/GRU layers tag their steps)."""
    return scope("step", t)


__all__ = [
    "draw_graph", "render", "time_step", "record_grads", "trace", "collapse_steps", "saved_bytes",
    "Trace", "Node", "Edge", "math_label", "GraphDigraph", "RenderError", "find_renderer",
    "gradient_flow", "grad_by_step", "GradientFlow", "StepGrads", "plot_gradient_flow",
    "explore", "recording", "Explorer",
]
