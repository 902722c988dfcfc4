"""Every primitive op: forward against NumPy, backward against float64 central differences.

The table below is the op coverage list: test_every_op_has_a_row fails when an op is registered
in tinygrad_rnn.ops.OPS without a row here.
"""
import importlib.util
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tg
from tinygrad_rnn import ops
from tinygrad_rnn.nn import functional as F


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _pos(shape, rng):  # strictly positive inputs for log/sqrt/pow
    return rng.uniform(0.5, 2.0, shape)


def _nz(shape, rng):  # away from kinks (abs, relu, clamp, max) so central differences are valid
    x = rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return x


def _off_int(shape, rng):  # away from the jumps of floor/ceil (integers and half-integers)
    return rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.4, shape)


_erf = np.vectorize(math.erf)
_UPPER = np.triu(np.ones((3, 3), dtype=bool), 1)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _distinct(shape, rng):  # distinct values: no ties in max/min
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n - 0.5) * 3


# (op names covered, tinygrad fn, numpy fn, input shapes, input generator)
CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 4)], None),
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(2, 3, 4), (4,)], None),
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 1), (1, 4)], None),
    ("add", lambda a: a + 2.5, lambda a: a + 2.5, [(3,)], None),
    ("add", lambda a: 2.5 + a, lambda a: 2.5 + a, [(3,)], None),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [(3, 4), (4,)], None),
    ("sub", lambda a: 1.0 - a, lambda a: 1.0 - a, [(2, 2)], None),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [(3, 4), (3, 1)], None),
    ("mul", lambda a: a * 3.0, lambda a: a * 3.0, [(5,)], None),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (4,)], _pos),
    ("div", lambda a: 2.0 / a, lambda a: 2.0 / a, [(3,)], _pos),
    ("neg", lambda a: -a, lambda a: -a, [(2, 3)], None),
    ("pow_scalar", lambda a: a ** 2, lambda a: a ** 2, [(2, 3)], None),
    ("pow_scalar", lambda a: a ** 1.5, lambda a: a ** 1.5, [(2, 3)], _pos),
    ("pow_scalar", lambda a: a ** -1, lambda a: a ** -1.0, [(4,)], _pos),
    ("pow", lambda a, b: a ** b, lambda a, b: a ** b, [(2, 3), (3,)], _pos),
    ("pow", lambda a: 2.0 ** a, lambda a: 2.0 ** a, [(3,)], None),
    ("exp", lambda a: a.exp(), np.exp, [(2, 3)], None),
    ("log", lambda a: a.log(), np.log, [(2, 3)], _pos),
    ("sqrt", lambda a: a.sqrt(), np.sqrt, [(2, 3)], _pos),
    ("abs", lambda a: a.abs(), np.abs, [(2, 3)], _nz),
    ("tanh", lambda a: a.tanh(), np.tanh, [(2, 3)], None),
    ("sigmoid", lambda a: a.sigmoid(), _sig, [(2, 3)], None),
    ("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0), [(2, 3)], _nz),
    ("clamp", lambda a: a.clamp(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), [(3, 3)], _nz),
    ("clamp", lambda a: a.clamp(min=0.3), lambda a: np.clip(a, 0.3, None), [(3, 3)], _nz),
    ("maximum", lambda a, b: tg.maximum(a, b), np.maximum, [(3, 4), (4,)], _distinct),
    ("minimum", lambda a, b: tg.minimum(a, b), np.minimum, [(3, 4), (3, 1)], _distinct),
    ("where", lambda a, b: tg.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b), [(3, 4), (4,)], _nz),
    ("sum", lambda a: a.sum(), np.sum, [(3, 4)], None),
    ("sum", lambda a: a.sum(1), lambda a: a.sum(1), [(3, 4)], None),
    ("sum", lambda a: a.sum((0, 2), keepdim=True), lambda a: a.sum((0, 2), keepdims=True), [(2, 3, 4)], None),
    ("sum", lambda a: a.mean(-1), lambda a: a.mean(-1), [(2, 3, 4)], None),
    ("amax", lambda a: a.amax(1), lambda a: a.max(1), [(3, 4)], _distinct),
    ("amax", lambda a: a.max(), np.max, [(3, 4)], _distinct),
    ("amax", lambda a: a.max(dim=0, keepdim=True).values, lambda a: a.max(0, keepdims=True), [(3, 4)], _distinct),
    ("amin", lambda a: a.amin((0, 1)), lambda a: a.min((0, 1)), [(3, 4, 2)], _distinct),
    ("amin", lambda a: a.min(1).values, lambda a: a.min(1), [(3, 4)], _distinct),
    ("reshape", lambda a: a.reshape(4, -1), lambda a: a.reshape(4, -1), [(2, 3, 2)], None),
    ("reshape", lambda a: a.unsqueeze(1).squeeze(1), lambda a: a, [(2, 3)], None),
    ("reshape", lambda a: a.flatten(1), lambda a: a.reshape(2, -1), [(2, 3, 2)], None),
    ("permute", lambda a: a.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1), [(2, 3, 4)], None),
    ("permute", lambda a: a.transpose(0, 1), lambda a: a.T, [(2, 3)], None),
    ("permute", lambda a: a.T, lambda a: a.T, [(2, 3, 4)], None),
    ("broadcast_to", lambda a: a.expand(3, 2, 4), lambda a: np.broadcast_to(a, (3, 2, 4)), [(2, 1)], None),
    ("sum_to", lambda a: a.sum_to((1, 4)), lambda a: a.sum(0, keepdims=True), [(3, 4)], None),
    ("getitem", lambda a: a[1], lambda a: a[1], [(3, 4)], None),
    ("getitem", lambda a: a[:, 1:3], lambda a: a[:, 1:3], [(3, 4)], None),
    ("getitem", lambda a: a[..., None, ::2], lambda a: a[..., None, ::2], [(3, 4)], None),
    ("getitem", lambda a: a[np.array([0, 2, 0, 0])], lambda a: a[np.array([0, 2, 0, 0])], [(3, 4)], None),
    ("getitem", lambda a: a[np.array([0, 1, 1]), np.array([3, 3, 3])],
     lambda a: a[np.array([0, 1, 1]), np.array([3, 3, 3])], [(3, 4)], None),
    ("getitem", lambda a: a[a > 0], lambda a: a[a > 0], [(3, 4)], _nz),
    ("index_add", lambda a: ops.IndexAdd((np.array([1, 1, 0]),), (3, 2))(a),
     lambda a: np.stack([a[2], a[0] + a[1], np.zeros(2)]), [(3, 2)], None),
    ("cat", lambda a, b: tg.cat([a, b], 1), lambda a, b: np.concatenate([a, b], 1), [(2, 3), (2, 1)], None),
    ("stack", lambda a, b: tg.stack([a, b], -1), lambda a, b: np.stack([a, b], -1), [(2, 3), (2, 3)], None),
    ("split", lambda a: a.chunk(3, 1), lambda a: tuple(np.split(a, 3, 1)), [(2, 6)], None),
    ("split", lambda a: a.split([1, 3], 0)[1], lambda a: a[1:], [(4, 2)], None),
    ("unbind", lambda a: a.unbind(1), lambda a: tuple(a[:, i] for i in range(3)), [(2, 3, 2)], None),
    ("unbind", lambda a: a.unbind(0)[2], lambda a: a[2], [(4, 2)], None),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3), (3, 4)], None),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(3,), (3,)], None),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(3,), (2, 3, 4)], None),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 5, 3), (3,)], None),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 1, 2, 3), (4, 3, 2)], None),
    ("addmm", lambda c, a, b: tg.addmm(c, a, b), lambda c, a, b: c + a @ b, [(2, 4), (2, 3), (3, 4)], None),
    ("addmm", lambda c, a, b: tg.addmm(c, a, b), lambda c, a, b: c + a @ b, [(4,), (2, 3), (3, 4)], None),
    # through float32: central differences need a larger step (float32 rounding is ~1e-7)
    ("cast", lambda a: a.float().double() * 2, lambda a: a.astype(np.float32).astype(np.float64) * 2, [(3,)], None,
     dict(eps=1e-2, atol=1e-4)),
    ("to_device", lambda a: a.to("cpu") * 1.0, lambda a: a, [(3,)], None),
    ("clone", lambda a: a.clone(), lambda a: a, [(3,)], None),
    # common ops (issue 14): primitives ...
    ("sin", lambda a: a.sin(), np.sin, [(2, 3)], None),
    ("cos", lambda a: tg.cos(a * 3), lambda a: np.cos(a * 3), [(2, 3)], None),
    ("sign", lambda a: a.sign() * a, lambda a: np.sign(a) * a, [(2, 3)], _nz),
    ("floor", lambda a: a.floor() + a, lambda a: np.floor(a) + a, [(2, 3)], _off_int),
    ("ceil", lambda a: tg.ceil(a * 2) * a, lambda a: np.ceil(a * 2) * a, [(2, 3)], _off_int),
    ("erf", lambda a: a.erf(), _erf, [(3, 4)], None),
    ("erf", lambda a: tg.erf(a * 4), lambda a: _erf(a * 4), [(3, 4)], None),
    ("expm1", lambda a: a.expm1(), np.expm1, [(3, 4)], None),
    ("expm1", lambda a: tg.expm1(a * 1e-4), lambda a: np.expm1(a * 1e-4), [(3, 4)], None),
    ("softplus", lambda a: a.softplus(), lambda a: np.logaddexp(0, a), [(2, 3)], None),
    ("softplus", lambda a: tg.softplus(a * 40, beta=0.5, threshold=5),  # both sides of the threshold
     lambda a: np.where(a * 20 > 5, a * 40, np.logaddexp(0, a * 20) / 0.5), [(3, 4)], None),
    ("cumsum", lambda a: a.cumsum(1), lambda a: np.cumsum(a, 1), [(3, 4)], None),
    ("cumsum", lambda a: tg.cumsum(a, 0), lambda a: np.cumsum(a, 0), [(3, 2, 2)], None),
    # ... and composed from the ops above (each checked the same way)
    ("leaky_relu", lambda a: a.leaky_relu(0.1), lambda a: np.where(a > 0, a, 0.1 * a), [(3, 4)], _nz),
    ("leaky_relu", lambda a: tg.leaky_relu(a), lambda a: np.where(a > 0, a, 0.01 * a), [(3, 4)], _nz),
    ("elu", lambda a: a.elu(), lambda a: np.where(a > 0, a, np.expm1(np.minimum(a, 0))), [(3, 4)], _nz),
    ("elu", lambda a: tg.elu(a * 1000, alpha=0.5),  # exp(1000) would overflow: it is never computed
     lambda a: np.where(a > 0, a * 1000, 0.5 * np.expm1(np.minimum(a * 1000, 0))), [(3, 4)], _nz),
    ("gelu", lambda a: a.gelu(), lambda a: a * 0.5 * (1 + _erf(a / np.sqrt(2))), [(3, 4)], None),
    ("gelu", lambda a: tg.gelu(a * 3, approximate="tanh"),
     lambda a: 1.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (3 * a + 0.044715 * (3 * a) ** 3))), [(3, 4)], None),
    ("flip", lambda a: a.flip(0, 2), lambda a: a[::-1, :, ::-1], [(2, 3, 4)], None),
    ("flip", lambda a: tg.flip(a, (-1,)), lambda a: a[:, ::-1], [(2, 3)], None),
    ("repeat", lambda a: a.repeat(2, 1, 3), lambda a: np.tile(a, (2, 1, 3)), [(3, 2)], None),
    ("repeat", lambda a: a.repeat((2, 2)), lambda a: np.tile(a, (2, 2)), [(3, 2)], None),
    ("tril", lambda a: a.tril(), np.tril, [(4, 4)], None),
    ("tril", lambda a: tg.tril(a, -1), lambda a: np.tril(a, -1), [(2, 3, 4)], None),
    ("triu", lambda a: a.triu(1), lambda a: np.triu(a, 1), [(3, 5)], None),
    ("triu", lambda a: tg.triu(a, -1), lambda a: np.triu(a, -1), [(2, 4, 3)], None),
    # the causal-mask idiom: -inf above the diagonal, 0 (not -inf * 0 = NaN) below, then a softmax
    ("triu", lambda a: (a + tg.triu(tg.full_like(a, -math.inf), 1)).softmax(-1),
     lambda a: _softmax(a + np.triu(np.full((3, 3), -np.inf), 1)), [(3, 3)], None),
    # NaN outside the kept triangle is dropped, not spread (NaN * 0 would be NaN)
    ("tril", lambda a: tg.tril(tg.where(tg.Tensor(_UPPER, device=a.device), math.nan, a)), np.tril, [(3, 3)], None),
    ("var", lambda a: a.var(1), lambda a: a.var(1, ddof=1), [(3, 4)], None),
    ("var", lambda a: a.var(correction=0), np.var, [(3, 4)], None),
    ("var", lambda a: tg.var(a, (0, 2), keepdim=True), lambda a: a.var((0, 2), ddof=1, keepdims=True),
     [(2, 3, 4)], None),
    ("std", lambda a: a.std(0), lambda a: a.std(0, ddof=1), [(3, 4)], None),
    ("std", lambda a: tg.std(a, correction=0), np.std, [(3, 4)], None),
    ("where", lambda a: a * tg.where(a > 0, 2.0, -1.0), lambda a: a * np.where(a > 0, 2.0, -1.0), [(3, 4)], _nz),
]


