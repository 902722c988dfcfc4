"""In-place edits after the forward are detected (issue 12): every write through the library
stamps the tensor's version, and a backward that needs the old values raises InplaceError naming
the tensor, the op that saved it, its time step and the fix, instead of a wrong gradient."""
import numpy as np
import pytest

import tinygrad_rnn as tg
import tinygrad_rnn.nn as nn
from tinygrad_rnn import InplaceError


def test_setitem_on_an_input_after_forward():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    x = tg.Tensor([3.0, 4.0]).named("x")
    y = (w * x).sum()
    x[0] = 100.0
    with pytest.raises(InplaceError) as e:
        y.backward()
    msg = str(e.value)
    for part in ("input 1 of 'mul'", "float32 tensor of shape (2,)", "named 'x'",
                 "backward() before optimizer.step()", "clone()", "no_grad()"):
        assert part in msg, part
    assert w.grad is None  # nothing half-accumulated


def test_write_before_forward_is_fine_and_gradient_is_right():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    x = tg.Tensor([3.0, 4.0])
    x[0] = 100.0
    (w * x).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [100.0, 4.0])


def test_write_through_detach_of_a_weight():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    x = tg.Tensor([3.0, 4.0])
    y = (w * x).sum()
    w.detach()[0] = 100.0
    with pytest.raises(InplaceError, match="input 0 of 'mul'.*a leaf that requires grad"):
        y.backward()


def test_write_through_detach_of_a_saved_output():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = w.exp()
    y.detach()[...] = 0
    with pytest.raises(InplaceError, match="output 0 of 'exp'"):
        y.sum().backward()


def test_write_through_a_view_of_a_saved_input():
    w = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    x = tg.Tensor(np.arange(6.0).reshape(2, 3))
    xr = x.reshape(3, 2)            # a view: shares x's storage and its version
    y = (xr.T * w).sum()
    x[0, 0] = 7.0
    with pytest.raises(InplaceError):
        y.backward()
    row = x[1]                      # basic indexing: a view too; writing it edits x
    y2 = (x * w).sum()
    row[0] = 5.0
    with pytest.raises(InplaceError, match="input 0 of 'mul'"):
        y2.backward()


def test_writes_to_unsaved_tensors_do_not_raise():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    b = tg.Tensor([3.0, 4.0])
    y = (w + b).sum()  # add saves nothing: its gradient does not depend on b's values
    b[0] = 100.0
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_the_message_names_the_time_step_of_the_op():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    xs = [tg.Tensor([1.0, 1.0]) for _ in range(3)]
    h = tg.Tensor([0.0, 0.0])
    for t, x in enumerate(xs):
        with tg.scope("step", t):
            h = (h + w * x).tanh()
    xs[1].fill_(0.5)
    with pytest.raises(InplaceError, match="at time step 1"):
        h.sum().backward()


def _mlp_case():
    tg.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    return net, tg.optim.SGD(net.parameters(), lr=0.5), tg.randn(8, 4)


def test_sgd_step_between_forward_and_backward_on_an_mlp():
    net, opt, x = _mlp_case()
    loss = net(x).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    loss2 = net(x).pow(2).mean()
    opt.step()  # no gradients: nothing changes, no version bump
    loss2.backward()  # fine: nothing was written since loss2's forward
    loss3 = net(x).pow(2).mean()
    opt.step()  # updates every weight that loss3's graph saved
    with pytest.raises(InplaceError, match="optimizer.step"):
        loss3.backward()


def test_adam_step_between_forward_and_backward_on_an_lstm():
    tg.manual_seed(0)
    lstm = nn.LSTM(3, 5)
    opt = tg.optim.Adam(lstm.parameters(), lr=0.01)
    x = tg.randn(4, 2, 3)
    out, _ = lstm(x)
    out.sum().backward()
    out, _ = lstm(x)
    opt.step()
    with pytest.raises(InplaceError, match=r"time step|module"):
        out.pow(2).sum().backward()


def _mlp_reference_grads(params: list, x: np.ndarray, steps: int, lr: float) -> list:
    """The same SGD training in float64 NumPy with hand-written gradients: (loss, grads) per step."""
    w1, b1, w2, b2 = (p.astype(np.float64) for p in params)
    n, out = x.shape[0], []
    for _ in range(steps):
        h = np.tanh(x @ w1.T + b1)
        y = h @ w2.T + b2
        gy = 2 * y / n                       # d mean(y^2) / dy, y is (n, 1)
        gw2, gb2 = gy.T @ h, gy.sum(0)
        gh = (gy @ w2) * (1 - h * h)
        gw1, gb1 = gh.T @ x, gh.sum(0)
        grads = [gw1, gb1, gw2, gb2]
        out.append(((y * y).mean(), grads))
        w1, b1, w2, b2 = (p - lr * g for p, g in zip((w1, b1, w2, b2), grads))
    return out


