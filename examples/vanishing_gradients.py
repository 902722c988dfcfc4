"""Vanishing and exploding gradients, measured: how the gradient of a loss at the last step
shrinks (or grows) as backpropagation carries it back through time, for several recurrent models.

    python examples/vanishing_gradients.py                # T = 100 (run times: docs/examples.md)
    python examples/vanishing_gradients.py --steps 300 --hidden 64

For each model it runs the same input sequence (T steps, batch 8) one step at a time, takes
L = <v, h_T> (v a fixed random unit vector, so every model starts from ||dL/dh_T|| = 1) and
measures ||dL/dh_t|| at every step t with `viz.gradient_flow`. The lecture notes' argument is

    dL/dh_t = prod_{k=t+1..T} W_hh^T diag(tanh'(a_k)) dL/dh_T,
    so ||dL/dh_t|| <= prod_k ||W_hh||_2 max|tanh'(a_k)| ||dL/dh_T||,

which vanishes geometrically when the factor is below 1 and can explode when it is above 1. The
script prints, per model, the ratio ||dL/dh_0|| / ||dL/dh_T|| and the average factor per step
back, and checks the bound for the vanilla RNN. Models: vanilla tanh RNN (default init), the same
with orthogonal W_hh, IRNN (ReLU, identity W_hh, zero biases), LSTM (default init, and with the
forget gate biased open), GRU, and a ReLU RNN with W_hh = 1.1 I whose gradient explodes, with the
effect of gradient clipping (nn.utils.clip_grad_norm_) on it.

Writes to --out (default out/vanishing_gradients): gradient_flow.png, decay_ratios.md and
results.json (the ratios, the bound, the run's time and machine).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import Run, make_parser, parse, progress, pyplot  # noqa: E402

import numpy as np  # noqa: E402 - after _common, which limits BLAS threads

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn, viz  # noqa: E402

NAME = "vanishing_gradients"
EXPLODING = "RNN relu, W_hh = 1.1 I (exploding)"


def _vanilla(D: int, H: int) -> nn.Module:
    return nn.RNN(D, H)


def _orthogonal(D: int, H: int) -> nn.Module:
    m = nn.RNN(D, H)
    nn.init.orthogonal_(m.weight_hh_l0)           # preserves norms: only tanh' shrinks the gradient
    return m


def _irnn(D: int, H: int) -> nn.Module:
    m = nn.RNN(D, H, nonlinearity="relu")         # Le et al. 2015: identity W_hh, zero biases, ReLU
    nn.init.identity_(m.weight_hh_l0)
    nn.init.normal_(m.weight_ih_l0, 0.0, 0.01)
    nn.init.zeros_(m.bias_ih_l0)
    nn.init.zeros_(m.bias_hh_l0)
    return m


def _lstm_open(D: int, H: int) -> nn.Module:
    m = nn.LSTM(D, H)
    with tg.no_grad():
        m.bias_ih_l0[H:2 * H] = 3.0               # gate order i, f, g, o: f = sigmoid(3 + ...) ~ 0.95
    return m


def _exploding(D: int, H: int) -> nn.Module:
    m = nn.RNN(D, H, nonlinearity="relu")
    nn.init.identity_(m.weight_hh_l0, gain=1.1)   # every step back multiplies the gradient by 1.1
    nn.init.normal_(m.weight_ih_l0, 0.0, 0.01)
    nn.init.constant_(m.bias_ih_l0, 0.1)          # positive inputs keep every ReLU unit active
    nn.init.zeros_(m.bias_hh_l0)
    return m


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "RNN tanh, default init": _vanilla,
    "RNN tanh, orthogonal W_hh": _orthogonal,
    "IRNN (relu, identity W_hh)": _irnn,
    "LSTM, default init": lambda D, H: nn.LSTM(D, H),
    "LSTM, forget-gate bias 3": _lstm_open,
    "GRU, default init": lambda D, H: nn.GRU(D, H),
    EXPLODING: _exploding,
}


def measure(steps: int, hidden: int, device: str, clip: float, batch: int = 8,
            inputs: int = 4, show_progress: bool = True) -> tuple[dict, dict]:
    """GradientFlow per model (same input for all) and the models themselves."""
    x = tg.randn(steps, batch, inputs, device=device)
    flows, models = {}, {}
    items = progress(MODELS.items(), total=len(MODELS), desc="measuring") if show_progress \
        else MODELS.items()
    for label, build in items:
        model = build(inputs, hidden).to(device)
        models[label] = model
        flows[label] = viz.gradient_flow(model, x, clip=clip, label=label)
    return flows, models


def decay(flow: viz.GradientFlow) -> tuple[float, float]:
    """(||dL/dh_0|| / ||dL/dh_T||, the geometric-mean factor per step back)."""
    g = flow.grad_norms
    ratio = float(g[0] / g[-1])
    return ratio, ratio ** (1.0 / (len(g) - 1)) if ratio > 0 else 0.0


def vanilla_bound(model: nn.Module, flow: viz.GradientFlow) -> tuple[float, float]:
    """(||W_hh||_2, the measured average factor per step back) for a vanilla tanh RNN: each step
    back multiplies by W_hh^T diag(1 - h^2) and |tanh'| <= 1, so the factor is at most ||W_hh||_2."""
    w = model.weight_hh_l0.numpy().astype(np.float64)
    return float(np.linalg.norm(w, 2)), decay(flow)[1]