def _inputs(shapes, gen, device, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [(gen or (lambda s, r: r.standard_normal(s)))(s, rng) for s in shapes]
    return arrs, [tg.Tensor(a, dtype="float64", device=device, requires_grad=True) for a in arrs]


def _as_tuple(v):
    return v if isinstance(v, tuple) else (v,)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_forward_matches_numpy(case, device):
    _, fn, ref, shapes, gen = case[:5]
    arrs, ts = _inputs(shapes, gen, device)
    got = _as_tuple(fn(*ts))
    want = _as_tuple(ref(*arrs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w)
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_gradcheck(case, device):
    _, fn, _, shapes, gen = case[:5]
    _, ts = _inputs(shapes, gen, device, seed=1)
    assert tg.gradcheck(fn, ts, **(case[5] if len(case) > 5 else {}))


SECOND = [c for c in CASES if c[0] not in ("cast", "to_device")]


@pytest.mark.parametrize("case", SECOND, ids=[f"{c[0]}-{i}" for i, c in enumerate(SECOND)])
def test_second_derivative(case):
    """create_graph=True: backward is built from differentiable ops, so grad of grad works."""
    _, fn, _, shapes, gen = case
    _, ts = _inputs(shapes, gen, "cpu", seed=2)

    def first_grad_dot(*xs):
        # L = sum_k (<c_k, out_k>)^2 makes the first gradient depend on x even for linear ops
        loss = None
        for k, o in enumerate(_as_tuple(fn(*xs))):
            term = (o * tg.Tensor(np.full(o.shape, 0.3 + k), dtype="float64")).sum()
            term = term * term
            loss = term if loss is None else loss + term
        gs = tg.grad(loss, list(xs), create_graph=True, allow_unused=True)
        total = None
        for g in gs:
            if g is not None:
                s = (g * g).sum()
                total = s if total is None else total + s
        return total
    assert tg.gradcheck(first_grad_dot, ts, atol=1e-4, rtol=1e-3)


def test_every_op_has_a_row():
    covered = {c[0] for c in CASES}
    missing = set(ops.OPS) - covered
    assert not missing, f"ops without a test row in tests/test_ops.py: {sorted(missing)}"


def test_composites_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)) * 10
    t = tg.Tensor(x, dtype="float64", requires_grad=True)
    sm = np.exp(x - x.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    np.testing.assert_allclose(F.softmax(t, 1).numpy(), sm, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(t, 1).numpy(), np.log(sm), rtol=1e-10, atol=1e-12)
    lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    np.testing.assert_allclose(F.logsumexp(t, 1).numpy(), lse, rtol=1e-12)
    y = np.array([0, 4, 2, 1])
    ce = -np.log(sm[np.arange(4), y])
    np.testing.assert_allclose(F.cross_entropy(t, tg.Tensor(y)).item(), ce.mean(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(t, y, reduction="sum").item(), ce.sum(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(t, y, reduction="none").numpy(), ce, rtol=1e-12)
    yi = np.array([0, -100, 2, -100])
    np.testing.assert_allclose(F.cross_entropy(t, yi).item(), ce[[0, 2]].mean(), rtol=1e-12)
    z = rng.standard_normal((4, 5))
    np.testing.assert_allclose(F.mse_loss(t, tg.Tensor(z, dtype="float64")).item(), ((x - z) ** 2).mean())
    w, b = rng.standard_normal((3, 5)), rng.standard_normal(3)
    np.testing.assert_allclose(F.linear(t, tg.Tensor(w, dtype="float64"), tg.Tensor(b, dtype="float64")).numpy(),
                               x @ w.T + b, rtol=1e-12)


def test_stable_for_extreme_inputs():
    x = tg.Tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    s = x.sigmoid()
    assert np.all(np.isfinite(s.numpy()))
    np.testing.assert_allclose(s.numpy(), [0, 0, 0.5, 1, 1], atol=1e-6)
    s.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    logits = tg.Tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    loss = F.cross_entropy(logits, [1])
    assert np.isfinite(loss.item()) and abs(loss.item() - 1000.0) < 1e-3
    loss.backward()
    np.testing.assert_allclose(logits.grad.numpy(), [[1, -1, 0]], atol=1e-6)


@pytest.mark.parametrize("fn", [lambda x: F.softmax(x, 1), lambda x: F.log_softmax(x, 0),
                                lambda x: F.logsumexp(x, 1), lambda x: F.cross_entropy(x, [1, 0, 2]),
                                lambda x: F.cross_entropy(x, [1, -100, 2], reduction="sum"),
                                lambda x: F.mse_loss(x, tg.ones(3, 4, dtype='float64') * 0.5),
                                lambda x: F.nll_loss(F.log_softmax(x, 1), [2, 2, 0])])
def test_composite_gradcheck(fn):
    x = tg.Tensor(np.random.default_rng(0).standard_normal((3, 4)), dtype="float64", requires_grad=True)
    assert tg.gradcheck(fn, [x])


def test_cross_entropy_higher_dim():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))  # (N, C, T)
    y = rng.integers(0, 3, (2, 4))
    t = tg.Tensor(x, dtype="float64", requires_grad=True)
    flat = tg.Tensor(x.transpose(0, 2, 1).reshape(-1, 3), dtype="float64")
    np.testing.assert_allclose(F.cross_entropy(t, y).item(), F.cross_entropy(flat, y.reshape(-1)).item())
    assert tg.gradcheck(lambda a: F.cross_entropy(a, y), [t])


def test_dropout_scales_and_masks():
    tg.manual_seed(0)
    x = tg.ones(1000, 100)
    y = F.dropout(x, 0.25).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert F.dropout(x, 0.25, training=False) is x
    assert y.dtype == np.float32


# ------------------------------------------------------------------ property-based (hypothesis)
def _broadcastable_pair():
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


@settings(max_examples=40, deadline=None)
@given(shapes=_broadcastable_pair(), op=st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_binary_broadcasting_property(shapes, op):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2, shapes.input_shapes[0]) * rng.choice([-1, 1], shapes.input_shapes[0])
    b = rng.uniform(0.5, 2, shapes.input_shapes[1]) + 0.01  # distinct from a (no maximum ties)
    f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
         "div": lambda x, y: x / y, "maximum": lambda x, y: tg.maximum(x, y)}[op]
    nf = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "maximum": np.maximum}[op]
    ta = tg.Tensor(a, dtype="float64", requires_grad=True)
    tb = tg.Tensor(b, dtype="float64", requires_grad=True)
    np.testing.assert_allclose(f(ta, tb).numpy(), nf(a, b), rtol=1e-12)
    assert tg.gradcheck(f, [ta, tb])


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_reductions_property(shape, data):
    dims = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    keep = data.draw(st.booleans())
    x = np.random.default_rng(0).standard_normal(shape)
    t = tg.Tensor(x, dtype="float64", requires_grad=True)
    np.testing.assert_allclose(t.sum(tuple(dims), keepdim=keep).numpy(), x.sum(tuple(dims), keepdims=keep))
    np.testing.assert_allclose(t.amax(tuple(dims), keepdim=keep).numpy(), x.max(tuple(dims), keepdims=keep))
    assert tg.gradcheck(lambda a: a.mean(tuple(dims), keepdim=keep), [t])
    assert tg.gradcheck(lambda a: a.amax(tuple(dims), keepdim=keep), [t])


