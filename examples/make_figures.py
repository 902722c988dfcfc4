"""Draw every picture in docs/visualization.md (written to docs/images/ by default).

    python examples/make_figures.py              # all figures into docs/images/
    python examples/make_figures.py --smoke --out /tmp/figs   # small and fast (tests)

Needs a Graphviz renderer (system `dot`, or `pip install graphviz-pure`) for the graphs and
matplotlib for the gradient-flow plot. Uses the public API only.

Every drawing is made by a function of `GRAPHS` (seeded, so it gives the same DOT text each run);
writing into docs/images/ also records, in docs/images/figures.json, the SHA-256 of each picture
and of the DOT text it was rendered from. tests/test_viz_figures.py redraws the DOT and fails when
a committed picture no longer matches what its script draws. The gradient-flow ratios that
docs/visualization.md quotes are kept in docs/results/gradient_flow.json (the docs read them through
examples/recorded_runs.py's markers; the test recomputes them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for seq2seq_attention when imported

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, viz  # noqa: E402
from tinygrad_rnn.nn import functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
MANIFEST = IMAGES / "figures.json"
FLOW_RECORD = ROOT / "docs" / "results" / "gradient_flow.json"
# One colour scale for every drawing with gradients in the docs, so that they can be compared
GRAD_RANGE = (1e-3, 1e1)


# ------------------------------------------------------------------------------ the drawings
def rnn_graphs(device: str) -> dict:
    """A 3-step RNN with a many-to-one loss: the forward graph, then the same after backward."""
    rnn = nn.RNN(3, 4).to(device)
    x = tg.randn(3, 2, 3, device=device)
    target = tg.randn(2, 4, device=device)
    out_seq, h_n = rnn(x)
    loss = F.mse_loss(out_seq[-1], target)          # the loss looks at the last step only
    names = {"rnn": rnn}
    fwd = viz.draw_graph(loss, model=names, expand_loss=True,
                         title="nn.RNN(3, 4) unrolled over 3 steps (forward); "
                               "mse_loss(h_2, target) drawn op by op (expand_loss=True)")
    with viz.record_grads():
        loss.backward(retain_graph=True)
    bwd = viz.draw_graph(loss, model=names, show_grads=True, backward_order=True,
                         grad_range=GRAD_RANGE,
                         title="after loss.backward() inside viz.record_grads(): gradient norms, "
                               "#k = the engine's backward visit order")
    return {"rnn_forward": fwd, "rnn_backward": bwd}


class Tagger(nn.Module):
    """LSTM encoder + linear read-out: nested modules for the module clustering picture."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


def lstm_graph(device: str) -> dict:
    model = Tagger().to(device)
    y = model(tg.randn(1, 2, 3, device=device))
    loss = y.sum()
    return {"lstm_step_modules": viz.draw_graph(
        loss, model=model, cluster="time+module", show_saved=True,
        title="one LSTM step, clustered by module (Tagger > lstm > t = 0, head): gates i, f, g, o, "
              "the cell path f⊙c_(t-1) + i⊙g")}


def fade_graphs(device: str) -> dict:
    """Vanilla RNN vs LSTM after backward, on one colour scale: the RNN fades towards t = 0, the
    LSTM's cell-state path (f_t⊙c_{t-1}, then c_t) stays bright."""
    x = tg.randn(5, 2, 3, device=device)
    rnn = nn.RNN(3, 4).to(device)
    lstm = nn.LSTM(3, 4).to(device)
    with tg.no_grad():
        lstm.bias_ih_l0[4:8] = 3.0  # forget gate open
    out = {}
    for name, m, steps in (("rnn", rnn, 5), ("lstm", lstm, 3)):  # (an LSTM step has ~5x the ops)
        seq, _ = m(x[:steps])
        loss = seq[-1].sum()
        with viz.record_grads():
            loss.backward(retain_graph=True)  # keep the saved state visible: h_{-1} = 0
        out[f"{name}_fade"] = viz.draw_graph(
            loss, model={name: m}, show_grads=True, grad_range=GRAD_RANGE,
            title=f"{name.upper()}, loss on the last step, after backward "
                  f"(the colour scale of every drawing in these docs)")
    return out


def collapsed_graph(device: str, steps: int = 100) -> dict:
    rnn = nn.RNN(3, 4).to(device)
    out_seq, _ = rnn(tg.randn(steps, 2, 3, device=device))
    loss = out_seq.sum()
    return {"rnn_collapsed": viz.draw_graph(loss, model={"rnn": rnn}, collapse=2, show_memory=True,
                                            title=f"{steps}-step unroll, collapse=2, show_memory=True")}


