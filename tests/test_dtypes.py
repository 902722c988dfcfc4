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
    ("int.log()", lambda t: t.arange(1, 4).log(), "float32"),
    ("int.sin()", lambda t: t.arange(4).sin(), "float32"),
    ("int.cos()", lambda t: t.arange(4).cos(), "float32"),
    ("int.erf()", lambda t: t.arange(4).erf(), "float32"),
    ("int.expm1()", lambda t: t.arange(4).expm1(), "float32"),
    ("bool.sin()", lambda t: t.Tensor([True, False]).sin(), "float32"),
    ("cat([int, float32])", lambda t: t.cat([t.arange(2), t.ones(2)]), "float32"),
    ("cat([float64, int])", lambda t: t.cat([t.ones(2, dtype=t.float64), t.arange(2)]), "float64"),
    ("cat([bool, int])", lambda t: t.cat([t.Tensor([True]), t.arange(2)]), "int64"),
    ("stack([int, float32])", lambda t: t.stack([t.arange(2), t.ones(2)]), "float32"),
    ("stack([float32, float64])", lambda t: t.stack([t.ones(2), t.ones(2, dtype=t.float64)]), "float64"),
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
        self.cat, self.stack = torch.cat, torch.stack


def test_mean_of_integers_is_float32():
    assert tg.arange(4).mean().dtype == np.float32 and tg.arange(4).mean().item() == 1.5


def test_softmax_of_integers_is_float32():
    assert F.softmax(tg.arange(3)).dtype == np.float32


# PyTorch refuses these on integer tensors (no integer kernel for the activations, and matmul wants
# equal dtypes); the same rule as above applies: integers give the default float dtype float32.
NO_TORCH_CASES = [
    ("softplus", lambda: tg.arange(4).softplus()),
    ("leaky_relu", lambda: tg.arange(4).leaky_relu()),
    ("elu", lambda: tg.arange(4).elu()),
    ("gelu", lambda: tg.arange(4).gelu()),
    ("gelu tanh", lambda: tg.arange(4).gelu(approximate="tanh")),
    ("int @ float32", lambda: tg.arange(4) @ tg.ones(4)),
    ("float32 @ int", lambda: tg.ones(2, 4) @ tg.arange(4)),
    ("addmm(float32, int, float32)", lambda: tg.addmm(tg.ones(2), tg.arange(4).reshape(2, 2), tg.ones(2, 2))),
    ("addmm(float32, int, int)", lambda: tg.addmm(tg.ones(2), tg.arange(4).reshape(2, 2), tg.eye(2).long())),
]


@pytest.mark.parametrize("name,f", NO_TORCH_CASES, ids=[c[0] for c in NO_TORCH_CASES])
def test_float_valued_ops_of_integers_are_float32(name, f):
    y = f()
    assert y.dtype == np.float32, f"{name}: got {y.dtype}"


def test_float_valued_ops_of_integers_compute_the_float_values():
    x = tg.arange(-2, 3)
    xf = np.arange(-2, 3, dtype=np.float32)
    np.testing.assert_allclose(x.softplus().numpy(), np.logaddexp(0, xf), rtol=1e-6)
    np.testing.assert_allclose(x.leaky_relu(0.1).numpy(), np.where(xf > 0, xf, 0.1 * xf), rtol=1e-6)
    np.testing.assert_allclose(x.elu().numpy(), np.where(xf > 0, xf, np.expm1(xf)), rtol=1e-6)
    np.testing.assert_allclose((x @ tg.ones(5)).item(), 0.0)


@pytest.mark.parametrize("join", ["cat", "stack"])
def test_cat_stack_of_float32_and_float64_give_each_leaf_its_own_grad_dtype(join):
    a = tg.ones(2, requires_grad=True)
    b = tg.ones(2, dtype=tg.float64, requires_grad=True)
    y = getattr(tg, join)([a, b])
    assert y.dtype == np.float64  # as PyTorch: the wider float
    (y * tg.arange(4).reshape(y.shape)).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad.numpy(), [0, 1])
    np.testing.assert_array_equal(b.grad.numpy(), [2, 3])