@settings(max_examples=30, deadline=None)
@given(a=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), k=st.integers(1, 4), m=st.integers(1, 3))
def test_matmul_property(a, k, m):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(a[:-1] + (k,))
    y = rng.standard_normal((k, m))
    tx, ty = (tg.Tensor(v, dtype="float64", requires_grad=True) for v in (x, y))
    np.testing.assert_allclose((tx @ ty).numpy(), x @ y, rtol=1e-12, atol=1e-12)
    assert tg.gradcheck(lambda p, q: p @ q, [tx, ty])


# ------------------------------------------------------------------------------ common ops (issue 14)
def test_softplus_elu_gelu_are_stable_for_large_inputs():
    x = tg.Tensor([-1000.0, -60.0, -1e-3, 0.0, 30.0, 1000.0], requires_grad=True)  # float32
    for f, want, dwant in [
        (lambda t: t.softplus(), [0.0, np.exp(-60.0), np.log1p(np.exp(-1e-3)), np.log(2.0), 30.0, 1000.0],
         [0.0, np.exp(-60.0), _sig(-1e-3), 0.5, 1.0, 1.0]),
        (lambda t: t.elu(), [-1.0, -1.0, np.expm1(-1e-3), 0.0, 30.0, 1000.0],
         [0.0, np.exp(-60.0), np.exp(-1e-3), 1.0, 1.0, 1.0]),
        (lambda t: t.gelu(), [0.0, 0.0, -1e-3 * 0.5 * (1 + math.erf(-1e-3 / np.sqrt(2))), 0.0, 30.0, 1000.0],
         [0.0, 0.0, 0.5 * (1 + math.erf(-1e-3 / np.sqrt(2))) - 1e-3 * np.exp(-5e-7) / np.sqrt(2 * np.pi),
          0.5, 1.0, 1.0]),
    ]:
        x.grad = None
        y = f(x)
        y.sum().backward()
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-30)
        np.testing.assert_allclose(x.grad.numpy(), dwant, rtol=1e-5, atol=1e-30)