def tbptt_graph(device: str) -> dict:
    """Truncated BPTT: the second chunk starts from a detached state; the cut is marked."""
    rnn = nn.RNN(3, 4).to(device)
    xs = tg.randn(6, 2, 3, device=device)
    first, second = xs.split(3, 0)
    out1, h = rnn(first)
    out1.sum().backward()
    rnn.zero_grad()  # (an optimizer step would go here): the drawing shows chunk 2's gradients
    h = nn.detach_state(h)
    out2, _ = rnn(second, h)
    loss = out2.sum()
    with viz.record_grads():
        loss.backward(retain_graph=True)  # keep the saved state visible to the drawing
    return {"tbptt_cut": viz.draw_graph(loss, model={"rnn": rnn}, show_grads=True,
                                        grad_range=GRAD_RANGE,
                                        title="truncated BPTT: chunk 2 starts from h.detach() of chunk 1")}


def decoder_step(device: str) -> dict:
    """One decoder step of examples/seq2seq_attention.py's model (its default sizes). The drawing
    shows names, shapes and ops, not values, so an untrained model draws the same picture."""
    import seq2seq_attention as s2s

    tg.manual_seed(0)
    a = s2s.parse_args([])
    model = nn.Seq2Seq(len(s2s.SRC), len(s2s.TGT), embed_size=a.embed, hidden_size=a.hidden,
                       encoder_cell=a.cell, bidirectional=True, attention=a.attention,
                       pad_idx=0, sos_idx=1, eos_idx=2, max_len=12).to(device=device)
    return {"seq2seq_decoder_step": s2s.decoder_step_graph(model)}


# In this order, from one seed: the gradient-flow figure then draws from the random stream they
# leave, so its numbers (quoted in docs/visualization.md) stay those of earlier runs.
GRAPHS = (rnn_graphs, lstm_graph, fade_graphs, collapsed_graph, tbptt_graph)


def graphs(device: str = "cpu", steps: int = 100, seed: int = 0) -> dict:
    """name -> graphviz.Digraph of every graph picture of docs/visualization.md, drawn from
    `seed` (what the tests redraw; the decoder step is drawn by decoder_step)."""
    tg.manual_seed(seed)
    np.random.seed(seed)
    out: dict = {}
    for make in GRAPHS:
        out.update(make(device, steps) if make is collapsed_graph else make(device))
    return out


# --------------------------------------------------------------------------- recording, plots
def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def record(path: Path, script: str, source: str | None = None) -> None:
    """Note in docs/images/figures.json which script drew `path` (and from which DOT text), when
    `path` is a picture of the docs."""
    path = Path(path)
    if path.parent.resolve() != IMAGES.resolve():
        return
    data = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    entry = {"script": script, "png_sha256": sha256(path.read_bytes())}
    if source is not None:
        entry["dot_sha256"] = sha256(source)
    data[path.name] = entry
    MANIFEST.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def save(graph, out: Path, name: str, written: list) -> None:
    """Render a PNG; without a renderer keep the DOT text and say so."""
    try:
        path = viz.render(graph, out / f"{name}.png")
    except viz.RenderError as e:
        print(f"skipped {name}.png: {e}", file=sys.stderr)
        return
    written.append(path)
    record(path, "examples/make_figures.py", graph.source)


def flow_models(steps: int, hidden: int, device: str) -> tuple[dict, tg.Tensor]:
    """The models of the gradient-flow figure, each measured on the same input."""
    D, B = 4, 8
    x = tg.randn(steps, B, D, device=device)
    models = {}
    models["RNN tanh (default init)"] = nn.RNN(D, hidden)
    orth = nn.RNN(D, hidden)
    nn.init.orthogonal_(orth.weight_hh_l0)
    models["RNN tanh, orthogonal W_hh"] = orth
    irnn = nn.RNN(D, hidden, nonlinearity="relu")  # IRNN: identity W_hh, zero bias, ReLU
    nn.init.identity_(irnn.weight_hh_l0)
    nn.init.normal_(irnn.weight_ih_l0, 0.0, 0.01)
    nn.init.zeros_(irnn.bias_ih_l0)
    nn.init.zeros_(irnn.bias_hh_l0)
    models["RNN relu, identity W_hh (IRNN)"] = irnn
    models["LSTM (default init)"] = nn.LSTM(D, hidden)
    lstm_f = nn.LSTM(D, hidden)
    with tg.no_grad():
        lstm_f.bias_ih_l0[hidden:2 * hidden] = 3.0  # forget gate biased open: f = sigmoid(3) = 0.95
    models["LSTM, forget bias 3"] = lstm_f
    models["GRU (default init)"] = nn.GRU(D, hidden)
    return {k: viz.gradient_flow(m.to(device), x, label=k) for k, m in models.items()}, x


