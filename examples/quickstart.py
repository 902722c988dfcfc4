"""Quickstart: train a small LSTM on a memory task, then look at backpropagation through time.

The task (delayed recall): the input is a stream of random symbols from an alphabet of 8; at every
step t the model must output the symbol it read `--delay` steps earlier (3 by default). A
feed-forward network cannot do this; a recurrent one has to carry each symbol in its state for 3
steps, and BPTT has to carry the gradient back over those steps to teach it that.

    python examples/quickstart.py                 # 7 s on a 2-core CPU
    python examples/quickstart.py --device cuda   # on a GPU (pip install "tinygrad-rnn[cuda12]")

What it does, in order:
1. trains Embedding -> LSTM -> Linear with Adam and gradient clipping, with a progress bar,
   printing the loss and the recall accuracy as they improve;
2. draws the graph of a 4-step forward pass (one cluster per time step, the shared weights outside
   them) and, after backward, the same graph annotated with the gradient that flowed along every
   edge and the order in which the engine visited the ops (SVG; DOT text if no Graphviz renderer
   is installed, with a hint saying what to install), and explorer.html, a page that replays
   that backward op by op (viz.explore);
3. measures how the gradient of the last step's loss flows back through time, before and after
   training, and plots it next to the training curve;
4. saves the trained weights and prints the path of every file it wrote (default out/quickstart).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import fmt_seconds, make_parser, progress, pyplot, setup, wrote  # noqa: E402

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, optim, viz  # noqa: E402
from tinygrad_rnn.nn import functional as F  # noqa: E402

NAME = "quickstart"
VOCAB = 8  # alphabet size: chance accuracy is 1/8


class Recall(nn.Module):
    """tokens (T, B) -> logits (T, B, VOCAB): embed each symbol, run an LSTM, read out each step."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: tg.Tensor) -> tg.Tensor:
        out, _ = self.lstm(self.emb(tokens))
        return self.head(out)


def make_batch(rng: np.random.Generator, steps: int, batch: int, delay: int,
               device: str) -> tuple[tg.Tensor, tg.Tensor, np.ndarray]:
    """Random symbols (T, B) and targets: the symbol `delay` steps back (-100 = no target yet)."""
    x = rng.integers(0, VOCAB, size=(steps, batch))
    y = np.full((steps, batch), -100)
    y[delay:] = x[:-delay]
    return tg.Tensor(x, device=device), tg.Tensor(y, device=device), y


def loss_and_accuracy(model: Recall, tokens: tg.Tensor, targets: tg.Tensor,
                      y: np.ndarray) -> tuple[tg.Tensor, float]:
    logits = model(tokens)
    T, B, V = logits.shape
    loss = F.cross_entropy(logits.reshape(T * B, V), targets.reshape(T * B))  # skips -100
    pred = tg.argmax(logits, dim=-1).numpy()
    mask = y >= 0
    return loss, float((pred[mask] == y[mask]).mean())


def train(model: Recall, args: Any, rng: np.random.Generator) -> list[tuple[int, float, float]]:
    params = list(model.parameters())
    opt = optim.Adam(params, lr=args.lr)
    history = []
    bar = progress(range(1, args.steps + 1), desc="training")
    for step in bar:
        tokens, targets, y = make_batch(rng, args.seq_len, args.batch, args.delay, args.device)
        loss, acc = loss_and_accuracy(model, tokens, targets, y)
        opt.zero_grad()
        loss.backward()                              # BPTT through all seq_len steps
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append((step, loss.item(), acc))
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.0%}")
        if step == 1 or step % args.log_every == 0 or step == args.steps:
            bar.write(f"step {step:4d}   loss {loss.item():.4f}   recall accuracy {acc:6.1%}")
    return history


def render_graph(graph: Any, path: Path, written: list) -> None:
    """Render to SVG/PNG; without a renderer, viz.render has written the DOT text: say what to do."""
    try:
        written.append(viz.render(graph, path))
    except viz.RenderError as err:
        gv = path.with_suffix(".gv")
        written.append(gv)
        print(f"note: {path.name} was not rendered, its DOT text is in {gv}.\n      {err}\n"
              f"      (or paste the .gv file into any Graphviz viewer)")


def draw_graphs(model: Recall, delay: int, out: Path, device: str, written: list,
                fmt: str = "svg", prefix: str = "") -> None:
    """The unrolled forward graph of a short sequence, then the same graph after backward."""
    steps = delay + 1                                # the last step is the first with a target
    rng = np.random.default_rng(1)
    tokens, targets, _ = make_batch(rng, steps, 1, delay, device)
    logits = model(tokens)
    loss = F.cross_entropy(logits[-1], targets[-1])  # the loss of the last step
    fwd = viz.draw_graph(loss, model=model,
                         title=f"forward: the LSTM unrolled over {steps} steps (one cluster per step; "
                               f"yellow = shared weights)")
    render_graph(fwd, out / f"{prefix}forward.{fmt}", written)
    with viz.record_grads():                         # store each op's gradient norm for the drawing
        loss.backward(retain_graph=True)             # keep saved arrays: the drawing can then tell
                                                     # that the initial state is zero, not detached
    bwd = viz.draw_graph(loss, model=model, show_grads=True, backward_order=True,
                         title="backward: edge colour = norm of the gradient flowing back along it; "
                               "#k = order in which the engine ran the op's backward")
    render_graph(bwd, out / f"{prefix}backward.{fmt}", written)
    model.zero_grad()
    try:  # the BPTT explorer: a page to step through this backward (viz.explore runs it again)
        written.append(viz.explore(loss, model=model).save(out / f"{prefix}explorer.html"))
    except viz.RenderError as err:
        print(f"note: {prefix}explorer.html was not written: {err}")
    model.zero_grad()