def table(flows: dict) -> list[str]:
    rows = ["| model | ‖dL/dh_0‖ / ‖dL/dh_T‖ | factor per step back | cell state ‖dL/dc_0‖ / ‖dL/dc_T‖ "
            "| total grad norm | clip_grad_norm_ factor |",   # ‖, not ||: a | would end the cell
            "|---|---|---|---|---|---|"]
    for label, f in flows.items():
        ratio, factor = decay(f)
        cell = f"{f.cell_grad_norms[0] / f.cell_grad_norms[-1]:.1e}" if f.cell_grad_norms is not None else "-"
        rows.append(f"| {label} | {ratio:.1e} | {factor:.3f} | {cell} | {f.total_norm:.3g} | "
                    f"{f.clip_coef:.2g} |")
    return rows


def plot(flows: dict, steps: int, hidden: int, clip: float, path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(12.5, 5.0), dpi=100)
    viz.plot_gradient_flow(flows, ax=a, title=f"||dL/dh_t|| for L = <v, h_T>  (T = {steps}, H = {hidden})\n"
                                              f"how much of the last step's gradient reaches step t")
    a.legend(fontsize=6.5, loc="lower right")
    boom, vanilla = flows[EXPLODING], flows["RNN tanh, default init"]
    viz.plot_gradient_flow({EXPLODING: boom}, quantity="weight", clipped=True, ax=b,
                           title=f"each step's term of W_hh.grad (the terms sum to W_hh.grad)\n"
                                 f"clip_grad_norm_({clip:g}) scales every term by the same "
                                 f"{boom.clip_coef:.1e}")
    norms = vanilla.weight_term_norms["weight_hh_l0"]
    b.semilogy(vanilla.steps, np.where(norms > 0, norms, np.nan), color="C1",
               label="RNN tanh, default init: only the last ~10 steps contribute")
    b.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(NAME, __doc__)
    parser.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden size H (default 32)")
    parser.add_argument("--clip", type=float, default=1.0, help="max_norm for clip_grad_norm_")
    args = parse(parser, argv)
    if args.smoke:
        args.steps, args.hidden = 12, 8
    run = Run(args, NAME)
    out = run.out
    flows, models = measure(args.steps, args.hidden, args.device, args.clip)

    rows = table(flows)
    print("\n".join(rows))
    w_norm, factor = vanilla_bound(models["RNN tanh, default init"], flows["RNN tanh, default init"])
    bound_line = (f"vanilla tanh RNN: measured factor per step back {factor:.3f} <= lecture-notes bound "
                  f"||W_hh||_2 * max|tanh'| <= ||W_hh||_2 = {w_norm:.3f}")
    assert factor <= w_norm + 1e-9, bound_line
    print(bound_line)
    boom = flows[EXPLODING]
    clip_line = (f"exploding RNN: total gradient norm {boom.total_norm:.3g}; clip_grad_norm_"
                 f"({args.clip:g}) multiplies every gradient by {boom.clip_coef:.2g}, so the update has "
                 f"norm {boom.total_norm * boom.clip_coef:.3g}: clipping bounds the step, it does not "
                 f"change which time steps dominate it")
    print(clip_line)

    written = []
    md = out / "decay_ratios.md"
    md.write_text(f"T = {args.steps}, H = {args.hidden}, batch 8, seed {args.seed}\n\n"
                  + "\n".join(rows) + f"\n\n{bound_line}\n\n{clip_line}\n", encoding="utf-8")
    written.append(md)
    png = plot(flows, args.steps, args.hidden, args.clip, out / "gradient_flow.png")
    if png is not None:
        written.append(png)
    print()
    for p in written:
        run.wrote(p)
    models_out = {}
    for label, f in flows.items():
        ratio, per_step = decay(f)
        models_out[label] = {"ratio": ratio, "factor": per_step, "total_norm": f.total_norm,
                             "clip_coef": f.clip_coef}
    run.finish({"models": models_out, "table": "\n".join(rows), "vanilla_factor": factor,
                "vanilla_w_hh_norm": w_norm, "exploding_total_norm": boom.total_norm,
                "exploding_clip_coef": boom.clip_coef})
    return 0


if __name__ == "__main__":
    sys.exit(main())
