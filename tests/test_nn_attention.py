"""Attention modules (tinygrad_rnn/nn/attention.py): values against NumPy implementations of the
equations written here, float64 gradcheck with masks (inputs and parameters), exact zeros on masked
steps, query layouts, and clear errors."""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.errors import DTypeError, ShapeError
from tinygrad_rnn.nn.attention import (AdditiveAttention, Attention, DotAttention, GeneralAttention,
                                       length_mask, make_attention)

B, TX, DQ, DK, A = 2, 4, 3, 5, 3
MASK = np.array([[True, True, True, False], [True, False, False, False]])


# ====================================================================== NumPy reference equations
def ref_softmax(e, mask):
    e = np.where(mask[:, None, :], e, -np.inf)
    w = np.exp(e - e.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def ref_attention(kind, p, q, k, v, mask):
    """q (B, Tq, Dq), k (B, Tx, Dk), v (B, Tx, Dv) -> (c_i = sum_j alpha_ij v_j, alpha_ij)
    with alpha_ij = softmax_j e_ij."""
    if kind == "additive":   # e_ij = v^T tanh(W s_i + U h_j + b)
        pre = (q @ p["W.weight"].T)[:, :, None, :] + (k @ p["U.weight"].T + p["U.bias"])[:, None, :, :]
        e = np.tanh(pre) @ p["v.weight"][0]
    elif kind == "dot":      # e_ij = s_i . h_j
        e = np.einsum("bqd,bkd->bqk", q, k)
    else:                    # e_ij = s_i^T W_a h_j
        e = np.einsum("bqd,de,bke->bqk", q, p["W.weight"], k)
    alpha = ref_softmax(e, mask)
    return np.einsum("bqk,bkd->bqd", alpha, v), alpha


def make(kind, dtype="float64"):
    if kind == "additive":
        return AdditiveAttention(DQ, DK, A, dtype=dtype)
    if kind == "dot":
        return DotAttention()
    return GeneralAttention(DQ, DK, dtype=dtype)


def key_size(kind):
    return DQ if kind == "dot" else DK


def params_np(module):
    return {n: p.numpy() for n, p in module.named_parameters()}


def x64(*shape, grad=True):
    return tg.Tensor(np.random.randn(*shape), requires_grad=grad)


KINDS = ["additive", "dot", "general"]


# ============================================================================= values
@pytest.mark.parametrize("kind", KINDS)
def test_values_match_numpy_equations(kind):
    att = make(kind)
    q, k, v = np.random.randn(B, 2, DQ), np.random.randn(B, TX, key_size(kind)), np.random.randn(B, TX, 6)
    ctx, w = att(tg.Tensor(q), tg.Tensor(k), tg.Tensor(v), mask=MASK)
    ref_c, ref_w = ref_attention(kind, params_np(att), q, k, v, MASK)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ctx.numpy(), ref_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-12)


