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


# ================================================================ issue 12: unclear errors made clear
def test_grad_assignment_refuses_an_array():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"grad: a gradient must be a Tensor or None, got ndarray.*"
                                        r"Tensor\(array, dtype='float32'\)"):
        w.grad = np.ones(2)
    assert w.grad is None
    w.grad = tg.Tensor(np.ones(2, np.float32))  # wrapped, as the message says: accepted
    tg.optim.SGD([w], lr=0.5).step()
    np.testing.assert_allclose(w.numpy(), [0.5, 1.5])


def test_grad_assignment_refuses_another_shape_or_dtype():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"gradient of shape \(3,\) to a tensor of shape \(2,\)"):
        w.grad = tg.ones(3)
    with pytest.raises(tg.ShapeError, match=r"gradient of shape \(1,\)"):
        w.grad = tg.ones(1)  # would broadcast silently in backward's +=
    with pytest.raises(tg.DTypeError, match="float64 gradient to a float32 tensor"):
        w.grad = tg.ones(2, dtype="float64")
    w.grad = tg.ones(2)
    (w * 2).sum().backward()  # accumulates into the preset gradient
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 3.0])
    w.grad = None
    assert w.grad is None


@pytest.mark.parametrize("leaf", [True, False])
def test_hook_returning_another_shape_is_refused_at_the_hook(leaf):
    w = tg.Tensor([1.0, 2.0], requires_grad=True)

    def widen(g):
        return tg.ones(3)

    y = w * 2
    (w if leaf else y).register_hook(widen)
    where = "a leaf tensor" if leaf else "output 0 of 'mul'"
    with pytest.raises(tg.ShapeError, match=rf"hook '.*widen' on {where} returned a gradient of "
                                            rf"shape \(3,\) for a gradient of shape \(2,\)"):
        y.sum().backward()
    assert w.grad is None


def test_hook_returning_another_dtype_or_a_number_is_refused():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    w.register_hook(lambda g: g.to(dtype="float64"))
    with pytest.raises(tg.DTypeError, match="returned a float64 gradient for a float32 gradient"):
        (w * 2).sum().backward()
    v = tg.Tensor([1.0, 2.0], requires_grad=True)
    v.register_hook(lambda g: 1.0)
    with pytest.raises(TypeError, match="returned a float; a hook returns the replacement gradient"):
        (v * 2).sum().backward()
    u = tg.Tensor([1.0, 2.0], requires_grad=True)
    u.register_hook(lambda g: g * 3)  # same shape and dtype: used
    (u * 2).sum().backward()
    np.testing.assert_allclose(u.grad.numpy(), [6.0, 6.0])


def test_optimizer_state_of_another_type_is_refused():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    sgd = tg.optim.SGD([w], lr=0.1, momentum=0.9)
    (w * 2).sum().backward()
    sgd.step()
    adam = tg.optim.Adam([w])
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: param group 0 .* lacks Adam's "
                                         r"hyperparameters \['amsgrad', 'betas', 'eps'\].*another optimizer"):
        adam.load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="SGD.load_state_dict.*lacks SGD's hyperparameters"):
        tg.optim.SGD([w], lr=0.1).load_state_dict(adam.state_dict())
    adam.step()
    tg.optim.AdamW([w]).load_state_dict(adam.state_dict())  # same hyperparameters: accepted


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
def test_torch_tensor_as_lengths_is_accepted(cell):
    torch = pytest.importorskip("torch")
    from tinygrad_rnn import nn
    tg.manual_seed(0)
    rnn = getattr(nn, cell)(3, 4, batch_first=True)
    x = tg.randn(2, 5, 3)
    a, b = rnn(x, lengths=torch.tensor([5, 3]))[0], rnn(x, lengths=[5, 3])[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(tg.DTypeError, match=r"lengths must be integers.*\[5.0, 3.0\]"):
        rnn(x, lengths=torch.tensor([5.0, 3.0]))


@pytest.mark.parametrize("make", [lambda a: tg.Tensor(a), lambda a: tg.ones(1) * a,
                                  lambda a: a + tg.ones(1)])
def test_complex_and_object_arrays_are_refused_like_lists(make):
    with pytest.raises(tg.DTypeError, match=r"complex data \(dtype complex128\).*a.real"):
        make(np.array([1 + 2j]))
    with pytest.raises(tg.DTypeError, match=r"Python objects \(dtype object\).*astype\('float32'\)"):
        make(np.array([1, "a"], dtype=object))
    with pytest.raises(tg.DTypeError):
        tg.Tensor([1 + 2j])  # the same data as a list: refused already


def test_where_shape_error_names_all_three_shapes():
    with pytest.raises(tg.ShapeError, match=r"where: cannot broadcast cond of shape \(3,\), a of shape "
                                            r"\(2,\) and b of shape \(2,\)"):
        tg.where(tg.ones(3) > 0, tg.ones(2), tg.ones(2))
    with pytest.raises(tg.ShapeError, match=r"cond of shape \(3,\), a of shape \(2,\) and b of shape "
                                            r"\(\) \(a number\)"):
        tg.where(tg.ones(3) > 0, tg.ones(2), 0.0)
    assert tg.where(tg.ones(3, 1) > 0, tg.ones(2), 0.0).shape == (3, 2)  # broadcastable: fine


@pytest.mark.parametrize("op", ["amax", "amin"])
def test_extremum_of_empty_tensor(op):
    with pytest.raises(tg.ShapeError, match=rf"{op}: the tensor of shape \(0,\) has no elements.*"
                                            rf"numel\(\)"):
        getattr(tg.zeros(0), op)()
    with pytest.raises(tg.ShapeError, match=rf"{op}: the tensor of shape \(0, 3\) has size 0 in dim 0"):
        getattr(tg.zeros(0, 3), op)(0)
    assert getattr(tg.zeros(0, 3), op)(1).shape == (0,)  # reducing a non-empty dim: fine


def test_zero_slice_step_and_empty_index_list():
    w = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"getitem: slice step cannot be zero.*shape \(3,\)"):
        w[::0]
    e = w[[]]  # PyTorch: an empty selection
    assert e.shape == (0,) and e.dtype == np.float32
    (e.sum() + w[[2, 0]].sum()).backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 0.0, 1.0])


