"""Classify real data as sequences: scikit-learn's 8x8 handwritten digits, read row by row.

Each 8x8 image becomes a sequence of 8 time steps with 8 features (one pixel row per step, top to
bottom; `--read columns` reads it left to right instead). A bidirectional GRU reads the sequence
both ways; the final hidden states of the two directions (each has seen the whole image, from
opposite ends) are concatenated and a Linear layer maps them to the 10 classes. Trained with Adam
and cross-entropy on 80% of the 1797 images, tested on the other 20% (a stratified split).

The digits ship inside scikit-learn (no download), an optional dependency of this example:

    pip install "tinygrad-rnn[sklearn]"
    python examples/sequence_classification.py                 # run time: docs/examples.md
    python examples/sequence_classification.py --unidirectional --read columns

Writes sequence_classification.png (learning curves, confusion matrix, misclassified test images),
model.ckpt and results.json (the accuracies, the mistakes, the run's time and machine) to --out
(default out/sequence_classification).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import Run, make_parser, parse, progress, pyplot  # noqa: E402

import numpy as np  # noqa: E402 - after _common, which limits BLAS threads

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, optim  # noqa: E402

NAME = "sequence_classification"


def load_digits_as_sequences(read: str, seed: int, test_size: float = 0.2):
    """(x_train, y_train, x_test, y_test, images_test); x is (N, 8, 8) float32 in [0, 1],
    time along axis 1 (rows, or columns with read='columns')."""
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415 - optional dependency
        from sklearn.model_selection import train_test_split  # noqa: PLC0415
    except ImportError:
        raise SystemExit(f"{NAME}: this example needs scikit-learn, which ships the digits data set; "
                         f'install it with: pip install "tinygrad-rnn[sklearn]"  '
                         f"(or pip install scikit-learn)") from None
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)          # (1797, 8, 8), pixels 0..16
    x = images if read == "rows" else images.transpose(0, 2, 1)
    idx = np.arange(len(x))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=digits.target)
    return x[tr], digits.target[tr], x[te], digits.target[te], images[te]


class DigitGRU(nn.Module):
    """(B, 8, 8) batch-first sequences -> (B, 10) logits from the final state(s) of a GRU."""

    def __init__(self, hidden: int, bidirectional: bool) -> None:
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), 10)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        _, h_n = self.gru(x)                    # (directions, B, H): forward, then reverse
        h = h_n.permute(1, 0, 2).reshape(h_n.shape[1], -1)
        return self.head(h)


def accuracy_and_predictions(model: DigitGRU, x: np.ndarray, y: np.ndarray, device: str
                             ) -> tuple[float, float, np.ndarray]:
    model.eval()
    with tg.no_grad():
        logits = model(tg.Tensor(x, device=device))
        loss = nn.F.cross_entropy(logits, tg.Tensor(y, device=device)).item()
        pred = logits.numpy().argmax(1)
    model.train()
    return float(np.mean(pred == y)), loss, pred


def parse_args(argv: list[str] | None):
    p = make_parser(NAME, __doc__)
    p.add_argument("--read", choices=("rows", "columns"), default="rows",
                   help="one time step per pixel row (default) or per column")
    p.add_argument("--unidirectional", action="store_true", help="a forward-only GRU")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    args = parse(p, argv)
    if args.smoke:
        args.epochs, args.hidden = 2, 16
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    run = Run(args, NAME)
    out = run.out
    x_tr, y_tr, x_te, y_te, img_te = load_digits_as_sequences(args.read, args.seed)
    if args.smoke:
        x_tr, y_tr = x_tr[:256], y_tr[:256]
    bidir = not args.unidirectional
    print(f"digits: {len(x_tr)} training / {len(x_te)} test images, each read as 8 steps x 8 "
          f"features ({args.read}); {'bidirectional' if bidir else 'forward-only'} GRU, "
          f"hidden {args.hidden}")

    model = DigitGRU(args.hidden, bidir).to(args.device)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    hist = {"train_loss": [], "train_acc": [], "test_acc": []}
    steps_per_epoch = -(-len(x_tr) // args.batch)
    bar = progress(total=args.epochs * steps_per_epoch, desc=NAME)
    for epoch in range(1, args.epochs + 1):
        for g in opt.param_groups:                 # halve the step size for the last third
            g["lr"] = args.lr * (0.5 if epoch > 2 * args.epochs // 3 else 1.0)
        order = rng.permutation(len(x_tr))
        losses, correct = [], 0
        for i in range(0, len(order), args.batch):
            b = order[i:i + args.batch]
            logits = model(tg.Tensor(x_tr[b], device=args.device))
            loss = nn.F.cross_entropy(logits, tg.Tensor(y_tr[b], device=args.device))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            losses.append(loss.item() * len(b))
            correct += int((logits.numpy().argmax(1) == y_tr[b]).sum())
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        test_acc, test_loss, _ = accuracy_and_predictions(model, x_te, y_te, args.device)
        hist["train_loss"].append(sum(losses) / len(x_tr))
        hist["train_acc"].append(correct / len(x_tr))
        hist["test_acc"].append(test_acc)
        if epoch == 1 or epoch % 5 == 0 or epoch == args.epochs:
            bar.write(f"epoch {epoch:3d}: train loss {hist['train_loss'][-1]:.3f}, train accuracy "
                      f"{hist['train_acc'][-1]:.1%}, test accuracy {test_acc:.1%}")
    bar.close()

    test_acc, test_loss, pred = accuracy_and_predictions(model, x_te, y_te, args.device)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y_te, pred), 1)
    print(f"test accuracy {test_acc:.1%} ({int((pred == y_te).sum())}/{len(y_te)}), test loss "
          f"{test_loss:.3f}")
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("     " + " ".join(f"{d:3d}" for d in range(10)))
    for d in range(10):
        print(f"  {d}: " + " ".join(f"{v:3d}" if v else "  ." for v in confusion[d]))

    tg.save({"model": model.state_dict(), "args": {"hidden": args.hidden, "bidirectional": bidir,
                                                    "read": args.read},
             "test_accuracy": test_acc}, out / "model.ckpt")
    run.wrote(out / "model.ckpt")

    plt = pyplot()
    if plt is not None:
        wrong = np.flatnonzero(pred != y_te)[:8]
        fig = plt.figure(figsize=(10, 4.4), dpi=90)
        grid = fig.add_gridspec(2, 8, height_ratios=[3, 1.1])
        ax = fig.add_subplot(grid[0, :4])
        ep = np.arange(1, args.epochs + 1)
        ax.plot(ep, 100 * np.array(hist["train_acc"]), label="train accuracy", color="tab:blue")
        ax.plot(ep, 100 * np.array(hist["test_acc"]), label="test accuracy", color="tab:orange")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot(ep, hist["train_loss"], color="tab:gray", ls="--", label="train loss")
        ax2.set_ylabel("train loss (cross-entropy)", color="tab:gray")
        ax.legend(loc="center right", fontsize=8)
        ax.set_title(f"{'Bi' if bidir else 'Forward '}GRU({args.hidden}) on 8x8 digits "
                     f"({args.read}): test {test_acc:.1%}", fontsize=10)
        cx = fig.add_subplot(grid[0, 4:])
        cx.imshow(confusion, cmap="Blues")
        for (i, j), v in np.ndenumerate(confusion):
            if v:
                cx.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > confusion.max() / 2 else "black")
        cx.set_xticks(range(10))
        cx.set_yticks(range(10))
        cx.set_xlabel("predicted digit")
        cx.set_ylabel("true digit")
        cx.set_title("test confusion matrix", fontsize=10)
        for k in range(8):
            a = fig.add_subplot(grid[1, k])
            a.axis("off")
            if k < len(wrong):
                j = wrong[k]
                a.imshow(img_te[j], cmap="gray_r")
                a.set_title(f"true {y_te[j]}, said {pred[j]}", fontsize=7)
        fig.tight_layout(h_pad=2.5)
        if len(wrong):  # a caption centred above the row of images, placed once the layout is fixed
            top = fig.axes[-1].get_position().y1
            fig.text(0.5, top + 0.045, f"misclassified test images ({len(np.flatnonzero(pred != y_te))} "
                     f"of {len(y_te)}; the first {len(wrong)})", ha="center", fontsize=9)
        fig.savefig(out / f"{NAME}.png")
        plt.close(fig)
        run.wrote(out / f"{NAME}.png")

    mistakes = [(int(y_te[j]), int(pred[j])) for j in np.flatnonzero(pred != y_te)]
    result = {"test_accuracy": test_acc, "test_loss": test_loss, "train_loss": hist["train_loss"][-1]}
    record = run.finish({
        **result, "train_accuracy": hist["train_acc"][-1], "test_correct": int((pred == y_te).sum()),
        "test_size": len(y_te), "train_size": len(y_tr), "mistakes": mistakes,
        "mistakes_text": ", ".join(f"{'an' if t == 8 else 'a'} {t} {'read ' if not k else ''}as {p}"
                                   for k, (t, p) in enumerate(mistakes)),
        "test_accuracy_per_epoch": hist["test_acc"]})
    return {**result, "seconds": record["seconds"]}


if __name__ == "__main__":
    main()
