"""Character-level language model (LSTM or GRU) trained with truncated BPTT.

The text is cut into `--batch` parallel streams; each training step reads the next `--bptt`
characters of every stream, predicts each next character, backpropagates through those steps only,
clips the gradient norm and takes an Adam step. The recurrent state is carried to the next chunk
with `nn.detach_state` (values kept, graph cut), so the model sees context older than one chunk
while each backward stays `--bptt` steps long.

The default corpus needs no download: the Zen of Python (from the `this` module) followed by the
docstrings of 26 standard-library modules, about 200 kB of English prose and Python examples
that every CPython installation carries. `--text PATH` trains on any UTF-8 text file instead.

    python examples/char_rnn.py                      # LSTM, 2000 steps (run time: docs/examples.md)
    python examples/char_rnn.py --cell gru
    python examples/char_rnn.py --text my.txt --steps 5000
    python examples/char_rnn.py --stop-at 1000        # stop early, as if interrupted (or Ctrl-C) ...
    python examples/char_rnn.py --resume              # ... and finish the 2000 steps from the checkpoint
    python examples/char_rnn.py --resume --steps 3000   # train the saved model on, up to step 3000
    python examples/char_rnn.py --resume --steps 0 --temperature 0.5   # only sample from it

Writes to --out (default out/char_rnn): checkpoint.ckpt (model, optimizer, RNG state, step, data
position and carried state, so that a resumed run continues exactly like an uninterrupted one),
loss.png (training and validation loss), samples.txt and results.json (the losses, samples, run
time and machine). The "train loss" printed at each validation is the mean over the training
steps since the previous validation (a window average), not the loss of one batch.
"""
from __future__ import annotations

import codecs
import contextlib
import importlib
import inspect
import io
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import Run, fmt_seconds, make_parser, parse, progress, pyplot  # noqa: E402

import numpy as np  # noqa: E402 - after _common, which limits BLAS threads

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, optim  # noqa: E402

NAME = "char_rnn"
# Modules whose docstrings make the default corpus: long, mostly prose, stable across versions.
CORPUS_MODULES = ("argparse", "json", "collections", "random", "statistics", "heapq", "textwrap",
                  "difflib", "subprocess", "re", "shutil", "threading", "csv", "copy", "logging",
                  "inspect", "pathlib", "zipfile", "tarfile", "calendar", "sched", "queue",
                  "contextlib", "fractions", "string", "os")


# ======================================================================================== data
def _docstrings(module_name: str) -> list[str]:
    """The module's docstring and those of its public classes, functions and methods."""
    mod = importlib.import_module(module_name)
    docs = [mod.__doc__ or ""]
    for name in sorted(vars(mod)):
        obj = vars(mod)[name]
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            docs.append(obj.__doc__ or "")
        if inspect.isclass(obj):
            docs += [v.__doc__ or "" for k, v in sorted(vars(obj).items())
                     if not k.startswith("_") and inspect.isfunction(v)]
    return [inspect.cleandoc(d) for d in docs if d.strip()]


