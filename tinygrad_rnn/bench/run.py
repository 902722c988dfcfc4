"""The benchmark: one training step of a recurrent layer (forward over T, loss = sum(out**2),
backward to every parameter), timed in ONE process with the implementations interleaved, so the
ratios hold on a noisy machine. Also: per-op overhead, peak memory, matmul floor, T-scaling.

Implementations: tinygrad_rnn's nn.LSTM/GRU/RNN (cells from primitives, autodiff backward); the
hand-written forward + analytic BPTT in reference.py (its gradients are checked against the
library's before timing); PyTorch's fused nn.LSTM/GRU/RNN and a PyTorch cell-from-primitives loop,
only if torch is importable (never a dependency).
Imports: the public package API, backend, reference.
"""
from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from .. import Tensor, backend, manual_seed, nn
from .reference import GATES, STEPS

CONFIGS = {  # (B, T, D, H)
    "small": (32, 50, 32, 32),
    "medium": (64, 100, 128, 256),
    "wide": (32, 200, 64, 512),
    "long": (8, 1000, 16, 64),
    "quick": (4, 12, 5, 6),   # CI smoke run: exercises every code path in well under a second
}
NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _sync(device: str) -> None:
    if device != "cpu":
        backend._cupy.cuda.Device(int(device[5:])).synchronize()


def make_layer(cell: str, D: int, H: int, device: str, dtype: str) -> Any:
    manual_seed(0)
    layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](D, H)
    return layer.to(device=device, dtype=dtype)


def lib_step(layer: Any, x: Tensor) -> float:
    for p in layer.parameters():
        p.grad = None
    out = layer(x)[0]
    loss = (out * out).sum()
    loss.backward()
    return loss


def lib_params(layer: Any) -> dict:
    return {n: getattr(layer, f"{n}_l0").data for n in NAMES}


def check_against_reference(cell: str, layer: Any, x: Tensor, tol: float) -> float:
    """Max relative gradient difference between the library and the hand-written BPTT."""
    lib_step(layer, x)
    _, ref = STEPS[cell](x.data, lib_params(layer))
    worst = 0.0
    for n in NAMES:
        g = backend.to_numpy(getattr(layer, f"{n}_l0").grad.data)
        r = backend.to_numpy(ref[n])
        worst = max(worst, float(np.abs(g - r).max() / (np.abs(r).max() + 1e-30)))
    if worst > tol:
        raise AssertionError(f"{cell}: library gradients differ from the hand-written BPTT by {worst:.2e}")
    return worst


def torch_skip_reason(device: str) -> str:
    """Why PyTorch's rows cannot run on `device` ("" when they can)."""
    try:
        import torch  # noqa: PLC0415 - optional reference, never a dependency
    except ImportError:
        return "PyTorch is not installed"
    if device != "cpu" and not torch.cuda.is_available():
        return f"this PyTorch ({torch.__version__}) has no CUDA support, so it cannot run on {device}"
    return ""


def _torch_impls(cell: str, x_np: np.ndarray, params: dict, device: str) -> dict:
    if torch_skip_reason(device):
        return {}
    import torch  # noqa: PLC0415 - optional reference, never a dependency
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dev = device  # "cpu" or "cuda:N": the same strings in PyTorch
    T, B, D = x_np.shape
    H = params["weight_hh"].shape[1]
    x = torch.tensor(backend.to_numpy(x_np), device=dev)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](D, H).to(dev, x.dtype)
    with torch.no_grad():
        for n in NAMES:
            getattr(mod, f"{n}_l0").copy_(torch.tensor(backend.to_numpy(params[n])))
    ps = {n: getattr(mod, f"{n}_l0") for n in NAMES}

    def fused() -> None:
        mod.zero_grad(set_to_none=True)
        out = mod(x)[0]
        (out * out).sum().backward()
        if dev != "cpu":
            torch.cuda.synchronize()

    def primitives() -> None:
        mod.zero_grad(set_to_none=True)
        xi = (x.reshape(T * B, D) @ ps["weight_ih"].T + ps["bias_ih"]).reshape(T, B, -1)
        h = torch.zeros(B, H, device=dev, dtype=x.dtype)
        c = torch.zeros_like(h)
        outs = []
        for t in range(T):
            gh = h @ ps["weight_hh"].T + ps["bias_hh"]
            if cell == "lstm":
                i, f, g, o = (xi[t] + gh).chunk(4, 1)
                c = f.sigmoid() * c + i.sigmoid() * g.tanh()
                h = o.sigmoid() * c.tanh()
            elif cell == "gru":
                ir, iz, inn = xi[t].chunk(3, 1)
                hr, hz, hn = gh.chunk(3, 1)
                r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
                n = (inn + r * hn).tanh()
                h = (1 - z) * n + z * h
            else:
                h = (xi[t] + gh).tanh()
            outs.append(h)
        out = torch.stack(outs)
        (out * out).sum().backward()
        if dev != "cpu":
            torch.cuda.synchronize()
    return {"torch fused": fused, "torch primitives": primitives}


