"""Per-op overhead of the engine, against PyTorch in the same process, robust to a busy machine.

    python -m tinygrad_rnn.bench.overhead [--runs 5] [--label after] [--record docs/per_op_overhead.json]

A chain of n ops (add, then mul, of (4, 4) float32 tensors), forward + backward, as
`python -m tinygrad_rnn.bench` measures it; here each figure is the minimum over many repeats of
the calling thread's CPU time (time.thread_time), which other processes on a shared machine
inflate far less than wall time, and every run also reports PyTorch's figure from the same run
(CPU autograd runs in the calling thread). The garbage collector stays on, as in user code.
`add` saves nothing for backward; `mul` saves both inputs (the version checks' case);
`transpose` returns a view of its input (the version counter is shared: `--ops transpose`).
The script imports `tinygrad_rnn` absolutely, so it can also time another checkout:
`PYTHONPATH=/path/to/other python tinygrad_rnn/bench/overhead.py --label before`.
"""
from __future__ import annotations

import argparse
import gc
import json
import pathlib
import statistics
import subprocess
import time

import numpy as np

import tinygrad_rnn as tg


STEPS = {  # one op per step; `transpose` makes a view of its input (shares its version counter)
    "add": lambda c, w: c + w,
    "mul": lambda c, w: c * w,
    "transpose": lambda c, w: c.transpose(0, 1),
}


def _chain(x, w, n: int, op: str):
    step = STEPS[op]

    def run() -> None:
        c = x
        for _ in range(n):
            c = step(c, w)
        c.sum().backward()
        x.grad = w.grad = None
    return run


def measure(n: int = 2000, reps: int = 25, ops: tuple = ("add", "mul")) -> dict:
    """us per op for each (implementation, op): min over `reps` of thread CPU time / n."""
    impls = {}
    for op in ops:
        a = tg.Tensor(np.ones((4, 4), np.float32), requires_grad=True)
        b = tg.Tensor(np.ones((4, 4), np.float32), requires_grad=True)
        impls[f"tinygrad_rnn {op}"] = _chain(a, b, n, op)
    try:
        import torch  # noqa: PLC0415

        for op in ("add", "mul"):
            if op not in ops:
                continue
            ta = torch.ones(4, 4, requires_grad=True)
            tb = torch.ones(4, 4, requires_grad=True)
            impls[f"torch {op}"] = _chain(ta, tb, n, op)
    except ImportError:
        pass
    times: dict = {k: [] for k in impls}
    for f in impls.values():
        f()  # warm-up
    for _ in range(reps):
        for k, f in impls.items():  # interleaved: slow phases of the machine hit every side
            gc.collect()
            t0 = time.thread_time()
            f()
            times[k].append(time.thread_time() - t0)
    return {k: min(v) / n * 1e6 for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinygrad_rnn.bench.overhead", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="independent measurements (each a min of --reps)")
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--label", default="current")
    ap.add_argument("--ops", default="add,mul", help=f"comma-separated, from {list(STEPS)}")
    ap.add_argument("--no-bench", action="store_true", help="skip the bench's own wall-time figure")
    ap.add_argument("--record", help="JSON file to add this label's runs to")
    args = ap.parse_args(argv)
    runs = []
    for i in range(args.runs):
        r = measure(reps=args.reps, ops=tuple(args.ops.split(",")))
        if not args.no_bench:  # the figure `python -m tinygrad_rnn.bench` prints (wall, median of 5)
            from tinygrad_rnn.bench.run import per_op_overhead  # noqa: PLC0415

            for k, v in per_op_overhead(20000).items():
                if not k.startswith("numpy"):
                    r[f"bench wall {k.split()[0]} add"] = v
        runs.append(r)
        line = "  ".join(f"{k} {v:.2f}" for k, v in r.items())
        for op in ("add", "mul"):
            if f"torch {op}" in r:
                line += f"  | {op} ratio {r[f'tinygrad_rnn {op}'] / r[f'torch {op}']:.2f}"
        print(f"run {i + 1}: {line} (us per op)", flush=True)
    summary = {k: {"min": min(r[k] for r in runs), "median": statistics.median(r[k] for r in runs),
                   "max": max(r[k] for r in runs)} for k in runs[0]}
    for op in ("add", "mul"):
        if f"torch {op}" in runs[0]:
            ratios = [r[f"tinygrad_rnn {op}"] / r[f"torch {op}"] for r in runs]
            summary[f"ratio {op}"] = {"min": min(ratios), "median": statistics.median(ratios),
                                      "max": max(ratios)}
    for k, v in summary.items():
        print(f"{k:18s} min {v['min']:.2f}  median {v['median']:.2f}  max {v['max']:.2f}")
    if args.record:
        path = pathlib.Path(args.record)
        data = json.loads(path.read_text()) if path.exists() else {}
        try:
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=pathlib.Path(tg.__file__).parent).stdout.strip()
        except OSError:
            rev = ""
        data[args.label] = {"package": str(pathlib.Path(tg.__file__).parent), "commit": rev,
                            "runs": runs, "summary": summary}
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