def test_common_ops_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((4, 5)) * 3
    t, p = tg.Tensor(x, dtype="float64"), torch.tensor(x)
    tf = torch.nn.functional
    pairs = [
        (t.leaky_relu(), tf.leaky_relu(p)), (t.elu(alpha=0.7), tf.elu(p, alpha=0.7)),
        (t.softplus(), tf.softplus(p)), (t.softplus(beta=3, threshold=2), tf.softplus(p, beta=3, threshold=2)),
        (t.gelu(), tf.gelu(p)), (t.gelu(approximate="tanh"), tf.gelu(p, approximate="tanh")),
        (t.sign(), p.sign()), (t.floor(), p.floor()), (t.ceil(), p.ceil()), (t.sin(), p.sin()),
        (t.flip(0, 1), p.flip(0, 1)), (t.repeat(2, 1, 2), p.repeat(2, 1, 2)), (t.cumsum(1), p.cumsum(1)),
        (t.tril(1), p.tril(1)), (t.triu(-1), p.triu(-1)), (t.var(), p.var()), (t.var(0), p.var(0)),
        (t.std(1, correction=0, keepdim=True), p.std(1, correction=0, keepdim=True)), (t.erf(), p.erf()),
        (t.expm1(), p.expm1()), (t.cos(), p.cos()),
    ]
    for k, (a, b) in enumerate(pairs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14, err_msg=str(k))


