"""Sequence-to-sequence with attention: learn to translate dates from human formats to ISO.

    "3 march 1997", "mar 03, 1997", "03.03.1997", "mon 3 mar 1997"  ->  "1997-03-03"

A character-level encoder-decoder (bidirectional GRU encoder, GRU decoder, Bahdanau attention)
is trained on pairs generated on the fly, then greedy decoding and beam search are compared on a
fresh test set. Source and target lengths differ (T_x = 10..17, T_y = 11 with <eos>) and the
batches are padded, so the attention masks matter.

    python examples/seq2seq_attention.py                  # about a minute on a 2-core CPU
    python examples/seq2seq_attention.py --smoke --out /tmp/s2s   # a few seconds (tests)
    python examples/seq2seq_attention.py --device cuda

Writes to --out: attention_heatmap.png (input vs output positions, matplotlib), decoder_step.png
(or .svg; the autodiff graph of one decoder step with its attention, via viz.draw_graph and
viz.render; only the DOT text when no Graphviz renderer is installed) and results.json.
Uses the public API only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim, viz
from tinygrad_rnn.nn.seq2seq import Seq2Seq

# ====================================================================================== the task
PAD, SOS, EOS = "<pad>", "<sos>", "<eos>"
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FORMATS = [  # (name, function date -> text); what the model must learn to undo
    ("d mon yyyy", lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}"),
    ("d month yyyy", lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}"),
    ("mon dd, yyyy", lambda d: f"{MONTHS[d.month - 1][:3]} {d.day:02d}, {d.year}"),
    ("dd.mm.yyyy", lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"),
    ("day d mon yyyy", lambda d: f"{DAYS[d.weekday()]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}"),
]
FIRST, DAYS_SPAN = dt.date(1950, 1, 1).toordinal(), 100 * 365  # dates in 1950..2049
SRC_CHARS = sorted(set("".join(MONTHS) + "".join(DAYS) + "0123456789 ,."))
TGT_CHARS = sorted(set("0123456789-"))


class Vocab:
    """Characters <-> ids; ids 0, 1, 2 are <pad>, <sos>, <eos>."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.itos = [PAD, SOS, EOS, *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] if i > 2 else "" for i in ids)


SRC, TGT = Vocab(SRC_CHARS), Vocab(TGT_CHARS)


