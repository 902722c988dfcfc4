"""Draw the schematic of docs/rnn.md's "Deep and bidirectional RNNs": a 2-layer bidirectional RNN
unrolled over 4 steps, with the paths the gradient of one loss term takes back to the inputs.

    python examples/deep_bidi_figure.py                          # docs/images/deep_bidi_unroll.{svg,png}
    python examples/deep_bidi_figure.py --smoke --out /tmp/figs  # the same drawing elsewhere (tests)

It is a schematic (Graphviz DOT written here, one node per state), not a traced graph: the traced
graph of the same model, `viz.draw_graph` on `nn.RNN(..., num_layers=2, bidirectional=True)`, has
about 20 ops per step. Notation: docs/notation.md. Needs a Graphviz renderer (system `dot`, or
`pip install "tinygrad-rnn[render]"`); without one it writes the DOT text and says what to install.
Drawing into docs/images records the pictures and their DOT text in docs/images/figures.json, which
tests/test_viz_figures.py checks against what `deep_bidi_graph()` draws today.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import make_parser, setup, wrote  # noqa: E402
from make_figures import record  # noqa: E402  (notes the picture in docs/images/figures.json)

import graphviz  # noqa: E402

from tinygrad_rnn import viz  # noqa: E402

NAME = "deep_bidi_figure"
ROOT = Path(__file__).resolve().parents[1]
FWD, REV, GRAD = "#1f5fbf", "#d9730d", "#c0392b"   # forward direction, reverse direction, gradient


def state(layer: int, arrow: str, t: int) -> str:
    """HTML label h→_t^(l) / h←_t^(l)."""
    return f"<<I>h</I><SUB>{t}</SUB><SUP>{arrow}({layer})</SUP>>"


def deep_bidi_graph(T: int = 4, loss_step: int = 1) -> graphviz.Digraph:
    """Pinned grid (neato): inputs x_t at the bottom; per layer a forward row (blue, lower) and a
    reverse row (orange, upper, shifted right); outputs out_t = [h→_t^(1), h←_t^(1)] and one loss
    term ℓ_{loss_step} on top. Arrows are the forward computation. Red outlines: the states the
    gradient of ℓ_{loss_step} reaches; red dashed arrows: its path along each layer's recurrence
    (back in time in the forward direction, forward in time in the reverse one)."""
    g = graphviz.Digraph("deep_bidi", graph_attr={
        "layout": "neato", "splines": "true", "fontname": "Helvetica", "fontsize": "13",
        "labelloc": "t", "outputorder": "edgesfirst",
        "label": f"2-layer bidirectional RNN unrolled over T = {T} steps: forward direction (blue) "
                 f"runs t = 0 → {T - 1}, reverse direction (orange) t = {T - 1} → 0\n"
                 f"red outline: states that the gradient of ℓ_{loss_step} reaches; "
                 f"red dashed: its path along the recurrences; grey: no gradient from ℓ_{loss_step}"})
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="12",
           width="0.6", height="0.36", margin="0.04,0.02", fixedsize="false")
    g.attr("edge", arrowsize="0.6", penwidth="1.1")
    dx, half = 2.3, 0.5                         # column width, fwd/rev offset (inches)
    y_row = {"x": 0.0, "f0": 1.0, "r0": 1.55, "f1": 2.65, "r1": 3.2, "out": 4.3}

    def pos(x: float, y: float) -> str:
        return f"{x:.2f},{y:.2f}!"

    def reached(name: str, t: int) -> bool:  # does ℓ_{loss_step} depend on this node?
        if name == "out":
            return t == loss_step
        if name == "f1":
            return t <= loss_step
        if name == "r1":
            return t >= loss_step
        return True                            # layer 0 and inputs feed both layer-1 directions

    for text, y in (("inputs", y_row["x"]), ("layer 0", (y_row["f0"] + y_row["r0"]) / 2),
                    ("layer 1", (y_row["f1"] + y_row["r1"]) / 2), ("outputs", y_row["out"])):
        g.node(f"row_{text}", text, shape="plaintext", style="", fontsize="13",
               fontcolor="#555555", pos=pos(-1.5, y))
    for t in range(T):
        x0 = t * dx
        g.node(f"x_{t}", f"<<I>x</I><SUB>{t}</SUB>>", pos=pos(x0, y_row["x"]), fillcolor="#eeeeee")
        for layer in (0, 1):
            for d, arrow, off, fill, col in (("f", "→", -half, "#dde8fa", FWD), ("r", "←", half, "#fbe3cc", REV)):
                name = f"{d}{layer}"
                hit = reached(name, t)
                g.node(f"{name}_{t}", state(layer, arrow, t), pos=pos(x0 + off, y_row[name]),
                       fillcolor=fill if hit else "#f4f4f4", color=GRAD if hit else "#aaaaaa",
                       penwidth="2" if hit else "1", fontcolor="black" if hit else "#888888")
        hit = reached("out", t)
        g.node(f"out_{t}", f"<out<SUB>{t}</SUB>>", pos=pos(x0, y_row["out"]),
               fillcolor="#d8f0d8" if hit else "#f4f4f4", color=GRAD if hit else "#aaaaaa",
               penwidth="2" if hit else "1", fontcolor="black" if hit else "#888888")
    g.node("loss", f"<ℓ<SUB>{loss_step}</SUB>>", shape="ellipse", fillcolor="#d8f0d8",
           color=GRAD, penwidth="2", pos=pos(loss_step * dx, y_row["out"] + 0.9))
    g.edge(f"out_{loss_step}", "loss")

    reads = {"f0": ["x"], "r0": ["x"], "f1": ["f0", "r0"], "r1": ["f0", "r0"], "out": ["f1", "r1"]}
    for name, sources in reads.items():
        for t in range(T):
            for src in sources:
                colour = FWD if src[0] == "f" else REV if src[0] == "r" else "#666666"
                g.edge(f"{src}_{t}", f"{name}_{t}", color=colour)
    for name in ("f0", "r0", "f1", "r1"):
        for t in range(T - 1):
            if name[0] == "f":   # h→_t feeds h→_{t+1}
                g.edge(f"{name}_{t}", f"{name}_{t + 1}", color=FWD, penwidth="2.2")
            else:                # h←_{t+1} feeds h←_t
                g.edge(f"{name}_{t + 1}", f"{name}_{t}", color=REV, penwidth="2.2")
    grad = {"color": GRAD, "style": "dashed", "penwidth": "1.6", "arrowsize": "0.7"}
    for t in range(loss_step, 0, -1):          # forward direction: BPTT runs back in time
        g.edge(f"f1_{t}", f"f1_{t - 1}", **grad)
    for t in range(loss_step, T - 1):          # reverse direction: BPTT runs forward in time
        g.edge(f"r1_{t}", f"r1_{t + 1}", **grad)
    return g


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(NAME, __doc__)
    parser.set_defaults(out=None)
    args = parser.parse_args(argv)
    if args.out is None:  # a smoke run must never overwrite the pictures of the docs
        args.out = tempfile.mkdtemp(prefix=f"{NAME}_") if args.smoke else ROOT / "docs" / "images"
    out = setup(args, NAME)
    g = deep_bidi_graph()
    written = []
    for suffix in ("svg", "png"):
        try:
            written.append(viz.render(g, out / f"deep_bidi_unroll.{suffix}"))
            record(written[-1], "examples/deep_bidi_figure.py", g.source)  # docs/images only
        except viz.RenderError as e:   # no renderer: the DOT text was written next to the file
            print(f"skipped deep_bidi_unroll.{suffix}: {e}", file=sys.stderr)
            written.append(out / "deep_bidi_unroll.gv")
            break
    for p in written:
        wrote(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