@pytest.mark.parametrize("dtype", ["float32", "float64", "bool"])
def test_tril_triu_keep_inf_nan_and_dtype(dtype):
    """Outside the triangle is 0 (False) whatever is there, -inf and NaN included (a multiply by a
    0/1 mask would give NaN), and the dtype stays, bool included; as NumPy and PyTorch."""
    x = np.array([[-np.inf, np.nan, 1.0, 2.0], [np.inf, -np.inf, np.nan, -1.0], [2.0, np.nan, -np.inf, 0.0]])
    x = x > 0 if dtype == "bool" else x.astype(dtype)
    try:
        import torch
    except ImportError:
        torch = None
    for name in ("tril", "triu"):
        for k in (-1, 0, 1):
            got = getattr(tg.Tensor(x), name)(k)
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(got.numpy(), getattr(np, name)(x, k))
            if torch is not None:
                np.testing.assert_array_equal(got.numpy(), getattr(torch.from_numpy(x), name)(k).numpy())


def test_where_with_numbers_in_both_branches():
    x = tg.Tensor([-1.0, 2.0, 0.5])
    assert tg.where(x > 0, 1.0, 0.0).tolist() == [0.0, 1.0, 1.0]
    assert tg.where(x > 0, 1.0, 0.0).dtype == tg.float32
    assert tg.where(x > 0, 3, -1).dtype == tg.int64 and tg.where(x > 0, 3, -1).tolist() == [-1, 3, 3]
    assert tg.where(x > 0, True, False).dtype == tg.bool_
    assert tg.where(np.array([True, False]), 2, 0.5).tolist() == [2.0, 0.5]
    with pytest.raises(tg.DTypeError, match="cond must be a boolean"):
        tg.where(x, 1.0, 0.0)


