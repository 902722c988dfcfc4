"""python -m tinygrad_rnn.bench [--config small,medium,...] [--cell lstm|gru|rnn] [--device cpu|cuda]
[--dtype float32|float64] [--reps N] [--json] [--no-torch] [--skip-extras]"""
from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np

from .. import backend
from .run import CONFIGS, bench_config, memory_long, per_op_overhead, scaling, torch_skip_reason


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinygrad_rnn.bench", description=__doc__)
    ap.add_argument("--config", default="small,medium,wide,long",
                    help=f"comma-separated, from {list(CONFIGS)} (quick = tiny CI smoke run)")
    ap.add_argument("--cell", default="lstm", help="lstm, gru, rnn, or a comma-separated list")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    ap.add_argument("--markdown", action="store_true",
                    help="also print the results as the Markdown tables of docs/performance.md")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    ap.add_argument("--skip-extras", action="store_true",
                    help="skip per-op overhead, peak memory and T-scaling measurements")
    args = ap.parse_args(argv)
    device = backend.normalize_device(args.device)
    results: dict = {"machine": f"{platform.machine()} {platform.processor()}".strip(),
                     "numpy": np.__version__, "device": device, "steps": []}
    skip = "" if args.no_torch else torch_skip_reason(device)
    if skip:
        results["torch_skipped"] = skip
        print(f"note: PyTorch rows skipped: {skip}", file=sys.stderr)
    for cell in args.cell.split(","):
        for name in args.config.split(","):
            if name not in CONFIGS:
                ap.error(f"unknown config {name!r}; choose from {list(CONFIGS)}")
            r = bench_config(name, cell, device, args.dtype, args.reps, not args.no_torch)
            results["steps"].append(r)
            if not args.json:
                _print_step(r)
    quick = args.config == "quick"
    if not args.skip_extras and device == "cpu":
        results["per_op_us"] = per_op_overhead(2000 if quick else 20000)
        if not quick:
            results["peak_memory_long"] = {c: memory_long(c) for c in args.cell.split(",")}
            results["scaling"] = {c: scaling(c, device) for c in args.cell.split(",")}
        if not args.json:
            _print_extras(results)
    if args.json:
        json.dump(results, sys.stdout, indent=1, default=str)
        print()
    if args.markdown:
        print(markdown(results))
    return 0


def markdown(res: dict) -> str:
    """The results as Markdown tables (docs/performance.md is made from this output)."""
    impls = []
    for s in res["steps"]:
        impls += [k for k in s["times_s"] if k not in impls]
    lines = [f"| cell | config (B, T, D, H) | {' | '.join(impls)} | matmul floor |",
             "|---|---|" + "---|" * (len(impls) + 1)]
    for s in res["steps"]:
        ref = next(v for k, v in s["times_s"].items() if "BPTT" in k)
        cells = [f"{s['times_s'][k] * 1e3:.1f} ms ({s['times_s'][k] / ref:.2f}x)" if k in s["times_s"] else "-"
                 for k in impls]
        lines.append(f"| {s['cell']} | {s['config']} {tuple(s['shape'])} | {' | '.join(cells)} | "
                     f"{s['floor_s'] * 1e3:.1f} ms |")
    if "per_op_us" in res:
        lines += ["", "| per-op overhead, add of (4, 4), forward + backward | us per op |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in res["per_op_us"].items()]
    if "peak_memory_long" in res:
        lines += ["", "| peak memory, long config | tinygrad_rnn | hand-written BPTT | ratio |", "|---|---|---|---|"]
        for cell, m in res["peak_memory_long"].items():
            lines.append(f"| {cell} | {m['tinygrad_rnn'] / 2**20:.1f} MiB | {m['numpy BPTT'] / 2**20:.1f} MiB | "
                         f"{m['tinygrad_rnn'] / m['numpy BPTT']:.2f}x |")
    if "scaling" in res:
        lines += ["", "| per-timestep cost (long config's B, D, H) | T=100 | T=1000 | ratio |", "|---|---|---|---|"]
        for cell, sc in res["scaling"].items():
            ps = sc["per_step_s"]
            lines.append(f"| {cell} | {ps[100] * 1e6:.0f} us | {ps[1000] * 1e6:.0f} us | "
                         f"{sc['ratio_1000_vs_100']:.2f} |")
    return "\n".join(lines)


def _print_step(r: dict) -> None:
    B, T, D, H = r["shape"]
    times = r["times_s"]
    ref_key = next(k for k in times if "BPTT" in k)
    print(f"\n{r['cell'].upper()} {r['config']} (B={B}, T={T}, D={D}, H={H}) {r['dtype']} on {r['device']}; "
          f"gradients match the hand-written BPTT to {r['grad_rel_err']:.1e}")
    print(f"  {'implementation':<20} {'ms/step':>9} {'vs BPTT':>8}")
    for k, t in times.items():
        print(f"  {k:<20} {t * 1e3:9.2f} {t / times[ref_key]:7.2f}x")
    print(f"  {'matmul floor':<20} {r['floor_s'] * 1e3:9.2f} {r['floor_s'] / times[ref_key]:7.2f}x")


def _print_extras(res: dict) -> None:
    print("\nper-op overhead, add of two (4, 4) tensors (us per op):")
    for k, v in res["per_op_us"].items():
        print(f"  {k:<22} {v:6.2f}")
    for cell, mem in res.get("peak_memory_long", {}).items():
        ref = mem["numpy BPTT"]
        print(f"\npeak memory of one {cell} step at the long config (MiB, NumPy allocations):")
        for k, v in mem.items():
            print(f"  {k:<22} {v / 2**20:7.1f}  ({v / ref:.2f}x)")
    for cell, sc in res.get("scaling", {}).items():
        ps = sc["per_step_s"]
        print(f"\n{cell} per-timestep cost: T=100 {ps[100] * 1e6:.0f} us, T=1000 {ps[1000] * 1e6:.0f} us "
              f"-> ratio {sc['ratio_1000_vs_100']:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