def gradient_flow(model: Recall, delay: int, steps: int, device: str) -> viz.GradientFlow:
    """||dL/dh_t|| for the loss of the LAST step only, over a sequence of `steps` symbols."""
    rng = np.random.default_rng(2)
    tokens, _, y = make_batch(rng, steps, 64, delay, device)
    with tg.no_grad():
        x = model.emb(tokens)                        # the LSTM's input, a constant here
    target = tg.Tensor(y[-1], device=device)
    return viz.gradient_flow(model.lstm, x, loss=lambda hs: F.cross_entropy(model.head(hs[-1]), target))


def plot(history: list, before: viz.GradientFlow, after: viz.GradientFlow, delay: int,
         path: Path, written: list) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    steps, losses, accs = (np.array(c) for c in zip(*history))
    a.plot(steps, losses, color="C0", label="training loss (cross-entropy)")
    a.axhline(np.log(VOCAB), color="grey", ls=":", label=f"chance: ln {VOCAB}")
    a.set_xlabel("training step")
    a.set_ylabel("loss")
    a.set_yscale("log")
    a2 = a.twinx()
    a2.plot(steps, accs, color="C2", alpha=0.7, label="recall accuracy")
    a2.set_ylim(0, 1.02)
    a2.set_ylabel("accuracy")
    lines = a.get_legend_handles_labels()
    lines2 = a2.get_legend_handles_labels()
    a.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="center right")
    a.set_title(f"delayed recall (output the symbol read {delay} steps ago)", fontsize=10)
    viz.plot_gradient_flow({"before training": before, "after training": after}, ax=b,
                           title="gradient of the last step's loss w.r.t. each state")
    T = len(after.grad_norms)
    b.axvline(T - 1 - delay, color="grey", ls=":")
    b.annotate(f"t = T-1-{delay}: the step that read\nthe symbol to recall", (T - 1 - delay, 0.04),
               xycoords=("data", "axes fraction"), fontsize=8, ha="right", xytext=(-4, 0),
               textcoords="offset points")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    written.append(path)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(NAME, __doc__)
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--seq-len", type=int, default=20, help="sequence length (default 20)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--delay", type=int, default=3, help="how far back to recall (default 3)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--format", default="svg", choices=["svg", "png", "pdf"],
                        help="file format of the graph drawings (default svg)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.seq_len, args.batch, args.hidden = 20, 8, 8, 8
    if not 0 < args.delay < args.seq_len:
        parser.error(f"--delay must be between 1 and --seq-len - 1 = {args.seq_len - 1}")
    args.log_every = max(1, args.steps // 6)
    out = setup(args, NAME)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    model = Recall(VOCAB, args.hidden).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: Embedding({VOCAB}, 8) -> LSTM(8, {args.hidden}) -> Linear({args.hidden}, {VOCAB}), "
          f"{n_params} parameters; task: recall the symbol from {args.delay} steps ago, "
          f"sequences of {args.seq_len}, batch {args.batch}")
    flow_steps = 12 if args.smoke else 40
    before = gradient_flow(model, args.delay, flow_steps, args.device)

    history = train(model, args, rng)
    (_, loss0, acc0), (_, loss1, acc1) = history[0], history[-1]
    print(f"loss {loss0:.3f} -> {loss1:.4f}, recall accuracy {acc0:.0%} -> {acc1:.0%} "
          f"in {args.steps} steps ({fmt_seconds(time.perf_counter() - t0)})")

    written: list = []
    draw_graphs(model, args.delay, out, args.device, written, fmt=args.format)
    after = gradient_flow(model, args.delay, flow_steps, args.device)
    peak = int(np.argmax(after.grad_norms))
    print(f"gradient of the last step's loss: largest at t = {peak} (T - 1 - delay = "
          f"{flow_steps - 1 - args.delay}), {after.grad_norms[peak] / max(after.grad_norms[0], 1e-30):.1e}x "
          f"its value at t = 0")
    plot(history, before, after, args.delay, out / "training_and_gradient_flow.png", written)
    ckpt = out / "recall_lstm.ckpt"
    tg.save(model.state_dict(), ckpt)
    written.append(ckpt)

    print(f"\ndone in {fmt_seconds(time.perf_counter() - t0)}; wrote:")
    for p in written:
        wrote(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
