"""Draw the pictures of docs/tutorial.md ("How autodiff handles recurrence") into docs/images/.

    python examples/tutorial_figures.py                     # all figures into docs/images/
    python examples/tutorial_figures.py --smoke --out /tmp/figs   # small and fast (tests)

Every picture is made by the library itself (viz.draw_graph, viz.grad_by_step,
viz.gradient_flow); files are prefixed tutorial_ (and quickstart_ for the quickstart's plot).
Needs a Graphviz renderer (system `dot`, or `pip install "tinygrad-rnn[render]"`) for the graphs
and matplotlib for the plots; without them it says what it skipped.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import make_parser, pyplot, setup, wrote  # noqa: E402

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, viz  # noqa: E402

import make_figures  # noqa: E402
import quickstart  # noqa: E402
import vanishing_gradients  # noqa: E402

NAME = "tutorial_figures"
ROOT = Path(__file__).resolve().parents[1]


def save_graph(graph, path: Path, written: list) -> None:
    try:
        written.append(viz.render(graph, path))
    except viz.RenderError as e:
        print(f"skipped {path.name}: {e}", file=sys.stderr)
        return
    make_figures.record(path, "examples/tutorial_figures.py", graph.source)


def scalar_graph(device: str) -> dict:
    """y = tanh(w * x + b), loss = y * y + y: a graph, its backward order, a fan-out (y is used
    twice, so its gradient is the sum of two terms)."""
    x = tg.Tensor(0.5, device=device).named("x")
    w = tg.Tensor(2.0, requires_grad=True, device=device)
    b = tg.Tensor(-0.5, requires_grad=True, device=device)
    y = (w * x + b).tanh().named("y")
    loss = y * y + y
    with viz.record_grads():
        loss.backward(retain_graph=True)  # keep x (a constant) visible to the drawing
    return {"tutorial_graph": viz.draw_graph(
        loss, names={w: "w", b: "b"}, cluster=None, show_grads=True, backward_order=True,
        show_values=True, show_constants=True, grad_range=make_figures.GRAD_RANGE,
        title="loss = y*y + y with y = tanh(w*x + b), after loss.backward()")}


def unrolled_graph(device: str) -> dict:
    """A hand-written 3-step tanh RNN in the docs' notation (docs/notation.md): W_hh is ONE leaf,
    transposed once, with an edge into every step."""
    tg.manual_seed(0)
    D, H, T = 2, 3, 3
    W_ih = (tg.randn(H, D, device=device) * 0.5).detach().requires_grad_()
    W_hh = (tg.randn(H, H, device=device) * 0.5).detach().requires_grad_()
    b = tg.zeros(H, device=device, requires_grad=True)
    xs = tg.randn(T, 1, D, device=device).unbind(0)
    W_ih_T, W_hh_T = W_ih.T.named("W_ih^T"), W_hh.T.named("W_hh^T")  # once, as nn.RNN does
    h = tg.zeros(1, H, device=device)
    for t, x_t in enumerate(xs):
        with viz.time_step(t):
            a = ((x_t @ W_ih_T).named("x_t W_ih^T") + (h @ W_hh_T).named("h_{t-1} W_hh^T") + b).named("a_t")
            h = a.tanh().named("h_t")
    loss = h.sum()
    with viz.record_grads():
        loss.backward(retain_graph=True)  # saved arrays kept: the drawing sees h_0 is zero
    return {"tutorial_unrolled": viz.draw_graph(
        loss, names={W_ih: "W_ih", W_hh: "W_hh", b: "b"}, show_grads=True, backward_order=True,
        grad_range=make_figures.GRAD_RANGE,
        title="h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b) over 3 steps, loss = sum(h_2): "
              "W_hh is one node with an edge into every step")}


GRAPHS = (scalar_graph, unrolled_graph)


def graphs(device: str = "cpu") -> dict:
    """name -> graphviz.Digraph of the tutorial's graph pictures (what the tests redraw)."""
    out: dict = {}
    for make in GRAPHS:
        out.update(make(device))
    return out


def weight_terms(out: Path, device: str, steps: int, written: list) -> None:
    """Each step's term of W_hh.grad (viz.grad_by_step) for an RNN and an LSTM, loss at the end."""
    plt = pyplot()
    if plt is None:
        return
    tg.manual_seed(0)
    x = tg.randn(steps, 4, 3, device=device)
    models = {"nn.RNN(3, 16), tanh": nn.RNN(3, 16).to(device),
              "nn.LSTM(3, 16), forget-gate bias 3": vanishing_gradients._lstm_open(3, 16).to(device)}
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
    for i, (label, m) in enumerate(models.items()):
        seq, _ = m(x)
        loss = seq[-1].sum()
        parts = viz.grad_by_step(loss, m)
        loss.backward()
        terms = parts.terms["weight_hh_l0"]
        total = terms.sum(0) + parts.outside["weight_hh_l0"]
        assert np.allclose(total, m.weight_hh_l0.grad.numpy(), atol=1e-5)  # the terms sum to .grad
        norms = parts.norms["weight_hh_l0"]
        ax.bar(np.arange(steps) + (i - 0.5) * 0.4, np.where(norms > 0, norms, np.nan), width=0.4,
               color=f"C{i}", label=f"{label}: ||step t's term of weight_hh_l0.grad||")
    ax.set_yscale("log")
    ax.set_xticks(range(0, steps, max(1, steps // 10)))
    ax.set_xlabel("time step t")
    ax.set_ylabel("norm of the term")
    ax.set_title(f"W_hh.grad = sum over t of one term per step (T = {steps}, loss on the last step)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / "tutorial_weight_terms.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    make_figures.record(path, "examples/tutorial_figures.py")


def vanishing(out: Path, device: str, steps: int, hidden: int, written: list, seed: int = 0) -> None:
    """The figure of examples/vanishing_gradients.py, with the same seed (same numbers)."""
    tg.manual_seed(seed)
    flows, _ = vanishing_gradients.measure(steps, hidden, device, clip=1.0, show_progress=False)
    path = vanishing_gradients.plot(flows, steps, hidden, 1.0, out / "tutorial_vanishing.png")
    if path is not None:
        written.append(path)
        make_figures.record(path, "examples/tutorial_figures.py")


def quickstart_plot(out: Path, device: str, smoke: bool, written: list) -> None:
    """Run the quickstart and keep its training / gradient-flow plot."""
    with tempfile.TemporaryDirectory() as tmp:
        quickstart.main(["--out", tmp, "--device", device] + (["--smoke"] if smoke else []))
        src = Path(tmp) / "training_and_gradient_flow.png"
        if src.exists():
            dst = out / "quickstart_training.png"
            shutil.copyfile(src, dst)
            written.append(dst)
            make_figures.record(dst, "examples/tutorial_figures.py (quickstart.py)")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(NAME, __doc__)
    parser.set_defaults(out=None)
    args = parser.parse_args(argv)
    if args.out is None:  # a smoke run must never overwrite the pictures of the docs
        args.out = tempfile.mkdtemp(prefix="tutorial_figures_") if args.smoke else ROOT / "docs" / "images"
    out = setup(args, NAME)
    written: list = []
    for name, graph in graphs(args.device).items():
        save_graph(graph, out / f"{name}.png", written)
    weight_terms(out, args.device, 8 if args.smoke else 20, written)
    vanishing(out, args.device, 12 if args.smoke else 100, 8 if args.smoke else 32, written, args.seed)
    quickstart_plot(out, args.device, args.smoke, written)
    print("wrote the tutorial figures:")
    for p in written:
        wrote(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