def exploding_flow(x: tg.Tensor, hidden: int, device: str) -> viz.GradientFlow:
    """A ReLU RNN with W_hh = 1.1 I and a positive bias (every unit stays active), so each step
    back multiplies the gradient by 1.1; measured with clip_grad_norm_(1.0)."""
    boom = nn.RNN(x.shape[-1], hidden, nonlinearity="relu")
    nn.init.identity_(boom.weight_hh_l0, gain=1.1)
    nn.init.normal_(boom.weight_ih_l0, 0.0, 0.01)
    nn.init.constant_(boom.bias_ih_l0, 0.1)
    nn.init.zeros_(boom.bias_hh_l0)
    return viz.gradient_flow(boom.to(device), x, clip=1.0, label="RNN relu, W_hh = 1.1 I")


# short keys of the figure's models in docs/results/gradient_flow.json (the docs' markers use them)
FLOW_KEYS = {"RNN tanh (default init)": "rnn_tanh", "RNN tanh, orthogonal W_hh": "rnn_orthogonal",
             "RNN relu, identity W_hh (IRNN)": "irnn", "LSTM (default init)": "lstm",
             "LSTM, forget bias 3": "lstm_forget_bias_3", "GRU (default init)": "gru"}


def flow_numbers(flows: dict, explode: viz.GradientFlow) -> dict:
    """key -> {"label", "h": ||dL/dh_0|| / ||dL/dh_T||, "c": the same for the LSTM cell}; the
    exploding RNN also has its total gradient norm and clip factor."""
    nums = {}
    for label, f in flows.items():
        entry = {"label": label, "h": float(f.grad_norms[0] / f.grad_norms[-1])}
        if f.cell_grad_norms is not None:
            entry["c"] = float(f.cell_grad_norms[0] / f.cell_grad_norms[-1])
        nums[FLOW_KEYS[label]] = entry
    nums["exploding"] = {"label": explode.label,
                         "h": float(explode.grad_norms[0] / explode.grad_norms[-1]),
                         "total_norm": float(explode.total_norm), "clip_coef": float(explode.clip_coef)}
    return nums


def flow_figure(out: Path, device: str, steps: int, hidden: int, written: list) -> None:
    flows, x = flow_models(steps, hidden, device)
    explode = exploding_flow(x, hidden, device)
    nums = flow_numbers(flows, explode)
    for f in nums.values():
        print(f"{f['label']:34s} ||dL/dh_0|| / ||dL/dh_T|| = {f['h']:.2e}"
              + (f"   ||dL/dc_0|| / ||dL/dc_T|| = {f['c']:.2e}" if "c" in f else "")
              + (f", total gradient norm {f['total_norm']:.3g}, clip factor {f['clip_coef']:.3g}"
                 if "total_norm" in f else ""))
    if out.resolve() == IMAGES.resolve():  # the docs' run: keep the numbers they quote
        FLOW_RECORD.write_text(json.dumps({
            "command": "python examples/make_figures.py", "device": device, "seed": 0,
            "steps": steps, "hidden": hidden, "models": nums}, indent=1) + "\n")
        print(f"kept {FLOW_RECORD.relative_to(ROOT)}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("skipped gradient_flow.png: pip install matplotlib", file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=90)
    viz.plot_gradient_flow({**flows, explode.label: explode}, ax=a,
                           title=f"||dL/dh_t|| for L = <v, h_T>  (T = {steps}, H = {hidden})\n"
                                 f"vanishing, kept (IRNN, open forget gate), exploding")
    viz.plot_gradient_flow({explode.label: explode}, quantity="weight", clipped=True, ax=b,
                           title=f"each step's term of W_hh.grad (the terms sum to W_hh.grad)\n"
                                 f"clip_grad_norm_(1.0) scales every term by {explode.clip_coef:.1e}")
    vanilla = flows["RNN tanh (default init)"]
    b.semilogy(vanilla.steps, np.where(vanilla.weight_term_norms["weight_hh_l0"] > 0,
                                       vanilla.weight_term_norms["weight_hh_l0"], np.nan),
               color="C1", label="RNN tanh (default init): only the last steps contribute")
    b.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "gradient_flow.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    record(path, "examples/make_figures.py")


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None,
                    help="output folder (default: docs/images, or a temporary folder with --smoke)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="small sizes, for tests")
    args = ap.parse_args(argv)
    if args.out is None:  # a smoke run must never overwrite the pictures of the docs
        args.out = tempfile.mkdtemp(prefix="figures_") if args.smoke else str(IMAGES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: list = []
    for name, graph in graphs(args.device, 12 if args.smoke else 100).items():
        save(graph, out, name, written)
    flow_figure(out, args.device, 12 if args.smoke else 60, 8 if args.smoke else 32, written)
    for name, graph in decoder_step(args.device).items():
        save(graph, out, name, written)
    for p in written:
        print(f"wrote {p} ({Path(p).stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
