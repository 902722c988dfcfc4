"""dtypes that stay put: PyTorch's promotion where NumPy 2's differs.

A float tensor keeps its dtype when combined with any number (Python or NumPy scalar); an integer
or bool tensor combined with a float, or divided, gives the default float dtype float32 (or the
float tensor's dtype); integer arithmetic stays integer. Each case is checked against PyTorch when
it is installed.
"""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import functional as F

FLOATS = ["float32", "float64"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,f", [
    ("pow np.float64", lambda w: w ** np.float64(2)),
    ("pow np.float32", lambda w: w ** np.float32(2)),
    ("pow np.int64", lambda w: w ** np.int64(2)),
    ("rpow np.float64", lambda w: np.float64(2) ** w),
    ("clamp np.float64", lambda w: w.clamp(np.float64(0))),
    ("clamp max np.float64", lambda w: w.clamp(max=np.float64(1.5))),
    ("clamp np.float32", lambda w: w.clamp(np.float32(0), np.float32(1.5))),
    ("clamp 0-d array", lambda w: w.clamp(np.array(0.5))),
    ("mul np.float64", lambda w: w * np.float64(2)),
    ("div np.float64", lambda w: w / np.float64(2)),
    ("rdiv np.float64", lambda w: np.float64(2) / w),
    ("add np.int64", lambda w: w + np.int64(1)),
    ("where np.float64", lambda w: tg.where(w > 1, w, np.float64(0.5))),
    ("maximum np.float64", lambda w: tg.maximum(w, np.float64(0.5))),
    ("add int tensor", lambda w: w + tg.arange(2)),
    ("mul int tensor", lambda w: tg.arange(2) * w),
    ("div by int tensor", lambda w: w / tg.arange(1, 3)),
    ("where int tensor", lambda w: tg.where(w > 1, tg.arange(2), w)),
    ("pow int tensor", lambda w: w ** tg.arange(2)),
    ("sigmoid", lambda w: w.sigmoid()),
])
def test_float_tensor_keeps_its_dtype(dtype, name, f):
    w = tg.Tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    y = f(w)
    assert y.dtype == np.dtype(dtype), f"{name}: {dtype} became {y.dtype}"
    y.sum().backward()
    assert w.grad.dtype == np.dtype(dtype)


def test_numpy_scalar_gives_the_same_values_as_python_number():
    w = tg.Tensor([0.5, 2.0, -1.0])
    np.testing.assert_array_equal((w ** np.float64(3)).numpy(), (w ** 3.0).numpy())
    np.testing.assert_array_equal(w.clamp(np.float64(0), np.float64(1)).numpy(), [0.5, 1.0, 0.0])


INT_CASES = [  # (name, f, expected dtype); the same expression is evaluated in PyTorch below
    ("int * 0.5", lambda t: t.Tensor([1, 2]) * 0.5, "float32"),
    ("int * np.float64(0.5)", lambda t: t.Tensor([1, 2]) * np.float64(0.5), "float32"),
    ("arange / 4", lambda t: t.arange(4) / 4, "float32"),
    ("arange / 4.0", lambda t: t.arange(4) / 4.0, "float32"),
    ("4 / arange", lambda t: 4 / t.arange(1, 4), "float32"),
    ("int / int tensor", lambda t: t.arange(1, 4) / t.arange(1, 4), "float32"),
    ("int + 1.5", lambda t: t.arange(4) + 1.5, "float32"),
    ("1.5 - int", lambda t: 1.5 - t.arange(4), "float32"),
    ("int ** 0.5", lambda t: t.arange(4) ** 0.5, "float32"),
    ("2.0 ** int", lambda t: 2.0 ** t.arange(4), "float32"),
    ("int ** 2", lambda t: t.arange(4) ** 2, "int64"),
    ("int * 2", lambda t: t.arange(4) * 2, "int64"),
    ("int + int tensor", lambda t: t.arange(4) + t.arange(4), "int64"),
    ("int + float32 tensor", lambda t: t.arange(4) + t.ones(4), "float32"),
    ("int + float64 tensor", lambda t: t.arange(4) + t.ones(4, dtype=t.float64), "float64"),
    ("float32 + float64 tensor", lambda t: t.ones(4) + t.ones(4, dtype=t.float64), "float64"),
    ("int.clamp(0.5)", lambda t: t.arange(4).clamp(0.5), "float32"),
    ("int.clamp(1)", lambda t: t.arange(4).clamp(1), "int64"),
    ("int.exp()", lambda t: t.arange(4).exp(), "float32"),
    ("int.sqrt()", lambda t: t.arange(4).sqrt(), "float32"),
    ("int.tanh()", lambda t: t.arange(4).tanh(), "float32"),
    ("int.sigmoid()", lambda t: t.arange(4).sigmoid(), "float32"),
    ("maximum(int, 0.5)", lambda t: t.maximum(t.arange(4), t.full((4,), 0.5)), "float32"),
    ("bool * 0.5", lambda t: t.Tensor([True, False]) * 0.5, "float32"),
    ("bool + 2", lambda t: t.Tensor([True, False]) + 2, "int64"),
    ("where(int, 0.5)", lambda t: t.where(t.Tensor([True, False]), t.arange(2), 0.5), "float32"),
]


@pytest.mark.parametrize("name,f,expected", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_integer_tensor_with_float_gives_default_float(name, f, expected):
    y = f(tg)
    assert y.dtype == np.dtype(expected), f"{name}: got {y.dtype}"


@pytest.mark.parametrize("name,f,expected", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_promotion_matches_pytorch(name, f, expected):
    torch = pytest.importorskip("torch")
    y, ty = f(tg), f(_TorchNames(torch))
    assert str(ty.dtype) == f"torch.{expected}", f"{name}: PyTorch gives {ty.dtype}"
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)


class _TorchNames:
    """The few tinygrad_rnn names INT_CASES use, spelled in PyTorch."""

    def __init__(self, torch):
        self.torch = torch
        self.float64 = torch.float64
        self.Tensor = torch.tensor
        self.arange, self.ones, self.full = torch.arange, torch.ones, torch.full
        self.maximum, self.where = torch.maximum, torch.where


def test_mean_of_integers_is_float32():
    assert tg.arange(4).mean().dtype == np.float32 and tg.arange(4).mean().item() == 1.5


def test_softmax_of_integers_is_float32():
    assert F.softmax(tg.arange(3)).dtype == np.float32
