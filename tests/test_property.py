"""Property-based tests (hypothesis), against independent NumPy code:

* random compositions of ops on random mutually broadcastable shapes and random dtypes (float32,
  float64, int64 without grad): forward equals the same composition in NumPy (values and result
  dtype); gradients equal central finite differences of the NumPy composition (in float64) and
  have each leaf's shape and dtype;
* random recurrent configurations (RNN tanh/relu, LSTM with/without peepholes, GRU reset-after /
  notes variant; layers, bidirectional, batch_first, bias, lengths, h0, unbatched input): outputs
  and final states equal a NumPy reference of the cell equations that runs each sequence alone
  over its own length (packed-sequence semantics), and gradients equal finite differences of it.

Examples are few and derandomized (same examples on every run), so the file is fast and never
flaky; raise TG_PROPERTY_EXAMPLES (e.g. 500) for a long random search.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn  # noqa: E402

F = nn.F
_EXTRA = int(os.environ.get("TG_PROPERTY_EXAMPLES", "0"))


def _settings(n: int):
    if _EXTRA:
        return settings(max_examples=_EXTRA, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


# ============================================================================ op compositions
# name: (tinygrad_rnn version, NumPy version). Domains are kept safe (log/sqrt of positives,
# division by numbers >= 0.5) so that finite differences are meaningful.
UNARY = {
    "neg": (lambda t: -t, lambda a: -a),
    "exp": (lambda t: (t * 0.5).exp(), lambda a: np.exp(a * 0.5)),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "sigmoid": (lambda t: t.sigmoid(), _sig),
    "relu": (lambda t: t.relu(), lambda a: a * (a > 0)),
    "abs": (lambda t: t.abs(), np.abs),
    "log": (lambda t: (t * t + 0.5).log(), lambda a: np.log(a * a + 0.5)),
    "sqrt": (lambda t: (t * t + 0.25).sqrt(), lambda a: np.sqrt(a * a + 0.25)),
    "square": (lambda t: t * t, lambda a: a * a),
    "pow_scalar": (lambda t: (t * t + 0.5) ** 1.5, lambda a: (a * a + 0.5) ** 1.5),
    "clamp": (lambda t: t.clamp(-0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7)),
    "scale": (lambda t: 3.0 - t * 2.0, lambda a: 3.0 - a * 2.0),
}
BINARY = {
    "add": (lambda x, y: x + y, lambda a, b: a + b),
    "sub": (lambda x, y: x - y, lambda a, b: a - b),
    "mul": (lambda x, y: x * y, lambda a, b: a * b),
    "div": (lambda x, y: x / (y * y + 0.5), lambda a, b: a / (b * b + 0.5)),
    "maximum": (tg.maximum, np.maximum),
    "minimum": (tg.minimum, np.minimum),
    "where": (lambda x, y: tg.where(x > y, x, y * 2.0), lambda a, b: np.where(a > b, a, b * 2.0)),
    "pow": (lambda x, y: (x * x + 0.5) ** (y * 0.5), lambda a, b: (a * a + 0.5) ** (b * 0.5)),
}


def _tail_ops(ndim: int) -> list:
    """Shape-changing ops for the end of a composition: (name, tg fn, np fn)."""
    ops = [("none", lambda t: t, lambda a: a),
           ("mean", lambda t: t.mean(), lambda a: a.mean()),
           ("flatten", lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
           ("stack", lambda t: tg.stack([t, t * 2.0], 0), lambda a: np.stack([a, a * 2.0], 0))]
    if ndim >= 1:
        ops += [("sum_last", lambda t: t.sum(-1), lambda a: a.sum(-1)),
                ("sum_keep", lambda t: t.sum(0, keepdim=True), lambda a: a.sum(0, keepdims=True)),
                ("amax", lambda t: t.amax(-1), lambda a: a.max(-1)),
                ("softmax", lambda t: F.softmax(t, -1), lambda a: np.exp(a - a.max(-1, keepdims=True))
                 / np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True)),
                ("logsumexp", lambda t: F.logsumexp(t, -1),
                 lambda a: np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1)) + a.max(-1)),
                ("cat", lambda t: tg.cat([t, t * t], 0), lambda a: np.concatenate([a, a * a], 0)),
                ("reverse", lambda t: t[..., ::-1], lambda a: a[..., ::-1]),
                ("gather", lambda t: t[..., [0, 0, -1]], lambda a: a[..., [0, 0, -1]]),
                ("dot", lambda t: t.reshape(-1) @ t.reshape(-1), lambda a: a.reshape(-1) @ a.reshape(-1))]
    if ndim >= 2:
        ops += [("transpose", lambda t: t.transpose(0, -1), lambda a: np.swapaxes(a, 0, -1)),
                ("matmul", lambda t: t @ t.mT, lambda a: a @ np.swapaxes(a, -1, -2))]
    return ops


@st.composite
def compositions(draw):
    sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    min_side=1, max_side=3)).input_shapes
    da = draw(st.sampled_from(["float32", "float64"]))
    db = draw(st.sampled_from(["float32", "float64", "int64"]))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            steps.append(("u", draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, 9))))
        else:
            steps.append(("b", draw(st.sampled_from(sorted(BINARY))), draw(st.integers(0, 9)),
                          draw(st.integers(0, 9))))
    tail = draw(st.integers(0, 99))
    return sa, sb, da, db, seed, steps, tail


def _np_composition(steps, tail, ndim_y):
    tails = _tail_ops(ndim_y)

    def f(a, b):
        pool = [a, b]
        for step in steps:
            if step[0] == "u":
                pool.append(UNARY[step[1]][1](pool[step[2] % len(pool)]))
            else:
                pool.append(BINARY[step[1]][1](pool[step[2] % len(pool)], pool[step[3] % len(pool)]))
        return tails[tail % len(tails)][2](np.asarray(pool[-1]))
    return f


def _leaf_data(shape, dtype, rng):
    if dtype == "int64":
        return rng.integers(-3, 4, size=shape).astype(np.int64)
    return rng.uniform(-2, 2, size=shape).astype(dtype)


@_settings(150)
@given(compositions())
def test_random_op_compositions_match_numpy_and_finite_differences(case):
    sa, sb, da, db, seed, steps, tail = case
    rng = np.random.default_rng(seed)
    a_np, b_np = _leaf_data(sa, da, rng), _leaf_data(sb, db, rng)
    a = tg.Tensor(a_np, requires_grad=True)
    b = tg.Tensor(b_np, requires_grad=db != "int64")

    # tg: body, then a tail chosen among those valid for the body's rank
    pool = [a, b]
    for step in steps:
        if step[0] == "u":
            x = pool[step[2] % len(pool)]
            pool.append(UNARY[step[1]][0](x))
        else:
            x, y = pool[step[2] % len(pool)], pool[step[3] % len(pool)]
            pool.append(BINARY[step[1]][0](x, y))
    body = pool[-1]
    tails = _tail_ops(body.ndim)
    name, tail_tg, _ = tails[tail % len(tails)]
    out = tail_tg(body)
    f = _np_composition(steps, tail, body.ndim)
    ref = np.asarray(f(a_np, b_np))
    where = f"steps={steps}, tail={name}, shapes={sa},{sb}, dtypes={da},{db}"

    assert out.shape == ref.shape, where
    if db == "int64" and ref.dtype == np.float64 and out.dtype == np.float32:
        pass  # PyTorch's promotion: int64 with float32, or ints made float, are float32 (NumPy:
        #       float64); tests/test_dtypes.py checks those cases against PyTorch itself
    else:
        assert out.dtype == ref.dtype, where
    tol = 1e-4 if out.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol, err_msg=where)
    if out.dtype.kind != "f" or not out.requires_grad:
        return

    # backward: loss = sum(out * W), W fixed; compare with central differences in float64
    w = rng.uniform(-1, 1, size=ref.shape)
    (out * tg.Tensor(w.astype(out.dtype))).sum().backward()
    leaves = [(a, a_np)] + ([(b, b_np)] if b.requires_grad else [])
    a64, b64 = a_np.astype(np.float64), b_np.astype(np.float64) if db != "int64" else b_np

    def loss(x, y):
        return float((np.asarray(f(x, y), dtype=np.float64) * w).sum())

    eps = 1e-6
    for i, (t, arr) in enumerate(leaves):
        grad = t.grad.numpy() if t.grad is not None else np.zeros(arr.shape)  # None: unused leaf
        if t.grad is not None:
            assert t.grad.shape == arr.shape and t.grad.dtype == arr.dtype, where
        fd = np.zeros(arr.shape)
        base = [a64.copy(), b64.copy()]
        for idx in np.ndindex(arr.shape):
            plus, minus = [x.copy() for x in base], [x.copy() for x in base]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fd[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)
        scale = max(1.0, float(np.abs(fd).max()))
        gtol = 1e-3 if arr.dtype == np.float32 else 1e-5
        np.testing.assert_allclose(grad, fd, rtol=gtol, atol=gtol * scale,
                                   err_msg=f"d/d{'ab'[i]}: {where}")


def test_sigmoid_of_integer_tensor():
    np.testing.assert_allclose(tg.Tensor([0, 2]).sigmoid().numpy(), _sig(np.array([0, 2])))


def test_maximum_minimum_of_integer_tensors():
    a, b = tg.Tensor([1, 5, 3]), tg.Tensor([2, 5, 0])
    np.testing.assert_array_equal(tg.maximum(a, b).numpy(), [2, 5, 3])
    np.testing.assert_array_equal(tg.minimum(a, b).numpy(), [1, 5, 0])


@_settings(40)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=4),
       st.sampled_from(["add", "sub", "mul", "maximum"]))
def test_broadcast_gradients_reduce_to_each_input_shape(shapes, op):
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = tg.Tensor(a_np, requires_grad=True), tg.Tensor(b_np, requires_grad=True)
    out = BINARY[op][0](a, b)
    assert out.shape == shapes.result_shape
    out.sum().backward()
    # d/da sum(a op b) summed over the broadcast axes, computed with NumPy
    A, B = np.broadcast_to(a_np, shapes.result_shape), np.broadcast_to(b_np, shapes.result_shape)
    ga, gb = {"add": (np.ones_like(A), np.ones_like(B)), "sub": (np.ones_like(A), -np.ones_like(B)),
              "mul": (B, A), "maximum": ((A > B) * 1.0, (A <= B) * 1.0)}[op]

    def reduce_to(g, shape):
        g = g.sum(tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
        return g.sum(tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)
    np.testing.assert_allclose(a.grad.numpy(), reduce_to(ga, sa), rtol=1e-12)
    if op != "maximum":  # ties have no unique gradient; maximum's split is checked for a only
        np.testing.assert_allclose(b.grad.numpy(), reduce_to(gb, sb), rtol=1e-12)


# ====================================================================== recurrent layers
def np_cell(kind, opts, x, state, p):
    """One step of the cell equations for one sequence: x (D,), state tuple of (H,) arrays."""
    def lin(w, b, v):
        return w @ v + (b if b is not None else 0.0)
    if kind == "RNN":
        a = lin(p["weight_ih"], p["bias_ih"], x) + lin(p["weight_hh"], p["bias_hh"], state[0])
        return (np.tanh(a) if opts["nonlinearity"] == "tanh" else np.maximum(a, 0.0),)
    if kind == "LSTM":
        h, c = state
        i, f, g, o = np.split(lin(p["weight_ih"], p["bias_ih"], x) + lin(p["weight_hh"], p["bias_hh"], h), 4)
        if opts["peephole"]:
            i, f = i + p["weight_ci"] * c, f + p["weight_cf"] * c
        c2 = _sig(f) * c + _sig(i) * np.tanh(g)
        if opts["peephole"]:
            o = o + p["weight_co"] * c2
        return _sig(o) * np.tanh(c2), c2
    h = state[0]  # GRU
    hid = h.shape[0]
    gi = lin(p["weight_ih"], p["bias_ih"], x)
    w_hh, b_hh = p["weight_hh"], p["bias_hh"]
    gh = lin(w_hh, b_hh, h)
    r = _sig(gi[:hid] + gh[:hid])
    z = _sig(gi[hid:2 * hid] + gh[hid:2 * hid])
    if opts["reset_after"]:
        n = np.tanh(gi[2 * hid:] + r * gh[2 * hid:])
    else:
        n = np.tanh(gi[2 * hid:] + lin(w_hh[2 * hid:], None if b_hh is None else b_hh[2 * hid:], r * h))
    return ((1 - z) * n + z * h,)


def np_rnn(kind, opts, params, x, h0, lengths):
    """Reference layer: x (T, B, D) time-major; h0 tuple of (L*dirs, B, H); each sequence b runs
    alone over its first lengths[b] steps (reverse direction: from step lengths[b]-1 down to 0).
    Returns out (T, B, dirs*H) with zeros past each length, and the final states."""
    T, B = x.shape[:2]
    dirs = 2 if opts["bidirectional"] else 1
    finals = [np.zeros((opts["num_layers"] * dirs, B, opts["hidden_size"])) for _ in h0]
    inp = x
    for layer in range(opts["num_layers"]):
        outs = np.zeros((T, B, dirs * opts["hidden_size"]))
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {k: params.get(k + sfx) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                                   "weight_ci", "weight_cf", "weight_co")}
            for b in range(B):
                state = tuple(s[layer * dirs + d, b] for s in h0)
                order = range(lengths[b] - 1, -1, -1) if d else range(lengths[b])
                for t in order:
                    state = np_cell(kind, opts, inp[t, b], state, p)
                    outs[t, b, d * opts["hidden_size"]:(d + 1) * opts["hidden_size"]] = state[0]
                for fi, s in enumerate(state):
                    finals[fi][layer * dirs + d, b] = s
        inp = outs
    return inp, finals


KINDS = {"rnn_tanh": ("RNN", {"nonlinearity": "tanh"}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
         "lstm": ("LSTM", {"peephole": False}), "lstm_peephole": ("LSTM", {"peephole": True}),
         "gru": ("GRU", {"reset_after": True}), "gru_notes": ("GRU", {"reset_after": False})}


@st.composite
def rnn_configs(draw):
    T, B = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    unbatched = draw(st.integers(0, 4)) == 0
    return dict(kind=draw(st.sampled_from(sorted(KINDS))), num_layers=draw(st.integers(1, 2)),
                bidirectional=draw(st.booleans()), batch_first=draw(st.booleans()),
                bias=draw(st.booleans()), dropout=draw(st.sampled_from([0.0, 0.0, 0.5])),
                input_size=draw(st.integers(1, 3)), hidden_size=draw(st.integers(1, 3)),
                T=T, B=1 if unbatched else B, unbatched=unbatched,
                lengths=None if unbatched or draw(st.booleans())
                else draw(st.lists(st.integers(1, T), min_size=B, max_size=B)),
                h0=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31 - 1)))


@_settings(100)
@given(rnn_configs())
def test_random_recurrent_configurations_match_numpy_reference(cfg):
    kind, extra = KINDS[cfg["kind"]]
    opts = dict(extra, num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"],
                hidden_size=cfg["hidden_size"])
    tg.manual_seed(cfg["seed"] % 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropout with one layer does nothing
        layer = getattr(nn, kind)(cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                                  bias=cfg["bias"], batch_first=cfg["batch_first"], dropout=cfg["dropout"],
                                  bidirectional=cfg["bidirectional"], dtype="float64", **extra)
    if cfg["dropout"]:
        layer.eval()  # dropout between layers is the identity in eval mode
    T, B, D, H = cfg["T"], cfg["B"], cfg["input_size"], cfg["hidden_size"]
    dirs = 2 if cfg["bidirectional"] else 1
    rng = np.random.default_rng(cfg["seed"])
    x_tm = rng.standard_normal((T, B, D))  # time-major reference layout
    n_state = 2 if kind == "LSTM" else 1
    h0_np = tuple(rng.standard_normal((cfg["num_layers"] * dirs, B, H)) * 0.5 for _ in range(n_state))
    lengths = cfg["lengths"] or [T] * B

    # the layer's own layout
    if cfg["unbatched"]:
        x_in = x_tm[:, 0]
        h_in = tuple(h[:, 0] for h in h0_np)
    else:
        x_in = x_tm.transpose(1, 0, 2) if cfg["batch_first"] else x_tm
        h_in = h0_np
    x = tg.Tensor(x_in.copy(), dtype="float64", requires_grad=True)
    hs = tuple(tg.Tensor(h.copy(), dtype="float64", requires_grad=True) for h in h_in)
    hx = None if not cfg["h0"] else (hs if n_state == 2 else hs[0])
    out, final = layer(x, hx, lengths=cfg["lengths"])
    final = final if n_state == 2 else (final,)

    params = {k: v.numpy() for k, v in layer.named_parameters()}
    zero = tuple(np.zeros_like(h) for h in h0_np)
    ref_out, ref_final = np_rnn(kind, opts, params, x_tm, h0_np if cfg["h0"] else zero, lengths)

    def to_layout(o):  # reference (T, B, F) -> the layer's layout
        if cfg["unbatched"]:
            return o[:, 0]
        return o.transpose(1, 0, 2) if cfg["batch_first"] else o

    where = str(cfg)
    np.testing.assert_allclose(out.numpy(), to_layout(ref_out), rtol=1e-10, atol=1e-12, err_msg=where)
    for got, want in zip(final, ref_final):
        want = want[:, 0] if cfg["unbatched"] else want
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12, err_msg=where)

    # gradients: loss = <out, R> + sum_i <final_i, S_i>, against central differences of the reference
    R = rng.standard_normal(out.shape)
    S = [rng.standard_normal(f.shape) for f in final]
    loss = (out * tg.Tensor(R)).sum()
    for f, s in zip(final, S):
        loss = loss + (f * tg.Tensor(s)).sum()
    loss.backward()

    def ref_loss(x_tm_, h0_, params_):
        o, fs = np_rnn(kind, opts, params_, x_tm_, h0_ if cfg["h0"] else zero, lengths)
        v = float((to_layout(o) * R).sum())
        for f, s in zip(fs, S):
            v += float(((f[:, 0] if cfg["unbatched"] else f) * s).sum())
        return v

    eps = 1e-6

    def fd(perturb):
        return (ref_loss(*perturb(eps)) - ref_loss(*perturb(-eps))) / (2 * eps)

    # d/dx: every element (in the reference's time-major layout)
    gx = x.grad.numpy()
    gx_tm = gx[:, None] if cfg["unbatched"] else (gx.transpose(1, 0, 2) if cfg["batch_first"] else gx)
    for idx in np.ndindex(x_tm.shape):
        def px(e, idx=idx):
            xx = x_tm.copy()
            xx[idx] += e
            return xx, h0_np, params
        np.testing.assert_allclose(gx_tm[idx], fd(px), rtol=1e-5, atol=1e-7, err_msg=f"dx{idx} {where}")
    # d/dh0 (when given): every element
    if cfg["h0"]:
        for si, h in enumerate(hs):
            g = h.grad.numpy()
            g = g[:, None] if cfg["unbatched"] else g
            for idx in np.ndindex(h0_np[si].shape):
                def ph(e, si=si, idx=idx):
                    hh = [a.copy() for a in h0_np]
                    hh[si][idx] += e
                    return x_tm, tuple(hh), params
                np.testing.assert_allclose(g[idx], fd(ph), rtol=1e-5, atol=1e-7, err_msg=f"dh0 {where}")
    # d/dparameters: a random sample of elements of every parameter
    for name, prm in layer.named_parameters():
        g = prm.grad.numpy()
        flat = rng.choice(prm.numel(), size=min(3, prm.numel()), replace=False)
        for k in flat:
            idx = np.unravel_index(k, prm.shape)

            def pp(e, name=name, idx=idx):
                q = dict(params)
                q[name] = params[name].copy()
                q[name][idx] += e
                return x_tm, h0_np, q
            np.testing.assert_allclose(g[idx], fd(pp), rtol=1e-5, atol=1e-7, err_msg=f"d{name}{idx} {where}")