def test_common_ops_errors():
    x = tg.randn(3)
    with pytest.raises(ValueError, match="correction=1 leave 0 degrees of freedom"):
        tg.randn(1, 4).var(0)
    with pytest.raises(ValueError, match="flip: give the dims"):
        x.flip()
    with pytest.raises(ValueError, match=r"repeat: give one non-negative count per dim \(at least 2"):
        tg.randn(2, 3).repeat(2)
    with pytest.raises(tg.ShapeError, match="tril: needs a matrix"):
        x.tril()
    with pytest.raises(ValueError, match="approximate must be 'none'"):
        x.gelu(approximate="erf")
    with pytest.raises(ValueError, match="beta must be a positive number"):
        x.softplus(beta=0)
    with pytest.raises(IndexError, match="cumsum: dim 1 is out of range"):
        x.cumsum(1)
    assert tg.Tensor(2.5).cumsum(0).item() == 2.5


def test_sign_floor_ceil_have_zero_gradient():
    x = tg.Tensor([-1.5, 0.3, 2.7], requires_grad=True)
    (x.sign() + x.floor() + x.ceil()).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_erf_fallbacks_agree_with_math_erf(monkeypatch):
    """NumPy has no erf: SciPy's is used when installed, else the series (as on a GPU whose CuPy
    lacks cupyx.scipy.special.erf, and under the stand-in). Both against math.erf."""
    import builtins
    from tinygrad_rnn import backend
    x = np.linspace(-7, 7, 1401)
    want = _erf(x)
    np.testing.assert_allclose(backend.erf_series(x), want, rtol=0, atol=4e-15)
    np.testing.assert_allclose(backend.erf_series(x.astype(np.float32)), want, rtol=0, atol=2e-7)
    if importlib.util.find_spec("scipy") is not None:
        np.testing.assert_allclose(backend.erf(x), want, rtol=0, atol=4e-16)
    real_import = builtins.__import__

    def no_scipy(name, *a, **k):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_scipy)
    np.testing.assert_array_equal(backend.erf(x), backend.erf_series(x))
    np.testing.assert_allclose(backend.erf(x), want, rtol=0, atol=4e-15)
    assert backend.erf(np.array(0.5, np.float32)).dtype == np.float32


def test_cached_scalars_are_read_only():
    """ops._scalar hands one 0-d array to every later op (sigmoid's 0.5): an in-place write
    anywhere would silently change every later LSTM/GRU step, so it must fail at the write."""
    from tinygrad_rnn import ops

    half = ops._scalar(0.5, np.ones(3, np.float32))
    assert half is ops._scalar(0.5, np.zeros(2, np.float32)) and half.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        half += 1
    np.testing.assert_allclose(tg.Tensor([0.0]).sigmoid().numpy(), [0.5])
