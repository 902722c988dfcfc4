"""Count device->host syncs under the CuPy stand-in (docs/gpu.md, "Host syncs"):

    PYTHONPATH=<shared/tools/fakecupy>:. python -m tinygrad_rnn.bench.syncs

Needs tools/fakecupy on PYTHONPATH (it counts transfers; real CuPy cannot). tests/test_syncs.py
asserts the targets; this prints the numbers quoted in the docs."""
from __future__ import annotations

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import backend, nn
from tinygrad_rnn.nn.seq2seq import Seq2Seq


def _syncs() -> int:
    return sum(v for k, v in backend._import_cupy()._stats().items() if k != "h2d")


def count(f) -> int:
    """Device->host syncs made by f()."""
    before = _syncs()
    f()
    return _syncs() - before


def measure() -> dict:
    tg.manual_seed(0)
    out = {}
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        layer = cls(4, 8, device="cuda")
        x = tg.randn(10, 3, 4, device="cuda", requires_grad=True)

        def layer_step() -> None:
            y, _ = layer(x)
            (y * y).sum().backward()
        out[f"{cls.__name__} layer forward+backward (T=10)"] = count(layer_step)
    model = Seq2Seq(12, 12, embed_size=8, hidden_size=16, device="cuda")
    rng = np.random.default_rng(0)
    for steps in (5, 20):
        src, tgt = rng.integers(3, 12, (4, steps)), rng.integers(3, 12, (4, steps))
        src[1, -2:] = 0  # padded: the attention mask is used at every decoder step

        def train_step() -> None:
            model.loss(src, tgt).backward()
        train_step()  # warm-up
        out[f"Seq2Seq training step, T={steps}"] = count(train_step)
    src = rng.integers(3, 12, (4, 7))
    src[1, -2:] = 0
    model.out.bias.data[model.eos_idx] = -1e4  # no eos: every call decodes the full 20 steps
    out["greedy, 20 steps"] = count(lambda: model.greedy(src, max_len=20))
    out["beam search (beam 3), 20 steps"] = count(lambda: model.beam_search(src, beam_size=3, max_len=20))
    return out


def main() -> int:
    cp = backend._import_cupy()
    if cp is None or not hasattr(cp, "_stats"):
        print("needs the CuPy stand-in (tools/fakecupy) first on PYTHONPATH: it counts the syncs")
        return 1
    for what, n in measure().items():
        print(f"{what:<40} {n:4d} syncs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