def time_interleaved(impls: dict, reps: int) -> dict:
    """Median seconds per call of each implementation, calls interleaved round-robin."""
    times: dict = {k: [] for k in impls}
    for f in impls.values():  # warm-up (thread pools, allocator, caches)
        f()
    for _ in range(reps):
        for k, f in impls.items():
            gc.collect()
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_floor(cell: str, B: int, T: int, D: int, H: int, device: str, dtype: str, reps: int) -> float:
    """Seconds for just the matmuls of one step (same shapes): the floor any implementation pays."""
    xp = backend.xp_for(device)
    G = GATES[cell] * H
    rng = backend.rng(device)
    mk = lambda *s: rng.standard_normal(s, dtype=np.float32).astype(dtype)  # noqa: E731
    x, Wih, Whh, h, g = mk(T * B, D), mk(G, D), mk(G, H), mk(B, H), mk(B, G)
    dG, Hs = mk(T * B, G), mk(T * B, H)

    def run() -> None:
        x @ Wih.T
        for _ in range(T):
            h @ Whh.T
            g @ Whh
        dG.T @ x
        dG.T @ Hs
        _sync(device)
    del xp
    return time_interleaved({"floor": run}, reps)["floor"]


def per_op_overhead(n: int = 20000) -> dict:
    """Microseconds per op for add of two (4, 4) tensors, forward + backward, in a chain of n ops
    (so the backward cost per op is measured, not the fixed cost of starting a backward). The
    chain is bench.overhead's, which times the same thing by CPU time over more repeats."""
    from .overhead import _chain  # noqa: PLC0415

    a = Tensor(np.ones((4, 4), np.float32), requires_grad=True)
    b = Tensor(np.ones((4, 4), np.float32), requires_grad=True)
    an, bn = a.data, b.data

    def bare() -> None:
        c = an
        for _ in range(n):
            c = c + bn
    impls = {"tinygrad_rnn": _chain(a, b, n, "add"), "numpy (forward only)": bare}
    try:
        import torch  # noqa: PLC0415
        impls["torch"] = _chain(torch.ones(4, 4, requires_grad=True),
                                torch.ones(4, 4, requires_grad=True), n, "add")
    except ImportError:
        pass
    return {k: v / n * 1e6 for k, v in time_interleaved(impls, 5).items()}


def peak_memory(impls: dict) -> dict:
    """Peak bytes allocated through NumPy (tracemalloc) during one call of each implementation."""
    out = {}
    for k, f in impls.items():
        gc.collect()
        tracemalloc.start()
        f()
        out[k] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def bench_config(name: str, cell: str = "lstm", device: str = "cpu", dtype: str = "float32",
                 reps: int = 5, torch_ok: bool = True) -> dict:
    B, T, D, H = CONFIGS[name]
    layer = make_layer(cell, D, H, device, dtype)
    xs = backend.to_device(np.random.default_rng(0).standard_normal((T, B, D)).astype(dtype), device)
    x = Tensor._make(xs)
    err = check_against_reference(cell, layer, x, 1e-3 if dtype == "float32" else 1e-9)
    params = lib_params(layer)

    def lib() -> None:
        lib_step(layer, x)
        _sync(device)

    def ref() -> None:
        STEPS[cell](xs, params)
        _sync(device)
    impls: dict[str, Callable] = {"tinygrad_rnn": lib, "numpy BPTT" if device == "cpu" else "cupy BPTT": ref}
    if torch_ok:
        impls.update(_torch_impls(cell, xs, params, device))
    times = time_interleaved(impls, reps)
    return {"config": name, "cell": cell, "device": device, "dtype": dtype, "shape": (B, T, D, H),
            "grad_rel_err": err, "times_s": times,
            "floor_s": matmul_floor(cell, B, T, D, H, device, dtype, max(3, reps // 2))}


def scaling(cell: str = "lstm", device: str = "cpu", reps: int = 5) -> dict:
    """Per-timestep cost at T=1000 relative to T=100 (long config's B, D, H)."""
    B, _, D, H = CONFIGS["long"]
    layer = make_layer(cell, D, H, device, "float32")
    out = {}
    for T in (100, 1000):
        x = Tensor._make(backend.to_device(np.ones((T, B, D), np.float32), device))
        t = time_interleaved({"lib": lambda: lib_step(layer, x)}, reps)["lib"]
        out[T] = t / T
    return {"per_step_s": out, "ratio_1000_vs_100": out[1000] / out[100]}


def memory_long(cell: str = "lstm") -> dict:
    B, T, D, H = CONFIGS["long"]
    layer = make_layer(cell, D, H, "cpu", "float32")
    xs = np.random.default_rng(0).standard_normal((T, B, D)).astype(np.float32)
    x = Tensor._make(xs)
    params = lib_params(layer)
    lib_step(layer, x)
    return peak_memory({"tinygrad_rnn": lambda: lib_step(layer, x),
                        "numpy BPTT": lambda: STEPS[cell](xs, params)})
