"""Hand-written forward + analytic BPTT for one layer of LSTM / GRU / vanilla RNN: the
"no framework" reference of the benchmark. Fused gate weights (PyTorch layout and gate order),
input projection of all steps in one matmul, weight gradients of all steps in one matmul each.

The loss is sum(out ** 2) over all outputs. Works on NumPy or CuPy arrays (`xp` from the input).
Imports: backend only; this module deliberately shares no code with the autodiff library.
"""
from __future__ import annotations

from typing import Any

from .. import backend


def _sig(x: Any) -> Any:
    xp = backend.array_module(x)
    y = xp.tanh(x * 0.5)
    y *= 0.5
    y += 0.5
    return y


def lstm_step(x: Any, p: dict) -> tuple[float, dict]:
    """x (T, B, D); p has weight_ih (4H, D), weight_hh (4H, H), bias_ih, bias_hh (4H,)."""
    xp = backend.array_module(x)
    T, B, D = x.shape
    Whh = p["weight_hh"]
    H = Whh.shape[1]
    gx = (x.reshape(T * B, D) @ p["weight_ih"].T + (p["bias_ih"] + p["bias_hh"])).reshape(T, B, 4 * H)
    acts = xp.empty((T, B, 4 * H), dtype=x.dtype)   # i, f, g, o after their nonlinearity
    cs = xp.empty((T + 1, B, H), dtype=x.dtype)
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    tcs = xp.empty((T, B, H), dtype=x.dtype)
    cs[0] = 0
    hs[0] = 0
    for t in range(T):
        g = gx[t] + hs[t] @ Whh.T
        a = acts[t]
        a[:, :2 * H] = _sig(g[:, :2 * H])
        a[:, 2 * H:3 * H] = xp.tanh(g[:, 2 * H:3 * H])
        a[:, 3 * H:] = _sig(g[:, 3 * H:])
        i, f, gg, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        cs[t + 1] = f * cs[t] + i * gg
        tcs[t] = xp.tanh(cs[t + 1])
        hs[t + 1] = o * tcs[t]
    out = hs[1:]
    loss = float((out * out).sum())
    dgates = xp.empty_like(acts)
    dh_next = xp.zeros((B, H), dtype=x.dtype)
    dc_next = xp.zeros((B, H), dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        a = acts[t]
        i, f, gg, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        dh = 2 * out[t] + dh_next
        tc = tcs[t]
        dc = dc_next + dh * o * (1 - tc * tc)
        d = dgates[t]
        d[:, :H] = dc * gg * i * (1 - i)
        d[:, H:2 * H] = dc * cs[t] * f * (1 - f)
        d[:, 2 * H:3 * H] = dc * i * (1 - gg * gg)
        d[:, 3 * H:] = dh * tc * o * (1 - o)
        dc_next = dc * f
        dh_next = d @ Whh
    dg = dgates.reshape(T * B, 4 * H)
    db = dg.sum(0)
    return loss, {"weight_ih": dg.T @ x.reshape(T * B, D), "weight_hh": dg.T @ hs[:-1].reshape(T * B, H),
                  "bias_ih": db, "bias_hh": db.copy()}


def gru_step(x: Any, p: dict) -> tuple[float, dict]:
    """PyTorch's GRU (reset_after): r, z, n = gates; n = tanh(Wi_n x + b_in + r * (W_hn h + b_hn));
    h' = (1 - z) * n + z * h."""
    xp = backend.array_module(x)
    T, B, D = x.shape
    Whh, bhh = p["weight_hh"], p["bias_hh"]
    H = Whh.shape[1]
    gi = (x.reshape(T * B, D) @ p["weight_ih"].T + p["bias_ih"]).reshape(T, B, 3 * H)
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = 0
    rz = xp.empty((T, B, 2 * H), dtype=x.dtype)
    ns = xp.empty((T, B, H), dtype=x.dtype)
    ghn = xp.empty((T, B, H), dtype=x.dtype)
    for t in range(T):
        gh = hs[t] @ Whh.T + bhh
        rz[t] = _sig(gi[t, :, :2 * H] + gh[:, :2 * H])
        r, z = rz[t, :, :H], rz[t, :, H:]
        ghn[t] = gh[:, 2 * H:]
        ns[t] = xp.tanh(gi[t, :, 2 * H:] + r * ghn[t])
        hs[t + 1] = (1 - z) * ns[t] + z * hs[t]
    out = hs[1:]
    loss = float((out * out).sum())
    dgi = xp.empty((T, B, 3 * H), dtype=x.dtype)
    dgh = xp.empty((T, B, 3 * H), dtype=x.dtype)
    dh_next = xp.zeros((B, H), dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        r, z, n = rz[t, :, :H], rz[t, :, H:], ns[t]
        dh = 2 * out[t] + dh_next
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (hs[t] - n) * z * (1 - z)
        dr = dn * ghn[t] * r * (1 - r)
        dgi[t, :, :H] = dr
        dgi[t, :, H:2 * H] = dz
        dgi[t, :, 2 * H:] = dn
        dgh[t, :, :H] = dr
        dgh[t, :, H:2 * H] = dz
        dgh[t, :, 2 * H:] = dn * r
        dh_next = dh * z + dgh[t] @ Whh
    di, dhh = dgi.reshape(T * B, 3 * H), dgh.reshape(T * B, 3 * H)
    return loss, {"weight_ih": di.T @ x.reshape(T * B, D), "weight_hh": dhh.T @ hs[:-1].reshape(T * B, H),
                  "bias_ih": di.sum(0), "bias_hh": dhh.sum(0)}


def rnn_step(x: Any, p: dict) -> tuple[float, dict]:
    """Elman RNN with tanh: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)."""
    xp = backend.array_module(x)
    T, B, D = x.shape
    Whh = p["weight_hh"]
    H = Whh.shape[1]
    gx = (x.reshape(T * B, D) @ p["weight_ih"].T + (p["bias_ih"] + p["bias_hh"])).reshape(T, B, H)
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = 0
    for t in range(T):
        hs[t + 1] = xp.tanh(gx[t] + hs[t] @ Whh.T)
    out = hs[1:]
    loss = float((out * out).sum())
    da = xp.empty((T, B, H), dtype=x.dtype)
    dh_next = xp.zeros((B, H), dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        dh = 2 * out[t] + dh_next
        da[t] = dh * (1 - out[t] * out[t])
        dh_next = da[t] @ Whh
    d = da.reshape(T * B, H)
    db = d.sum(0)
    return loss, {"weight_ih": d.T @ x.reshape(T * B, D), "weight_hh": d.T @ hs[:-1].reshape(T * B, H),
                  "bias_ih": db, "bias_hh": db.copy()}


STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
