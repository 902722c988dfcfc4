"""nn.utils: clip_grad_norm_ (returned norm, scaling, norm types, non-finite) and clip_grad_value_."""
import math

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn.utils import clip_grad_norm_, clip_grad_value_

from conftest import to_np


def params_with_grads(device="cpu", dtype="float32"):
    ps = [tg.zeros(3, 4, dtype=dtype, device=device, requires_grad=True),
          tg.zeros(5, dtype=dtype, device=device, requires_grad=True)]
    gs = [np.arange(12).reshape(3, 4) - 5.5, np.array([3.0, -4.0, 0.0, 1.0, 2.0])]
    for p, g in zip(ps, gs):
        p.grad = tg.Tensor(g.astype(dtype), device=device)
    return ps, gs


def test_clip_grad_norm_value_and_effect(device):
    ps, gs = params_with_grads(device)
    total = math.sqrt(sum((g ** 2).sum() for g in gs))
    norm = clip_grad_norm_(ps, max_norm=1.0)
    assert isinstance(norm, tg.Tensor) and norm.shape == () and norm.dtype == np.float32
    np.testing.assert_allclose(norm.item(), total, rtol=1e-6)
    scale = 1.0 / (total + 1e-6)
    for p, g in zip(ps, gs):
        np.testing.assert_allclose(to_np(p.grad), g * scale, rtol=1e-6)
        assert p.grad.dtype == np.float32
    after = math.sqrt(sum((to_np(p.grad).astype(np.float64) ** 2).sum() for p in ps))
    np.testing.assert_allclose(after, 1.0, rtol=1e-5)


def test_clip_grad_norm_below_threshold_leaves_grads_unchanged():
    ps, gs = params_with_grads()
    norm = clip_grad_norm_(ps, max_norm=1000.0)
    for p, g in zip(ps, gs):
        np.testing.assert_array_equal(p.grad.numpy(), g.astype(np.float32))
    assert norm.item() < 1000


@pytest.mark.parametrize("norm_type", [1.0, 3.0, float("inf")])
def test_clip_grad_norm_other_norms(norm_type):
    ps, gs = params_with_grads(dtype="float64")
    flat = np.concatenate([g.ravel() for g in gs])
    expected = np.abs(flat).max() if math.isinf(norm_type) else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    norm = clip_grad_norm_(ps, 0.5, norm_type=norm_type)
    np.testing.assert_allclose(norm.item(), expected, rtol=1e-12)
    flat_after = np.concatenate([p.grad.numpy().ravel() for p in ps])
    np.testing.assert_allclose(flat_after, flat * 0.5 / (expected + 1e-6), rtol=1e-12)


def test_clip_grad_norm_single_tensor_skips_missing_grads_and_empty():
    a = tg.ones(3, requires_grad=True)
    b = tg.ones(2, requires_grad=True)  # no grad: skipped
    a.grad = tg.Tensor([3.0, 4.0, 0.0])
    np.testing.assert_allclose(clip_grad_norm_(a, 10.0).item(), 5.0)
    np.testing.assert_allclose(clip_grad_norm_([a, b], 10.0).item(), 5.0)
    assert clip_grad_norm_([b], 1.0).item() == 0.0


def test_clip_grad_norm_non_finite():
    ps, _ = params_with_grads()
    ps[1].name = "rnn.weight_hh_l0"
    ps[1].grad.data[0] = np.nan
    with pytest.raises(tg.GradError, match="non-finite.*rnn.weight_hh_l0"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_(ps, 1.0).item())  # as PyTorch: scaled by the NaN norm


def test_clip_grad_norm_bad_arguments():
    ps, _ = params_with_grads()
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(ps, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(ps, 1.0, norm_type=0)
    with pytest.raises(TypeError, match="parameters"):
        clip_grad_norm_(3, 1.0)
    with pytest.raises(TypeError, match=r"parameters\[1\]"):
        clip_grad_norm_([ps[0], np.zeros(3)], 1.0)


def test_clip_grad_norm_on_a_model_after_backward():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    (model(tg.randn(16, 4)) * 100).sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    norm = clip_grad_norm_(model.parameters(), 0.1)  # a generator works
    np.testing.assert_allclose(norm.item(), total, rtol=1e-5)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad.numpy(), g * (0.1 / (total + 1e-6)), rtol=1e-5)


def test_clip_grad_value(device):
    ps, gs = params_with_grads(device)
    assert clip_grad_value_(ps, 2.5) is None
    for p, g in zip(ps, gs):
        np.testing.assert_array_equal(to_np(p.grad), np.clip(g, -2.5, 2.5).astype(np.float32))
        assert p.grad.dtype == np.float32
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(ps, -1)


def test_parity_with_torch():
    torch = pytest.importorskip("torch")
    ps, gs = params_with_grads()
    tps = [torch.zeros(g.shape, requires_grad=True) for g in gs]
    for tp, g in zip(tps, gs):
        tp.grad = torch.tensor(g, dtype=torch.float32)
    for norm_type in (2.0, float("inf")):
        n = clip_grad_norm_(ps, 3.0, norm_type=norm_type)
        tn = torch.nn.utils.clip_grad_norm_(tps, 3.0, norm_type=norm_type)
        np.testing.assert_allclose(n.item(), tn.item(), rtol=1e-6)
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6)
