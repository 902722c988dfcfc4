"""Long-range memory: which recurrent cells learn dependencies across many time steps?

Two synthetic tasks, each at growing sequence lengths T; the answer always depends on inputs far
back in the sequence, and the loss only looks at the last step, so every useful gradient has to
travel back through the whole unrolled graph (BPTT over T steps):

- adding problem (Hochreiter & Schmidhuber 1997): each step gets (value ~ U(0, 1), marker); exactly
  two steps are marked, one in each half of the sequence; predict the sum of the two marked values.
  Mean squared error; always guessing 1.0 scores 1/6 ~ 0.167. Its "accuracy" is the share of test
  sequences whose prediction lies within 0.04 of the true sum (|prediction - sum| < 0.04); solved
  means test MSE < 0.01.
- cued recall (a one-symbol copy task with a delay): each step gets one of K symbols (one-hot) and
  a cue flag; exactly one step is cued; after the last step, name the cued symbol. All other
  symbols are distractors. Training cues any step; the test cues only the first half, so every test
  answer needs a memory of at least T/2 steps. Cross-entropy; chance accuracy is 1/K.
  (Why not "remember the FIRST symbol"? With the cue always at step 0 there is no short delay
  to learn from; cues at varying distances let a model learn to store and hold over short delays
  first, and whether the hold survives long delays is what separates the cells.)

Models (hidden size --hidden, all trained the same way: Adam, gradient-norm clipping unless
--no-clip, fresh random batches every step, evaluated on 1000 held-out sequences):

- rnn       vanilla (Elman) RNN, tanh, default init U(-1/sqrt(H), 1/sqrt(H))
- rnn-orth  the same with an orthogonal recurrent matrix (nn.init.orthogonal_)
- irnn      ReLU RNN, identity recurrent matrix, zero biases, input weights ~ N(0, 0.001)
            (IRNN, Le et al. 2015; nn.init.identity_)
- lstm      LSTM, default init
- gru       GRU, default init

The lecture notes' claim is that gated cells (LSTM, GRU) keep gradients alive over long spans while
the vanilla RNN's gradient vanishes: the table shows the vanilla RNN at chance level for the long
sequences where LSTM and GRU solve the task.

Defaults: T = 10, 25, 50; 1000 steps of batch 64 per run; 30 runs (run times: docs/examples.md).

    python examples/memory_tasks.py                  # the default sweep
    python examples/memory_tasks.py --models rnn lstm --lengths 10 50 --steps 600
    python examples/memory_tasks.py --no-clip        # without gradient clipping

Writes memory_tasks.png (test score per model and length, training curves at the longest T) and
results.json (every number and loss curve, the run's time and machine) to --out (default
out/memory_tasks).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import Run, make_parser, parse, progress, pyplot  # noqa: E402

import numpy as np  # noqa: E402 - after _common, which limits BLAS threads

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, optim  # noqa: E402

NAME = "memory_tasks"
MODELS = ("rnn", "rnn-orth", "irnn", "lstm", "gru")
TASKS = ("adding", "recall")
ADD_TOLERANCE = 0.04


# ======================================================================================== tasks
def adding_batch(rng: np.random.Generator, batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, 2): value, marker; y (B, 1): sum of the two marked values."""
    x = np.zeros((steps, batch, 2), dtype=np.float32)
    x[:, :, 0] = rng.random((steps, batch))
    half = max(1, steps // 2)
    first = rng.integers(0, half, batch)
    second = rng.integers(half, steps, batch)
    cols = np.arange(batch)
    x[first, cols, 1] = 1.0
    x[second, cols, 1] = 1.0
    y = (x[first, cols, 0] + x[second, cols, 0])[:, None]
    return x, y.astype(np.float32)


def recall_batch(rng: np.random.Generator, batch: int, steps: int, symbols: int, far: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, K + 1): one-hot symbols plus a cue flag that marks one step; y (B,): the symbol
    at the cued step. The cue is anywhere in the sequence (training) or, with `far`, in the first
    half, so that it lies at least T/2 steps before the answer (testing long-range memory)."""
    s = rng.integers(0, symbols, (steps, batch))
    x = np.zeros((steps, batch, symbols + 1), dtype=np.float32)
    x[:, :, :symbols] = np.eye(symbols, dtype=np.float32)[s]
    cue = rng.integers(0, max(1, steps // 2) if far else steps, batch)
    cols = np.arange(batch)
    x[cue, cols, symbols] = 1.0
    return x, s[cue, cols]


# ======================================================================================= models
class SeqModel(nn.Module):
    """A one-layer recurrent network read out at the last time step by a Linear layer."""

    def __init__(self, kind: str, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        if kind in ("rnn", "rnn-orth", "irnn"):
            self.rnn = nn.RNN(n_in, hidden, nonlinearity="relu" if kind == "irnn" else "tanh")
        else:
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](n_in, hidden)
        self.head = nn.Linear(hidden, n_out)
        if kind == "rnn-orth":
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
        elif kind == "irnn":  # Le et al. 2015: W_hh = I, biases 0, small input weights
            nn.init.identity_(self.rnn.weight_hh_l0)
            nn.init.zeros_(self.rnn.bias_ih_l0)
            nn.init.zeros_(self.rnn.bias_hh_l0)
            nn.init.normal_(self.rnn.weight_ih_l0, 0.0, 0.001)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        _, h_n = self.rnn(x)
        h = h_n[0] if isinstance(h_n, tuple) else h_n   # LSTM: (h_n, c_n)
        return self.head(h[-1])                          # last layer's final hidden state


def run_one(kind: str, task: str, steps_t: int, args, bar) -> dict:
    """Train one model on one task at one length; returns final test metrics and the loss curve."""
    tg.manual_seed(args.seed)                   # same init for a kind, whatever ran before it
    rng = np.random.default_rng([args.seed, steps_t, TASKS.index(task)])
    test_rng = np.random.default_rng([args.seed + 10_000, steps_t, TASKS.index(task)])
    if task == "adding":
        n_in, n_out = 2, 1
        make = lambda r, b: adding_batch(r, b, steps_t)  # noqa: E731
    else:
        n_in, n_out = args.symbols + 1, args.symbols
        make = lambda r, b, far=False: recall_batch(r, b, steps_t, args.symbols, far)  # noqa: E731
    model = SeqModel(kind, n_in, args.hidden, n_out).to(args.device)
    opt = optim.Adam(model.parameters(), lr=args.lr)

    def loss_fn(x: np.ndarray, y: np.ndarray) -> tuple[tg.Tensor, tg.Tensor]:
        pred = model(tg.Tensor(x, device=args.device))
        target = tg.Tensor(y, device=args.device)
        if task == "adding":
            return nn.F.mse_loss(pred, target), pred
        return nn.F.cross_entropy(pred, target), pred

    curve, t0, diverged = [], time.perf_counter(), False
    for _ in range(args.steps):
        x, y = make(rng, args.batch)
        loss, _ = loss_fn(x, y)
        opt.zero_grad()
        loss.backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        value = loss.item()
        curve.append(value)
        bar.update()
        bar.set_postfix(model=kind, task=task, T=steps_t, loss=f"{value:.3f}")
        if not math.isfinite(value):   # exploded: the remaining steps would only produce NaN
            diverged = True
            bar.update(args.steps - len(curve))
            break

    with tg.no_grad():
        x, y = make(test_rng, args.test, True) if task == "recall" else make(test_rng, args.test)
        loss, pred = loss_fn(x, y)
        p = pred.numpy()
        if task == "adding":
            acc = float(np.mean(np.abs(p - y) < ADD_TOLERANCE))
        else:
            acc = float(np.mean(p.argmax(1) == y))
    test_loss = loss.item() if not diverged else float("nan")
    return {"model": kind, "task": task, "T": steps_t, "test_loss": test_loss,
            "accuracy": acc if not diverged else float("nan"), "diverged": diverged,
            "seconds": time.perf_counter() - t0, "curve": curve}


# ======================================================================================= report
def solved(r: dict, args) -> bool:
    if r["task"] == "adding":
        return r["test_loss"] < 0.01          # a sixteenth of the guess-1.0 baseline (0.167)
    return r["accuracy"] > 0.9


def find(results: list[dict], model: str, task: str, steps_t: int) -> dict | None:
    return next((r for r in results if (r["model"], r["task"], r["T"]) == (model, task, steps_t)), None)


def table(results: list[dict], args) -> str:
    """One row per model; per task and length the test loss and accuracy; * marks solved."""
    lengths = sorted({r["T"] for r in results})
    models = [m for m in args.models if any(r["model"] == m for r in results)]
    lines = []
    for task in [t for t in TASKS if any(r["task"] == t for r in results)]:
        if task == "adding":
            lines.append("adding problem: test MSE (guessing 1.0 gives 0.167) / share within "
                         f"{ADD_TOLERANCE} of the sum")
        else:
            lines.append(f"cued recall, cue >= T/2 steps back: test cross-entropy (chance {math.log(args.symbols):.2f})"
                         f" / accuracy (chance {1 / args.symbols:.0%})")
        lines.append(f"{'model':<10}" + "".join(f"{'T=' + str(T):>18}" for T in lengths))
        for m in models:
            cells = []
            for T in lengths:
                r = find(results, m, task, T)
                if r is None:
                    cells.append(f"{'-':>18}")
                elif r["diverged"]:
                    cells.append(f"{'diverged':>18}")
                else:
                    mark = "*" if solved(r, args) else " "
                    cells.append(f"{r['test_loss']:9.3f} /{r['accuracy']:5.0%}{mark}")
            lines.append(f"{m:<10}" + "".join(cells))
        lines.append("")
    lines.append("* solved: MSE < 0.01 (adding), accuracy > 90% (recall)")
    return "\n".join(lines)


def markdown_tables(results: list[dict], args) -> dict[str, str]:
    """The tables of docs/examples.md: per task, test MSE (adding) or accuracy (recall), * = solved."""
    lengths = sorted({r["T"] for r in results})
    tables = {}
    for task in [t for t in TASKS if any(r["task"] == t for r in results)]:
        head = ("adding problem, test MSE" if task == "adding"
                else "cued recall, test accuracy (cue ≥ T/2 back)")
        rows = [f"| {head} | " + " | ".join(f"T = {T}" for T in lengths) + " |",
                "|---|" + "---|" * len(lengths)]
        for m in [m for m in args.models if any(r["model"] == m for r in results)]:
            cells = []
            for T in lengths:
                r = find(results, m, task, T)
                if r is None or r["diverged"]:
                    cells.append("-" if r is None else "diverged")
                else:
                    value = f"{r['test_loss']:.3f}" if task == "adding" else f"{r['accuracy']:.0%}"
                    cells.append(value + (" *" if solved(r, args) else ""))
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
        tables[task] = "\n".join(rows)
    return tables


STYLES = {"rnn": ("tab:red", "o", "--"), "rnn-orth": ("tab:orange", "s", "--"),
          "irnn": ("tab:brown", "^", "--"), "lstm": ("tab:blue", "D", "-"), "gru": ("tab:green", "v", "-")}


def plot(results: list[dict], args, path: Path) -> bool:
    """Top row: final test accuracy against T per task. Bottom row: training loss at the longest T."""
    plt = pyplot()
    if plt is None:
        return False
    tasks = [t for t in TASKS if any(r["task"] == t for r in results)]
    lengths = sorted({r["T"] for r in results})
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.4 * len(tasks), 7.2), dpi=90, squeeze=False)
    for col, task in enumerate(tasks):
        ax, cx = axes[0][col], axes[1][col]
        for m in args.models:
            rs = sorted((r for r in results if r["model"] == m and r["task"] == task), key=lambda r: r["T"])
            if not rs:
                continue
            color, marker, ls = STYLES.get(m, ("black", "x", "-"))
            lw = 2.2 if ls == "-" else 1.4
            score = [r["test_loss"] if task == "adding" else 100 * r["accuracy"] for r in rs]
            ax.plot([r["T"] for r in rs], score, marker=marker, ls=ls, color=color, label=m, lw=lw)
            curve = np.asarray(rs[-1]["curve"], dtype=float)
            k = max(1, len(curve) // 30)
            smooth = np.convolve(curve, np.ones(k) / k, mode="valid")
            cx.plot(np.arange(k, len(curve) + 1), smooth, color=color, ls=ls, lw=lw, label=m)
        if task == "adding":
            ax.set_title("adding problem: test MSE (lower is better)", fontsize=10)
            ax.axhline(1 / 6, color="gray", ls=":", lw=1)
            ax.axhline(0.01, color="gray", ls="-.", lw=0.8)
            ax.text(lengths[0], 1 / 6 * 1.15, "guess 1.0", color="gray", fontsize=7)
            ax.text(lengths[0], 0.01 * 1.15, "solved below", color="gray", fontsize=7)
            ax.set_yscale("log")
            ax.set_ylim(top=0.6)
            ax.set_ylabel("test MSE")
            cx.axhline(1 / 6, color="gray", ls=":", lw=1)
            cx.set_ylabel("training MSE (dotted: guess 1.0)")
            top = 10 / 6
        else:
            ax.axhline(100 / args.symbols, color="gray", ls=":", lw=1)
            ax.text(lengths[0], 100 / args.symbols + 2, "chance", color="gray", fontsize=7)
            ax.set_title(f"cued recall ({args.symbols} symbols, cue >= T/2 back): test accuracy",
                         fontsize=10)
            ax.set_ylim(-3, 103)
            ax.set_ylabel("test accuracy (%)")
            cx.axhline(math.log(args.symbols), color="gray", ls=":", lw=1)
            cx.set_ylabel("training cross-entropy (dotted: chance)")
            top = 5 * math.log(args.symbols)
        cx.set_yscale("log")
        cx.set_ylim(top=top)   # an exploding step (IRNN) would otherwise squash every other curve
        ax.set_xscale("log")
        ax.set_xticks(lengths)
        ax.set_xticklabels([str(T) for T in lengths])
        ax.minorticks_off()
        ax.set_xlabel("sequence length T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        cx.set_title(f"training loss at T = {lengths[-1]} (moving average)", fontsize=10)
        cx.set_xlabel("training step")
        cx.grid(alpha=0.3)
    fig.suptitle(f"{args.steps} Adam steps per model and length, batch {args.batch}, hidden "
                 f"{args.hidden}, " + (f"gradient norm clipped at {args.clip}" if args.clip > 0
                                       else "no clipping"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ========================================================================================= main
def parse_args(argv: list[str] | None):
    p = make_parser(NAME, __doc__)
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--lengths", nargs="+", type=int, default=[10, 25, 50])
    p.add_argument("--steps", type=int, default=1000, help="training steps per model, task and length")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm (0: no clipping)")
    p.add_argument("--no-clip", dest="clip", action="store_const", const=0.0)
    p.add_argument("--symbols", type=int, default=8, help="alphabet size of the recall task")
    p.add_argument("--test", type=int, default=1000, help="held-out test sequences")
    args = parse(p, argv)
    if args.smoke:
        args.lengths, args.steps, args.hidden, args.batch, args.test = [4, 8], 6, 8, 8, 50
    if min(args.lengths) < 2:
        p.error("--lengths must all be at least 2 (the adding problem marks two steps)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    run = Run(args, NAME)
    runs = [(m, t, T) for t in args.tasks for T in args.lengths for m in args.models]
    print(f"{len(runs)} runs ({len(args.models)} models x {len(args.tasks)} tasks x "
          f"{len(args.lengths)} lengths), {args.steps} steps each, hidden {args.hidden}, "
          f"batch {args.batch}, Adam lr {args.lr}, "
          + (f"gradient norm clipped at {args.clip}" if args.clip > 0 else "no clipping"))
    results = []
    bar = progress(total=len(runs) * args.steps, desc=NAME)
    for m, task, T in runs:
        r = run_one(m, task, T, args, bar)
        results.append(r)
        what = f"within {ADD_TOLERANCE} of the sum" if task == "adding" else "accuracy"
        bar.write(f"{task:>6} T={T:<4} {m:<9} test loss {r['test_loss']:.3f}, {what} "
                  f"{r['accuracy']:.0%} ({r['seconds']:.1f} s)")
    bar.close()
    print()
    print(table(results, args))

    if plot(results, args, run.out / "memory_tasks.png"):
        run.wrote(run.out / "memory_tasks.png")
    cells = {f"{r['task']} {r['model']} {r['T']}": {"test_loss": r["test_loss"], "accuracy": r["accuracy"]}
             for r in results}     # e.g. cells["recall irnn 25"], quoted by docs/examples.md
    record = run.finish({"results": results, "cells": cells, "tables": markdown_tables(results, args)})
    return {"results": results, "seconds": record["seconds"]}


if __name__ == "__main__":
    main()