def default_corpus() -> str:
    """The Zen of Python plus standard-library docstrings (empty docstrings under python -OO:
    then the Zen alone, which is small but still trains)."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        zen = importlib.import_module("this").s        # ROT13-encoded, as Tim Peters wrote it
    parts = [codecs.decode(zen, "rot13")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in CORPUS_MODULES:
            parts += _docstrings(m)
    return "\n\n".join(parts) + "\n"


def load_text(path: Path | None) -> tuple[str, str]:
    """(text, description)."""
    if path is None:
        return default_corpus(), f"Zen of Python + docstrings of {len(CORPUS_MODULES)} stdlib modules"
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise SystemExit(f"{NAME}: cannot read --text {path}: {e}") from None
    if len(text) < 100:
        raise SystemExit(f"{NAME}: --text {path} holds only {len(text)} characters; give it at "
                         f"least a few thousand")
    return text, str(path)


def streams(ids: np.ndarray, batch: int) -> np.ndarray:
    """(n,) ids -> (n // batch, batch): column b is the b-th contiguous stretch of the text, so
    consecutive chunks of one column continue each other and carrying the state makes sense."""
    n = len(ids) // batch
    return ids[: n * batch].reshape(batch, n).T.copy()


# ======================================================================================= model
class CharRNN(nn.Module):
    """Embedding -> LSTM/GRU -> Linear over the vocabulary. Input (T, B) ids, output (T, B, V)."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, cell: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(embed, hidden, num_layers=layers)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx: tg.Tensor, state=None):
        out, state = self.rnn(self.embed(idx), state)
        return self.head(out), state


def sequence_loss(logits: tg.Tensor, target: np.ndarray) -> tg.Tensor:
    t, b, v = logits.shape
    return nn.F.cross_entropy(logits.reshape(t * b, v), target.reshape(t * b))


def evaluate(model: CharRNN, data: np.ndarray, bptt: int, device: str) -> float:
    """Mean cross-entropy (nats per character) over the held-out streams, state carried."""
    model.eval()
    total, count, state = 0.0, 0, None
    with tg.no_grad():
        for i in range(0, len(data) - 1, bptt):
            x, y = data[i:i + bptt], data[i + 1:i + 1 + bptt]
            x = x[: len(y)]
            logits, state = model(tg.Tensor(x, device=device), state)
            total += sequence_loss(logits, tg.Tensor(y, device=device)).item() * y.size
            count += y.size
    model.train()
    return total / count


def sample(model: CharRNN, chars: str, prime: str, length: int, temperature: float,
           device: str) -> str:
    """Feed `prime`, then draw `length` characters one at a time from softmax(logits / T)
    (greedy when T <= 0). The draws use the library's CPU generator, so they are reproducible
    under --seed and continue exactly after --resume."""
    index = {c: i for i, c in enumerate(chars)}
    prime = "".join(c for c in prime if c in index) or chars[0]
    model.eval()
    out = []
    with tg.no_grad():
        x = np.array([[index[c] for c in prime]])
        logits, state = model(tg.Tensor(x.T, device=device))
        for _ in range(length):
            z = logits[-1, 0].numpy().astype(np.float64)
            if temperature <= 0:
                nxt = int(z.argmax())
            else:
                p = np.exp((z - z.max()) / temperature)
                cdf = np.cumsum(p / p.sum())
                nxt = min(int(np.searchsorted(cdf, tg.rand(1).item())), len(chars) - 1)
            out.append(chars[nxt])
            logits, state = model(tg.Tensor(np.array([[nxt]]), device=device), state)
    model.train()
    return prime + "".join(out)


# =================================================================================== main
def parse_args(argv: list[str] | None):
    p = make_parser(NAME, __doc__)
    p.add_argument("--text", type=Path, default=None, help="train on this UTF-8 text file")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embed", type=int, default=48)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch", type=int, default=32, help="parallel text streams per step")
    p.add_argument("--bptt", type=int, default=64, help="time steps per truncated-BPTT chunk")
    p.add_argument("--steps", type=int, default=None,
                   help="total training steps, also when resuming (default 2000; 20 with --smoke); "
                        "the learning-rate schedule spans them")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="end this run early at STEP with a checkpoint, as if interrupted (to try --resume)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (cosine decay to 10%%)")
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    p.add_argument("--evals", type=int, default=10, help="validation + checkpoint this many times")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0: greedy)")
    p.add_argument("--prime", default="The ", help="text the samples start from")
    p.add_argument("--sample-len", type=int, default=300)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.ckpt")
    args = parse(p, argv)
    if args.steps is None:
        args.steps = 20 if args.smoke else 2000
    if args.smoke:
        args.hidden, args.embed, args.batch, args.bptt = 32, 16, 8, 16
        args.evals, args.sample_len = 2, 40
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    run = Run(args, NAME)
    out = run.out
    text, source = load_text(args.text)
    if args.smoke:
        text = text[:6000]
    ckpt_path = out / "checkpoint.ckpt"

    ckpt = None
    if args.resume:
        if not ckpt_path.exists():
            raise SystemExit(f"{NAME}: --resume: no checkpoint at {ckpt_path}; train first (without "
                             f"--resume) or point --out at the folder that holds it")
        ckpt = tg.load(ckpt_path)
        cfg = ckpt["config"]
        chars = cfg["chars"]
        missing = sorted(set(text) - set(chars))
        if missing:
            raise SystemExit(f"{NAME}: --resume: the text has {len(missing)} characters the saved "
                             f"model does not know (e.g. {missing[:5]}); resume with the same --text")
        for k in ("cell", "hidden", "embed", "layers", "batch", "bptt"):
            setattr(args, k, cfg[k])  # the architecture and data layout are the checkpoint's
    else:
        chars = "".join(sorted(set(text)))
        cfg = {k: getattr(args, k) for k in ("cell", "hidden", "embed", "layers", "batch", "bptt")}
        cfg["chars"] = chars
    index = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
    index[[ord(c) for c in chars]] = np.arange(len(chars))
    ids = index[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
    # Every 10th block of 2000 characters is held out, so validation text is the same mix of
    # subjects as the training text (the last 10% would be a few modules' worth of other topics).
    block = 2000 if len(ids) >= 20_000 else max(1, len(ids) // 10)
    held = (np.arange(len(ids)) // block) % 10 == 9
    train = streams(ids[~held], args.batch)
    n_val = int(held.sum())
    val = streams(ids[held], max(1, min(16, n_val // (4 * args.bptt))))
    print(f"text: {source}: {len(text):,} characters, vocabulary {len(chars)}; "
          f"train {len(ids) - n_val:,} / validation {n_val:,}")

    model = CharRNN(len(chars), args.embed, args.hidden, args.layers, args.cell).to(args.device)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    n_params = sum(p.numel() if hasattr(p, "numel") else p.data.size for p in model.parameters())
    print(f"model: {args.cell.upper()} hidden {args.hidden} x {args.layers} layer(s), "
          f"{n_params:,} parameters; truncated BPTT over {args.bptt} steps, batch {args.batch}")

    step, pos, state, history = 0, 0, None, {"step": [], "train": [], "val_step": [], "val": []}
    samples = []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optim"])
        tg.backend.set_rng_state(ckpt["rng"])
        step, pos, history = ckpt["step"], ckpt["pos"], ckpt["history"]
        state = None if ckpt["state"] is None else tuple(s.to(args.device) for s in ckpt["state"])
        if isinstance(state, tuple) and args.cell == "gru":
            state = state[0]
        print(f"resumed from {ckpt_path} at step {step} (last validation loss "
              f"{history['val'][-1] if history['val'] else float('nan'):.3f})")
    else:
        s = sample(model, chars, args.prime, args.sample_len, args.temperature, args.device)
        samples.append(("before training (step 0)", s))
        print(f"\n--- sample before training (temperature {args.temperature}) ---\n{s}\n")

    def save_checkpoint() -> None:
        saved = None if state is None else (state if isinstance(state, tuple) else (state,))
        tg.save({"config": cfg, "model": model.state_dict(), "optim": opt.state_dict(),
                 "rng": tg.backend.get_rng_state(), "step": step, "pos": pos, "history": history,
                 "state": saved}, ckpt_path)

    eval_every = max(1, args.steps // max(1, args.evals))
    clipped, n_updates, max_norm, t_train = 0, 0, 0.0, time.perf_counter()

    def train_until(end: int) -> None:
        nonlocal step, pos, state, clipped, n_updates, max_norm
        while step < end:
            if pos + args.bptt + 1 > len(train):  # end of the text: start again from a zero state
                pos, state = 0, None
            x, y = train[pos:pos + args.bptt], train[pos + 1:pos + 1 + args.bptt]
            for g in opt.param_groups:  # cosine decay from lr to lr/10 over the whole run
                g["lr"] = args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps)))
            logits, state = model(tg.Tensor(x, device=args.device), state)
            loss = sequence_loss(logits, tg.Tensor(y, device=args.device))
            opt.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), args.clip).item()
            clipped += norm > args.clip
            max_norm = max(max_norm, norm)
            n_updates += 1
            opt.step()
            state = nn.detach_state(state)  # truncated BPTT: keep the values, cut the graph
            pos += args.bptt
            step += 1
            history["step"].append(step)
            history["train"].append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", grad_norm=f"{norm:.2f}")
            if step % eval_every == 0 or step == end:  # validate and save a checkpoint
                v = evaluate(model, val, args.bptt, args.device)
                history["val_step"].append(step)
                history["val"].append(v)
                save_checkpoint()
                bar.write(f"step {step:5d}: train loss {np.mean(history['train'][-eval_every:]):.3f} "
                          f"(mean of the last {min(eval_every, len(history['train']))} steps), "
                          f"validation loss {v:.3f} ({v / math.log(2):.2f} bits/char)")

    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    bar = progress(total=max(0, end - step), desc=f"{NAME} ({args.cell})")
    try:
        train_until(end)
    except KeyboardInterrupt:
        bar.close()
        raise SystemExit(f"\ninterrupted; the last checkpoint is {ckpt_path}: continue with --resume "
                         f"--out {out}") from None
    bar.close()
    t_train = time.perf_counter() - t_train
    if n_updates:
        print(f"{n_updates} updates in {fmt_seconds(t_train)} ({1000 * t_train / n_updates:.0f} ms "
              f"each); gradient norm above {args.clip} (so clipped) in {clipped} of them, largest "
              f"{max_norm:.2f}")
        run.wrote(ckpt_path)

    s = sample(model, chars, args.prime, args.sample_len, args.temperature, args.device)
    samples.append((f"after {step} steps", s))
    print(f"\n--- sample after {step} steps (temperature {args.temperature}) ---\n{s}\n")
    with open(out / "samples.txt", "a" if args.resume else "w", encoding="utf-8") as f:
        for title, s in samples:
            f.write(f"--- {title}, temperature {args.temperature} ---\n{s}\n\n")
    run.wrote(out / "samples.txt")

    plt = pyplot()
    if plt is not None and history["train"]:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        tr = np.array(history["train"])
        k = max(1, len(tr) // 50)
        smooth = np.convolve(tr, np.ones(k) / k, mode="valid")
        ax.plot(history["step"], tr, color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(history["step"][k - 1:], smooth, color="tab:blue", label="training (moving average)")
        ax.plot(history["val_step"], history["val"], "o-", color="tab:orange", label="validation")
        ax.axhline(math.log(len(chars)), color="gray", ls=":", lw=1,
                   label=f"uniform guess (ln {len(chars)})")
        ax.set_xlabel("training step")
        ax.set_ylabel("cross-entropy (nats / character)")
        ax.set_title(f"char_rnn: {args.cell.upper()} {args.hidden}, truncated BPTT {args.bptt}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "loss.png")
        plt.close(fig)
        run.wrote(out / "loss.png")

    result = {"step": step, "train_loss": float(np.mean(history["train"][-eval_every:]))
              if history["train"] else float("nan"),
              "val_loss": history["val"][-1] if history["val"] else float("nan"),
              "sample": s}
    print(f"validation loss {result['val_loss']:.3f} nats/char "
          f"({result['val_loss'] / math.log(2):.2f} bits/char), train loss {result['train_loss']:.3f} "
          f"(mean of the last {min(eval_every, len(history['train']))} steps)")
    record = run.finish({
        **result, "val_bits": result["val_loss"] / math.log(2),
        "validations": dict(zip(map(str, history["val_step"]), history["val"])),
        "uniform_loss": math.log(len(chars)), "text_chars": len(text), "vocab": len(chars),
        "train_chars": len(ids) - n_val, "val_chars": n_val, "parameters": n_params,
        "updates": n_updates, "ms_per_update": 1000 * t_train / max(1, n_updates),
        "clipped": int(clipped), "max_grad_norm": max_norm, "samples": dict(samples)},
        train=t_train)
    return {**result, "seconds": record["seconds"]}


if __name__ == "__main__":
    main()