def test_right_order_training_is_unaffected():
    # zero_grad, forward, backward, step: no InplaceError, and every step's gradients are the
    # float64 reference's (so the version checks change nothing in the right order)
    net, _, x = _mlp_case()
    params = list(net.parameters())
    opt = tg.optim.SGD(params, lr=0.1)
    assert [tuple(p.shape) for p in params] == [(16, 4), (16,), (1, 16), (1,)]
    ref = _mlp_reference_grads([p.numpy() for p in params], x.numpy().astype(np.float64), 4, 0.1)
    losses = []
    for ref_loss, ref_grads in ref:
        opt.zero_grad()
        loss = net(x).pow(2).mean()
        loss.backward()
        losses.append(loss.item())
        np.testing.assert_allclose(loss.item(), ref_loss, rtol=1e-5, atol=1e-7)
        for p, g in zip(params, ref_grads):
            np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-4, atol=1e-6)
        opt.step()
    assert losses[-1] < losses[0]


def test_init_and_load_state_dict_are_checked_writes():
    lin = nn.Linear(3, 2)
    x = tg.randn(4, 3)
    y = lin(x).sum()
    nn.init.zeros_(lin.weight)
    with pytest.raises(InplaceError):
        y.backward()
    y = lin(x).sum()
    lin.load_state_dict(nn.Linear(3, 2).state_dict())
    with pytest.raises(InplaceError):
        y.backward()


def test_editing_weights_under_no_grad_is_allowed_and_checked():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(InplaceError, match="no_grad"):
        w[0] = 0.0  # grad mode on: refused, as PyTorch refuses a leaf that requires grad
    with tg.no_grad():
        w[0] = 0.0  # the docs' way of editing a weight before the forward
    x = tg.Tensor([3.0, 4.0])
    y = (w * x).sum()
    y.backward()
    np.testing.assert_array_equal(w.numpy(), [0.0, 2.0])
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])
    y = (w * x).sum()
    with tg.no_grad():
        w.fill_(1.0)
    with pytest.raises(InplaceError):
        y.backward()


def test_copy_fill_zero_methods():
    t = tg.Tensor(np.zeros((2, 2), np.float32))
    assert t.copy_(tg.Tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64")) is t
    assert t.dtype == np.float32 and t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    t.copy_(np.array([5.0, 6.0]))  # broadcasts over rows
    assert t.tolist() == [[5.0, 6.0], [5.0, 6.0]]
    assert t.fill_(2.0).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert t.zero_().tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(tg.ShapeError, match="copy_"):
        t.copy_(np.ones(3))


def test_writing_a_tensor_that_requires_grad_into_one_that_does_not_raises():
    # only the values would be copied: the gradient through the written tensor would be lost
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    out = tg.zeros(2)
    with pytest.raises(InplaceError, match=r"gradient .* would be lost.*tg\.stack"):
        out[0] = (w * 2).sum()
    out2 = tg.zeros(2)
    with pytest.raises(InplaceError, match="copy_.*requires grad"):
        out2.copy_(w * 3)
    with pytest.raises(InplaceError, match="detach"):
        out2.fill_(w[0])
    assert out.tolist() == [0.0, 0.0] and out2.tolist() == [0.0, 0.0]  # refused before writing
    # the fix: build the result as a new tensor; the gradient flows through it
    out = tg.stack([(w * 2).sum(), tg.Tensor(0.0)])
    ((out * out).sum() + w.sum()).backward()
    np.testing.assert_allclose(w.grad.numpy(), [1 + 2 * 6 * 2, 1 + 2 * 6 * 2])
    # dropping the gradient on purpose is allowed: detach() or no_grad
    out2.copy_((w * 3).detach())
    assert out2.tolist() == [3.0, 6.0] and not out2.requires_grad
    with tg.no_grad():
        out2[1] = w[0]
    assert out2.tolist() == [3.0, 1.0]


def test_clone_before_editing_is_the_fix():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    x = tg.Tensor([3.0, 4.0])
    y = (w * x).sum()
    x2 = x.clone()
    x2[0] = 100.0  # edits the copy; the graph's x is intact
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])


def test_data_is_the_unchecked_escape_hatch():
    # documented (docs/anomaly.md): writes through .data are not tracked, as in PyTorch
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    x = tg.Tensor([3.0, 4.0])
    y = (w * x).sum()
    x.data[0] = 100.0
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [100.0, 4.0])


def test_retain_graph_second_backward_after_a_write_raises():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    x = tg.Tensor([3.0, 4.0])
    y = (w * x).sum()
    y.backward(retain_graph=True)
    x[1] = 0.0
    with pytest.raises(InplaceError):
        y.backward()


def test_create_graph_backward_is_checked_too():
    w = tg.Tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (g,) = tg.grad((w * w * w).sum(), w, create_graph=True)  # 3 w^2: its graph saved w
    with tg.no_grad():
        w[0] = 0.0
    with pytest.raises(InplaceError):
        g.sum().backward()
