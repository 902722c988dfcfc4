"""Every error a user can cause in the core names the op, the shapes/devices and a fix."""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import functional as F


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(tg.ShapeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        tg.randn(2, 3) @ tg.randn(4, 5)
    with pytest.raises(tg.ShapeError, match="at least 1 dimension"):
        tg.randn(2) @ tg.Tensor(3.0)


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(tg.ShapeError, match=r"add.*\(2, 3\).*\(4,\)"):
        tg.randn(2, 3) + tg.randn(4)
    with pytest.raises(tg.ShapeError, match=r"mul"):
        tg.randn(2, 3) * tg.randn(2)


def test_cat_and_stack_mismatch():
    with pytest.raises(tg.ShapeError, match=r"cat.*\(2, 4\).*\(2, 3\).*dim 0"):
        tg.cat([tg.randn(2, 3), tg.randn(2, 4)], dim=0)
    with pytest.raises(tg.ShapeError, match=r"stack.*\(3,\).*\(2,\)"):
        tg.stack([tg.randn(2), tg.randn(3)])


def test_reshape_split_and_dim_errors():
    with pytest.raises(tg.ShapeError, match=r"reshape.*\(2, 3\).*\(4, -1\)"):
        tg.randn(2, 3).reshape(4, -1)
    with pytest.raises(tg.ShapeError, match="split"):
        tg.randn(5).split([2, 2])
    with pytest.raises(IndexError, match=r"sum: dim 2 is out of range.*2 dimension"):
        tg.randn(2, 3).sum(2)


def test_requires_grad_on_integer_data():
    with pytest.raises(tg.DTypeError, match="floating-point"):
        tg.Tensor([1, 2, 3], requires_grad=True)


def test_indexing_out_of_range():
    x = tg.randn(3, 4)
    with pytest.raises(IndexError, match=r"index 5 is out of range for dimension 0 of size 3.*\(3, 4\)"):
        x[np.array([0, 5])]
    with pytest.raises(IndexError, match=r"index 4 .*dimension 1 of size 4"):
        x[0, 4]
    with pytest.raises(IndexError, match="integer or bool"):
        x[tg.Tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match="boolean mask"):
        x[np.array([True, False])]


def test_backward_errors():
    x = tg.randn(2, 2, requires_grad=True)
    with pytest.raises(tg.GradError, match=r"scalar.*loss.sum\(\)"):
        (x * 2).backward()
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(tg.GraphFreedError, match="retain_graph"):
        y.backward()


def test_device_mismatch_names_both_devices(monkeypatch):
    from tinygrad_rnn import autograd
    a, b = tg.randn(2), tg.randn(2)
    monkeypatch.setattr(type(b), "device", property(lambda t: "cuda:0" if t is b else "cpu"))
    with pytest.raises(tg.DeviceError, match=r"cpu.*cuda:0"):
        autograd._check_same_device("add", a, b)


def test_loss_errors():
    logits = tg.randn(3, 4)
    with pytest.raises(IndexError, match=r"target value 7 is out of range for 4 classes"):
        F.cross_entropy(logits, [0, 7, 1])
    with pytest.raises(tg.DTypeError, match="integer class indices"):
        F.cross_entropy(logits, tg.Tensor([0.0, 1.0, 2.0]))
    with pytest.raises(tg.ShapeError, match=r"target of shape \(3,\)"):
        F.cross_entropy(logits, [0, 1])
    with pytest.raises(tg.ShapeError, match=r"mse_loss.*\(3, 4\).*\(3,\)"):
        F.mse_loss(logits, tg.randn(3))
    with pytest.raises(ValueError, match=r"dropout.*\[0, 1\)"):
        F.dropout(logits, 1.0)
    with pytest.raises(tg.ShapeError, match="linear"):
        F.linear(logits, tg.randn(2, 5))


def test_bad_dtype_and_device_strings():
    with pytest.raises(tg.DTypeError, match="not supported"):
        tg.zeros(2, dtype="float128x")
    with pytest.raises(tg.DeviceError, match="not understood"):
        tg.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="cannot combine a Tensor with str"):
        tg.randn(2) + "a"
