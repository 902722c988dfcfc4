"""Tensor construction, attributes, conversions, factories, seeding."""
import numpy as np
import pytest

import tinygrad_rnn as tg


def test_construction_and_dtypes():
    assert tg.Tensor(1.5).dtype == tg.float32 and tg.Tensor(1.5).shape == ()
    assert tg.Tensor([[1.0, 2.0]]).dtype == np.float32
    assert tg.Tensor([1, 2]).dtype == tg.int64
    assert tg.Tensor([True, False]).dtype == tg.bool_
    assert tg.Tensor(np.zeros(3)).dtype == tg.float64  # NumPy arrays keep their dtype
    for spec in ("float64", np.float64, tg.float64, "double"):
        assert tg.Tensor([1.0], dtype=spec).dtype == np.float64
    a = np.ones(3)
    t = tg.Tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 1  # the constructor copies


def test_attributes_and_conversions():
    t = tg.Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert t.shape == (1, 3) and t.ndim == 2 and t.dim() == 2 and t.numel() == 3 and len(t) == 1
    assert t.device == "cpu" and t.is_leaf and t.requires_grad and t.grad is None
    assert isinstance(t.numpy(), np.ndarray)
    assert tg.Tensor([[2.5]]).item() == 2.5
    y = t * 2
    assert not y.is_leaf and y.grad_fn is y.creator and y.creator.name == "mul"
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    assert "creator=mul" in repr(y) and "requires_grad=True" in repr(t)
    assert t.to("float64").dtype == np.float64 and t.double().float().dtype == np.float32
    assert t.cpu().device == "cpu" and t.size() == (1, 3) and t.size(1) == 3
    assert t.T.shape == (3, 1) and t.mT.shape == (3, 1)
    with pytest.raises(ValueError, match="one-element"):
        t.item()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(tg.DTypeError, match=r"int64.*\.float\(\)"):
        tg.Tensor([1, 2], requires_grad=True)
    with pytest.raises(tg.DTypeError):
        tg.arange(3).requires_grad_()


def test_factories():
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).shape == (2, 3)
    assert tg.ones(2, dtype="float64").dtype == np.float64
    assert np.all(tg.full((2, 2), 7.0).numpy() == 7.0)
    assert tg.full((2,), 3).dtype == tg.int64
    x = tg.randn(4, 5)
    assert tg.zeros_like(x).shape == (4, 5) and tg.ones_like(x).numpy().sum() == 20
    np.testing.assert_array_equal(tg.arange(5).numpy(), np.arange(5))
    np.testing.assert_allclose(tg.arange(0, 1, 0.25).numpy(), [0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(tg.eye(3).numpy(), np.eye(3))
    r = tg.rand(1000)
    assert 0 <= r.numpy().min() and r.numpy().max() < 1 and r.dtype == tg.float32
    assert tg.randn(3, requires_grad=True).requires_grad
    assert tg.randn(3, dtype="float64").dtype == np.float64


def test_manual_seed_reproducible():
    tg.manual_seed(42)
    a = tg.randn(5).numpy(), tg.rand(3).numpy()
    tg.manual_seed(42)
    b = tg.randn(5).numpy(), tg.rand(3).numpy()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    tg.manual_seed(43)
    assert not np.array_equal(tg.randn(5).numpy(), a[0])


def test_comparisons_and_setitem():
    x = tg.Tensor([1.0, -2.0, 3.0])
    assert (x > 0).dtype == tg.bool_
    np.testing.assert_array_equal((x > 0).numpy(), [True, False, True])
    np.testing.assert_array_equal((x == 3.0).numpy(), [False, False, True])
    x[1] = 0.0
    assert x.numpy()[1] == 0
    w = tg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 1.0


def test_python_operators_with_scalars_keep_dtype():
    x = tg.Tensor([1.0, 2.0])
    for y in (x + 1, 1 + x, x - 1, 1 - x, x * 2, 2 * x, x / 2, 2 / x, x ** 2, 2 ** x, -x, abs(x)):
        assert y.dtype == np.float32, y
    assert (x * np.float64(2.0)).dtype == np.float32  # NumPy 2 would promote; we do not


def test_iteration_and_split_chunk_cat_stack_naming():
    x = tg.arange(12).reshape(3, 4).float()
    rows = list(x)
    assert len(rows) == 3 and rows[1].shape == (4,)
    a, b = x.chunk(2, dim=1)
    assert a.shape == (3, 2)
    parts = x.split(3, dim=1)
    assert [p.shape[1] for p in parts] == [3, 1]
    assert tg.cat([a, b], dim=1).shape == (3, 4) and tg.stack([a, b]).shape == (2, 3, 2)
    assert x.unsqueeze(0).shape == (1, 3, 4) and x.unsqueeze(-1).squeeze(-1).shape == (3, 4)
    assert x.max(dim=1).indices.numpy().tolist() == [3, 3, 3]


def test_cuda_request_without_cupy_says_what_to_install(monkeypatch):
    # simulate a machine without CuPy, so this runs (not skips) where CuPy or the stand-in imports
    monkeypatch.setattr(tg.backend, "_cupy", None)
    monkeypatch.setattr(tg.backend, "_cupy_failed", "ModuleNotFoundError: No module named 'cupy'")
    assert not tg.cuda_available()
    with pytest.raises(tg.DeviceError, match="cupy"):
        tg.zeros(3, device="cuda")
    with pytest.raises(tg.DeviceError, match="cuda:N"):
        tg.zeros(3, device="gpu")


def test_device_roundtrip(device):
    x = tg.randn(3, 4, device=device, requires_grad=True)
    assert x.device.startswith(device)
    y = (x.to("cpu") * 2).sum()
    y.backward()
    assert x.grad.device == x.device
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_named_records_the_name_on_the_tensor_and_on_its_creator():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = (w * 2).tanh().named("h_t")
    assert h.name == "h_t" and h.creator.out_names == {0: "h_t"}
    a, b = w.split(1)
    b.named("second")
    assert b.creator.out_names == {1: "second"}
    assert w.named("W") is w and w.name == "W"
    with pytest.raises(TypeError, match="named: expected a str"):
        w.named(3)