def test_arange_zero_step():
    with pytest.raises(ValueError, match=r"arange: step must be non-zero, got step=0 \(start=0, end=1\)"):
        tg.arange(0, 1, 0)


def test_no_dimension_to_join_or_split_in_a_0d_tensor():
    s = tg.Tensor(1.0)
    with pytest.raises(tg.ShapeError, match=r"cat: tensor 0 is 0-d.*tg.stack"):
        tg.cat([s, tg.Tensor(2.0)])
    assert tg.stack([s, tg.Tensor(2.0)]).shape == (2,)
    for f, name in [(lambda: s.split(1), "split"), (lambda: s.chunk(1), "chunk"),
                    (lambda: s.unbind(0), "unbind")]:
        with pytest.raises(tg.ShapeError, match=rf"{name}: a 0-d tensor"):
            f()


REDUCTIONS_0D = [
    ("sum", lambda x, d: x.sum(d)), ("sum keepdim", lambda x, d: x.sum(d, keepdim=True)),
    ("mean", lambda x, d: x.mean(dim=d)), ("amax", lambda x, d: x.amax(d)),
    ("amin", lambda x, d: x.amin(d)), ("softmax", lambda x, d: x.softmax(d)),
    ("log_softmax", lambda x, d: x.log_softmax(d)), ("logsumexp", lambda x, d: x.logsumexp(d)),
    ("argmax", lambda x, d: x.argmax(d)), ("squeeze", lambda x, d: x.squeeze(d)),
    ("transpose", lambda x, d: x.transpose(0, d)),
]


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("name,f", REDUCTIONS_0D, ids=[r[0] for r in REDUCTIONS_0D])
def test_dim_0_and_minus_1_of_a_0d_tensor(name, f, dim):
    x = tg.Tensor(1.5, dtype="float64", requires_grad=True)
    y = f(x, dim)
    assert y.shape == ()
    if y.requires_grad:
        y.backward()
        assert x.grad.shape == ()
    torch = pytest.importorskip("torch")
    tx = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    ty = f(tx, dim)
    assert tuple(ty.shape) == ()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    if y.requires_grad:
        ty.backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_other_dims_of_a_0d_tensor_are_refused():
    with pytest.raises(IndexError, match=r"sum: dim 1 is out of range .* \(valid: 0 or -1 for a 0-d tensor\)"):
        tg.Tensor(1.0).sum(1)
    with pytest.raises(IndexError, match=r"softmax|amax"):
        tg.Tensor(1.0).softmax(-2)


# ============================================================ one table of Tensor methods, nn imports
def test_tensor_methods_exist_after_importing_only_the_core():
    import subprocess
    import sys
    code = ("import sys, tinygrad_rnn as tg\n"
            "x = tg.Tensor([[1.0, 2.0], [3.0, 0.0]])\n"
            "assert 'tinygrad_rnn.nn' not in sys.modules\n"
            "print(x.softmax(-1).sum(-1).tolist(), x.log_softmax().shape, x.logsumexp(0).shape)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1.0, 1.0] (2, 2) (2,)"


def test_tensor_methods_are_bound_in_one_place():
    """Only ops._bind assigns Tensor methods: no module patches Tensor at import time."""
    import ast
    import pathlib
    pkg = pathlib.Path(tg.__file__).parent
    offenders = []
    for path in pkg.rglob("*.py"):
        if path.name in ("ops.py", "tensor.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "Tensor":
                    offenders.append(f"{path.relative_to(pkg)}:{node.lineno} Tensor.{t.attr}")
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr"
                    and node.args and getattr(node.args[0], "id", None) == "Tensor"):
                offenders.append(f"{path.relative_to(pkg)}:{node.lineno} setattr(Tensor, ...)")
    assert not offenders, offenders
    assert F.softmax is tg.Tensor.softmax and F.logsumexp is tg.Tensor.logsumexp


def test_nn_names_are_imported_explicitly():
    from tinygrad_rnn import nn
    assert {"LSTM", "Linear", "GRU", "Seq2Seq", "utils", "AdditiveAttention"} <= set(dir(nn))
    assert not hasattr(nn, "__getattr__")  # no lazy loading: static tools see every name
    for name in nn.__all__:
        assert name in vars(nn), name


def test_numpy_value_errors_inside_an_op_are_not_called_shape_errors():
    with pytest.raises(ValueError, match=r"pow_scalar: Integers to negative integer powers .*shape \(2,\), "
                                         r"dtype int64") as e:
        tg.arange(1, 3) ** -1
    assert not isinstance(e.value, tg.ShapeError)
