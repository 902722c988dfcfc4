"""Seeing BPTT: draw the unrolled autodiff graph clustered by time step, and measure how gradients
flow back through time.

`from tinygrad_rnn import viz`; nothing else in the package imports this subpackage. It reads what
the engine records (tags, creation order, backward visit order, gradient norms).
Imports: the core, nn, graphviz; matplotlib only inside plot_gradient_flow.
"""
from __future__ import annotations

from ..autograd import record_grads, scope
from .graph import GraphDigraph, Trace, collapse_steps, draw_graph, saved_bytes, trace
from .gradflow import GradientFlow, StepGrads, gradient_flow, grad_by_step, plot_gradient_flow
from .render import RenderError, find_renderer, render
from .explore import Explorer, explore, recording


def time_step(t: int) -> scope:
    """`with viz.time_step(t):` tags every op created inside as time step t, so draw_graph can
    cluster a hand-written loop by time (the built-in RNN/LSTM/GRU layers tag their steps)."""
    return scope("step", t)


__all__ = [
    "draw_graph", "render", "time_step", "record_grads", "trace", "collapse_steps", "saved_bytes",
    "Trace", "GraphDigraph", "RenderError", "find_renderer",
    "gradient_flow", "grad_by_step", "GradientFlow", "StepGrads", "plot_gradient_flow",
    "explore", "recording", "Explorer",
]