def sample_pairs(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """n random (human date, ISO date) pairs, formats chosen uniformly."""
    days = rng.integers(0, DAYS_SPAN, n)
    fmts = rng.integers(0, len(FORMATS), n)
    out = []
    for d, f in zip(days, fmts):
        date = dt.date.fromordinal(FIRST + int(d))
        out.append((FORMATS[f][1](date), date.isoformat()))
    return out


def batchify(pairs: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad to rectangular id arrays: src (B, T_x) and tgt (B, T_y) with <eos> at the end."""
    src = [SRC.encode(s) for s, _ in pairs]
    tgt = [TGT.encode(t) + [TGT.stoi[EOS]] for _, t in pairs]
    xs = np.zeros((len(pairs), max(map(len, src))), dtype=np.int64)
    ys = np.zeros((len(pairs), max(map(len, tgt))), dtype=np.int64)
    for i, (s, t) in enumerate(zip(src, tgt)):
        xs[i, :len(s)], ys[i, :len(t)] = s, t
    return xs, ys


# ================================================================================ progress bar
class _Bar:
    """tqdm when installed, else a line every `every` steps."""

    def __init__(self, total: int, every: int) -> None:
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="train", unit="step", leave=False, file=sys.stdout)
        except ImportError:
            self.bar = None
        self.total, self.every, self.n, self.info = total, every, 0, ""

    def update(self, info: str) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix_str(info, refresh=False)
            self.bar.update(1)
        elif self.n % self.every == 0 or self.n == self.total:
            print(f"  step {self.n}/{self.total}  {info}", flush=True)

    def write(self, text: str) -> None:
        (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ================================================================================== evaluation
def exact_match(model: Seq2Seq, pairs: list, beam: int, batch: int = 250) -> float:
    """Fraction of sources whose whole decoded output equals the target."""
    hits = 0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        src, _ = batchify(chunk)
        outs = model.greedy(src) if beam == 1 else model.beam_search(src, beam_size=beam)
        hits += sum(TGT.decode(o) == t for o, (_, t) in zip(outs, chunk))
    return hits / len(pairs)


def save_heatmap(model: Seq2Seq, path: Path) -> Path | None:
    """Attention weights (output step x input character) for one example of three formats."""
    try:
        import matplotlib
        matplotlib.use("Agg")                 # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed, so no heat-map is drawn: pip install "tinygrad-rnn[plot]"')
        return None

    dates = [dt.date(2021, 8, 14), dt.date(1987, 12, 3), dt.date(2003, 6, 27)]
    texts = [FORMATS[4][1](dates[0]), FORMATS[1][1](dates[1]), FORMATS[3][1](dates[2])]
    src, _ = batchify([(t, d.isoformat()) for t, d in zip(texts, dates)])
    outs, attn = model.greedy(src, return_attention=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), gridspec_kw=dict(wspace=0.35))
    for ax, text, out, a in zip(axes, texts, outs, attn):
        a = a[:, :len(text)]                  # padded columns carry exactly zero weight
        rows = list(TGT.decode(out)) + ([EOS] if a.shape[0] > len(out) else [])
        im = ax.imshow(a, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(text)), [c if c != " " else "␣" for c in text], fontsize=11)
        ax.set_yticks(range(len(rows)), rows, fontsize=11)
        ax.set_xlabel("input characters x_j (encoder step j)")
        ax.set_ylabel("output characters y_i (decoder step i)")
        ax.set_title(f"{text!r}\n-> {TGT.decode(out)!r}", fontsize=11)
    fig.colorbar(im, ax=axes, fraction=0.02, pad=0.02, label="attention weight alpha_ij")
    fig.suptitle("Bahdanau attention of the trained model: each output character looks at the "
                 "input characters that determine it", fontsize=12, y=1.06)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_decoder_step(model: Seq2Seq, out_dir: Path, fmt: str = "png") -> tuple[Path | None, str]:
    """The autodiff graph of one decoder step (decoder_step_graph), rendered."""
    graph = decoder_step_graph(model)
    try:
        return viz.render(graph, out_dir / f"decoder_step.{fmt}"), ""
    except viz.RenderError as e:
        gv = out_dir / "decoder_step.gv"
        gv.write_text(graph.source, encoding="utf-8")
        return None, f"no Graphviz renderer, wrote the DOT text to {gv} ({e})"


def decoder_step_graph(model: Seq2Seq):
    """The autodiff graph of one decoder step (attention, GRU cell, output layer), clustered by
    module. The encoder's results enter as named constants so the picture shows the step alone."""
    src, _ = batchify([("3 mar 1997", "1997-03-03")])
    with tg.no_grad():
        enc = model.encode(src)
    # fresh leaves (requires_grad, so the drawing shows them) standing for the encoder's results
    enc.outputs = enc.outputs.detach().requires_grad_()
    enc.keys = enc.keys.detach().requires_grad_()
    state = [tuple(t.detach().requires_grad_() for t in layer) for layer in enc.state]
    prev = np.array([TGT.stoi["1"]])                         # y_{i-1}
    emb = model.tgt_embed(prev)
    feats, new_state, alpha = model.decode_step(emb, state, enc)
    logits = model.out(feats)
    names = {enc.outputs: "h_j (encoder states)", enc.keys: "U h_j (keys, once per source)",
             state[0][0]: "s_{i-1} (decoder state)", alpha: "alpha_ij", logits: "logits_i",
             emb: "E y_{i-1}", new_state[0][0]: "s_i", feats: "[s_i; c_i]"}
    return viz.draw_graph(logits, alpha, model=model, names=names, cluster="module", rankdir="TB",
                          title="One decoder step: attention(s_{i-1}, h) -> context c_i -> "
                                "GRU cell -> logits")


# ======================================================================================== main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/seq2seq", help="folder for the pictures and results.json")
    p.add_argument("--smoke", action="store_true", help="a few-second run (tests)")
    p.add_argument("--steps", type=int, default=500, help="maximum training steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--embed", type=int, default=24)
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--cell", default="gru", choices=["rnn", "lstm", "gru"])
    p.add_argument("--attention", default="additive", choices=["additive", "dot", "general"])
    p.add_argument("--teacher-forcing", type=float, default=1.0, help="teacher forcing ratio")
    p.add_argument("--beam", type=int, default=3, help="beam width for the comparison")
    p.add_argument("--eval-every", type=int, default=100, help="check dev accuracy every N steps")
    p.add_argument("--target", type=float, default=0.995,
                   help="stop early once the dev exact-match accuracy reaches this")
    p.add_argument("--test-size", type=int, default=1000)
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.batch_size, args.eval_every, args.test_size = 12, 16, 6, 40
        args.embed, args.hidden = 8, 16
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    try:
        args.device = tg.backend.normalize_device(args.device)
    except tg.DeviceError as e:
        raise SystemExit(f"seq2seq_attention: {e}") from None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    model = Seq2Seq(len(SRC), len(TGT), embed_size=args.embed, hidden_size=args.hidden,
                    encoder_cell=args.cell, bidirectional=True, attention=args.attention,
                    pad_idx=0, sos_idx=1, eos_idx=2, max_len=12).to(device=args.device)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"task: human-readable date -> ISO date, e.g. {sample_pairs(rng, 1)[0]}")
    print(f"model: {args.cell.upper()} encoder (bidirectional) / decoder, {args.attention} "
          f"attention, {n_params} parameters, device {args.device}")
    dev_pairs = sample_pairs(rng, 500 if not args.smoke else 20)

    t0 = time.perf_counter()
    bar = _Bar(args.steps, every=max(1, args.eval_every // 2))
    history, step, dev_acc = [], 0, 0.0
    for step in range(1, args.steps + 1):
        model.train()
        src, tgt = batchify(sample_pairs(rng, args.batch_size))
        loss = model.loss(src, tgt, teacher_forcing_ratio=args.teacher_forcing)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        bar.update(f"loss {loss.item():.3f}  dev {dev_acc:.1%}")
        if step % args.eval_every == 0 or step == args.steps:
            dev_acc = exact_match(model, dev_pairs, beam=1)
            dev_beam = exact_match(model, dev_pairs, beam=args.beam)
            history.append({"step": step, "loss": round(loss.item(), 4), "dev_greedy": dev_acc,
                            "dev_beam": dev_beam, "seconds": round(time.perf_counter() - t0, 1)})
            bar.write(f"step {step:5d}  loss {loss.item():.4f}  dev exact match: greedy "
                      f"{dev_acc:.1%}, beam k={args.beam} {dev_beam:.1%}  "
                      f"({time.perf_counter() - t0:.0f}s)")
            if dev_acc >= args.target:
                break
    bar.close()
    train_s = time.perf_counter() - t0

    test_pairs = sample_pairs(np.random.default_rng(args.seed + 1), args.test_size)
    t1 = time.perf_counter()
    greedy_acc = exact_match(model, test_pairs, beam=1)
    t2 = time.perf_counter()
    beam_acc = exact_match(model, test_pairs, beam=args.beam)
    t3 = time.perf_counter()
    print(f"trained {step} steps in {train_s:.0f}s")
    print(f"test exact match on {len(test_pairs)} new dates: greedy {greedy_acc:.1%} "
          f"({t2 - t1:.1f}s), beam search k={args.beam} {beam_acc:.1%} ({t3 - t2:.1f}s)")
    src, _ = batchify(test_pairs[:5])
    for (s, t), o in zip(test_pairs[:5], model.beam_search(src, beam_size=args.beam)):
        print(f"  {s:>24} -> {TGT.decode(o)}  {'ok' if TGT.decode(o) == t else 'expected ' + t}")

    heatmap = save_heatmap(model, out_dir / "attention_heatmap.png")
    if heatmap is not None:
        print(f"wrote {heatmap}")
    graph, note = save_decoder_step(model, out_dir)
    print(f"wrote {graph}" if graph is not None else note)

    results = {"steps": step, "train_seconds": round(train_s, 1), "greedy_accuracy": greedy_acc,
               "beam_accuracy": beam_acc, "beam_size": args.beam, "test_size": len(test_pairs),
               "total_seconds": round(time.perf_counter() - t0, 1), "parameters": n_params,
               "history": history, "heatmap": str(heatmap) if heatmap is not None else None,
               "decoder_step": str(graph) if graph is not None else None}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