def test_hand_computed_dot_attention():
    # s = (1, 0); h_1 = (2, 0), h_2 = (0, 1): e = (2, 0), alpha = (e^2, 1) / (e^2 + 1)
    ctx, w = DotAttention()(tg.Tensor([[1.0, 0.0]]), tg.Tensor([[[2.0, 0.0], [0.0, 1.0]]]))
    a = np.exp(2.0) / (np.exp(2.0) + 1.0)
    np.testing.assert_allclose(w.numpy(), [[a, 1 - a]], rtol=1e-6)
    np.testing.assert_allclose(ctx.numpy(), [[2 * a, 1 - a]], rtol=1e-6)
    _, ws = DotAttention(scaled=True)(tg.Tensor([[1.0, 0.0]]), tg.Tensor([[[2.0, 0.0], [0.0, 1.0]]]))
    e = 2.0 / np.sqrt(2.0)
    np.testing.assert_allclose(ws.numpy()[0, 0], np.exp(e) / (np.exp(e) + 1.0), rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_steps_get_exactly_zero_weight_and_gradient(kind):
    att = make(kind)
    k = x64(B, TX, key_size(kind))
    # large values on the padded steps: they must still be ignored completely
    k.data[~MASK] = 50.0
    ctx, w = att(x64(B, DQ), k, lengths=[3, 1])
    assert (w.numpy()[~MASK] == 0.0).all()
    assert (w.numpy()[1, 0] == 1.0)
    (ctx.sum() + w.sum()).backward()
    assert (k.grad.numpy()[~MASK] == 0.0).all()
    assert np.isfinite(k.grad.numpy()).all()


@pytest.mark.parametrize("kind", KINDS)
def test_query_layouts_agree(kind):
    """(B, T_q, Dq) at once == one (B, Dq) query at a time; unbatched == batch of one."""
    att = make(kind)
    q, k = np.random.randn(B, 3, DQ), tg.Tensor(np.random.randn(B, TX, key_size(kind)))
    ctx, w = att(tg.Tensor(q), k, mask=MASK)
    assert ctx.shape == (B, 3, key_size(kind)) and w.shape == (B, 3, TX)
    for i in range(3):
        c_i, w_i = att(tg.Tensor(q[:, i]), k, mask=MASK)
        assert c_i.shape == (B, key_size(kind)) and w_i.shape == (B, TX)
        np.testing.assert_allclose(c_i.numpy(), ctx.numpy()[:, i], rtol=1e-12)
        np.testing.assert_allclose(w_i.numpy(), w.numpy()[:, i], rtol=1e-12)
    c0, w0 = att(tg.Tensor(q[1, 0]), tg.Tensor(k.numpy()[1]), mask=MASK[1])
    assert c0.shape == (key_size(kind),) and w0.shape == (TX,)
    np.testing.assert_allclose(w0.numpy(), w.numpy()[1, 0], rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_projected_keys_are_reused(kind):
    att = make(kind)
    q, k = tg.Tensor(np.random.randn(B, DQ)), tg.Tensor(np.random.randn(B, TX, key_size(kind)))
    c1, w1 = att(q, k, mask=MASK)
    c2, w2 = att(q, k, mask=MASK, projected_keys=att.project_keys(k))
    np.testing.assert_array_equal(c1.numpy(), c2.numpy())
    np.testing.assert_array_equal(w1.numpy(), w2.numpy())


def test_mask_and_lengths_agree_and_length_mask():
    np.testing.assert_array_equal(length_mask([3, 1], 4), MASK)
    att = make("additive")
    q, k = tg.Tensor(np.random.randn(B, DQ)), tg.Tensor(np.random.randn(B, TX, DK))
    np.testing.assert_array_equal(att(q, k, mask=MASK)[1].numpy(), att(q, k, lengths=[3, 1])[1].numpy())
    np.testing.assert_array_equal(att(q, k, mask=tg.Tensor(MASK))[1].numpy(),
                                  att(q, k, lengths=np.array([3, 1]))[1].numpy())


def test_additive_parameters_follow_the_equation():
    att = AdditiveAttention(4, 6, 5)
    shapes = {n: tuple(p.shape) for n, p in att.named_parameters()}
    assert shapes == {"W.weight": (5, 4), "U.weight": (5, 6), "U.bias": (5,), "v.weight": (1, 5)}
    assert "hidden_size=5" in repr(att)
    assert {n: tuple(p.shape) for n, p in GeneralAttention(4, 6).named_parameters()} == {"W.weight": (4, 6)}
    assert list(DotAttention().parameters()) == []


def test_make_attention():
    assert isinstance(make_attention("additive", 3, 4, 5), AdditiveAttention)
    assert isinstance(make_attention("general", 3, 4), GeneralAttention)
    assert make_attention("scaled_dot", 4, 4).scaled
    assert all(isinstance(make_attention(k, 4, 4), Attention) for k in ("additive", "dot", "general"))
    with pytest.raises(ShapeError, match="use attention='general' or 'additive'"):
        make_attention("dot", 3, 4)
    with pytest.raises(ValueError, match="'additive', 'dot'"):
        make_attention("multihead", 3, 4)


def test_device(device):
    att = AdditiveAttention(DQ, DK, A).to(device=device)
    q, k = tg.randn(B, DQ, device=device), tg.randn(B, TX, DK, device=device, requires_grad=True)
    ctx, w = att(q, k, lengths=[3, 1])
    dev = tg.backend.normalize_device(device)  # the canonical form: "cuda" -> "cuda:0"
    assert ctx.device == dev and w.device == dev
    ctx.sum().backward()
    assert k.grad.device == dev
    assert float(w.numpy()[1, 1:].sum()) == 0.0


# ============================================================================ float64 gradcheck
def _check_module_grads(module, inputs, call):
    """gradcheck of `call(module, *inputs)` w.r.t. the inputs and every parameter (also nested
    ones such as W.weight): the parameters are swapped for the copies gradcheck perturbs."""
    names = [n for n, _ in module.named_parameters()]
    params = [tg.Tensor(p.numpy().astype(np.float64), requires_grad=True) for p in module.parameters()]

    def fn(*args):
        for name, t in zip(names, args[len(inputs):]):
            *path, leaf = name.split(".")
            owner = module
            for part in path:
                owner = getattr(owner, part)
            owner._parameters[leaf] = t
        return call(module, *args[:len(inputs)])

    return tg.gradcheck(fn, list(inputs) + params, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
@pytest.mark.parametrize("many", [False, True])
def test_gradcheck_with_mask(kind, many):
    att = make(kind)
    q = x64(B, 2, DQ) if many else x64(B, DQ)
    k, v = x64(B, TX, key_size(kind)), x64(B, TX, 2)
    assert _check_module_grads(att, [q, k, v], lambda m, q, k, v: m(q, k, v, mask=MASK))


def test_gradcheck_keys_as_values_and_scaled_dot():
    q, k = x64(B, DK), x64(B, TX, DK)
    assert tg.gradcheck(lambda q, k: DotAttention(scaled=True)(q, k, lengths=[2, 4]), [q, k])


# ======================================================================================= errors
def test_errors_name_the_shapes():
    att = AdditiveAttention(DQ, DK, A)
    q, k = tg.randn(B, DQ), tg.randn(B, TX, DK)
    with pytest.raises(ShapeError, match=r"query has batch size 3 .*keys have 2"):
        att(tg.randn(3, DQ), k)
    with pytest.raises(ShapeError, match=r"query has shape \(2, 4\).*query_size=3"):
        att(tg.randn(B, 4), k)
    with pytest.raises(ShapeError, match=r"keys have shape \(2, 4, 3\), expected last dim key_size=5"):
        att(q, tg.randn(B, TX, 3))
    with pytest.raises(ShapeError, match=r"keys have shape \(8,\)"):
        att(q, tg.randn(8))
    with pytest.raises(ShapeError, match=r"query has shape \(2, 1, 1, 3\)"):
        att(tg.randn(B, 1, 1, DQ), k)
    with pytest.raises(ShapeError, match=r"values have shape \(2, 3, 6\).*\(2, 4\) \+ \(value_size,\)"):
        att(q, k, tg.randn(B, 3, 6))
    with pytest.raises(ShapeError, match=r"mask has shape \(2, 3\).*expected \(B, T_x\) = \(2, 4\)"):
        att(q, k, mask=np.ones((B, 3), bool))
    with pytest.raises(DTypeError, match="mask must be boolean"):
        att(q, k, mask=np.ones((B, TX)))
    with pytest.raises(ValueError, match=r"mask\[1\] is all False"):
        att(q, k, mask=np.array([[True] * TX, [False] * TX]))
    with pytest.raises(ShapeError, match="got 3 lengths for keys of shape"):
        att(q, k, lengths=[1, 2, 3])
    with pytest.raises(ShapeError, match=r"lengths\[0\] = 0 is outside 1..4"):
        att(q, k, lengths=[0, 2])
    with pytest.raises(ValueError, match="mask or lengths, not both"):
        att(q, k, mask=MASK, lengths=[3, 1])
    with pytest.raises(ShapeError, match="dot-product attention needs equal sizes"):
        DotAttention()(tg.randn(B, 3), tg.randn(B, TX, 5))
    with pytest.raises(TypeError, match="query must be a Tensor"):
        att(np.zeros((B, DQ)), k)
    with pytest.raises(DTypeError, match="query has dtype float64 but the parameters are float32"):
        att(q.double(), k)
    with pytest.raises(DTypeError, match="floating-point"):
        att(q, tg.Tensor(np.zeros((B, TX, DK), dtype=np.int64)))
    with pytest.raises(ValueError, match="AdditiveAttention: hidden_size must be a positive int"):
        AdditiveAttention(3, 4, 0)


# ====================================================== detect_anomaly (issue 12: no false alarm)
@pytest.mark.parametrize("kind", KINDS)
def test_padded_attention_runs_under_detect_anomaly(kind):
    """The -inf masking of padded steps is intended: detect_anomaly stays quiet on it (forward
    Inf is allowed), while the gradients are still checked for NaN/Inf."""
    att = make(kind)
    k = x64(B, TX, key_size(kind))
    q = x64(B, DQ)
    with tg.detect_anomaly():
        ctx, w = att(q, k, lengths=[3, 1])
        (ctx.sum() + (w * w).sum()).backward()
    assert (w.numpy()[~MASK] == 0.0).all()
    assert np.isfinite(k.grad.numpy()).all() and np.isfinite(q.grad.numpy()).all()
