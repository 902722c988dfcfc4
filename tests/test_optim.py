"""optim: SGD, Adam, AdamW, RMSprop, Adagrad against hand-computed updates (and torch.optim under
importorskip), param groups, state_dict round-trips, dtype preservation, clear errors."""
import math

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim

from conftest import to_np

GRADS = [np.array([0.5, 1.0]), np.array([0.2, -0.4]), np.array([-0.1, 0.3])]


def run(opt_cls, grads=GRADS, p0=(1.0, -2.0), dtype="float64", device="cpu", **kw):
    """Apply fixed gradients for len(grads) steps; return the parameter after each step."""
    p = tg.Tensor(np.array(p0), dtype=dtype, device=device, requires_grad=True)
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = tg.Tensor(g, dtype=dtype, device=device)
        opt.step()
        out.append(to_np(p).copy())
    return out, opt, p


# ============================================================================ hand computations
def test_sgd_plain_by_hand():
    out, _, _ = run(optim.SGD, lr=0.1)
    np.testing.assert_allclose(out[0], [1.0 - 0.05, -2.0 - 0.1], rtol=1e-14)
    np.testing.assert_allclose(out[1], [0.95 - 0.02, -2.1 + 0.04], rtol=1e-14)
    np.testing.assert_allclose(out[2], [0.93 + 0.01, -2.06 - 0.03], rtol=1e-14)


def test_sgd_momentum_by_hand():
    out, opt, p = run(optim.SGD, lr=0.1, momentum=0.9)
    # b1 = g1 = (0.5, 1);  b2 = 0.9 b1 + g2 = (0.65, 0.5);  b3 = 0.9 b2 + g3 = (0.485, 0.75)
    np.testing.assert_allclose(out[0], [0.95, -2.1], rtol=1e-14)
    np.testing.assert_allclose(out[1], [0.885, -2.15], rtol=1e-14)
    np.testing.assert_allclose(out[2], [0.8365, -2.225], rtol=1e-14)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [0.485, 0.75], rtol=1e-14)


def test_sgd_dampening_nesterov_weight_decay_by_hand():
    out, _, _ = run(optim.SGD, grads=GRADS[:2], lr=0.1, momentum=0.5, dampening=0.5)
    # b1 = g1 (no dampening on the first step) = (0.5, 1); b2 = 0.5 b1 + 0.5 g2 = (0.35, 0.3)
    np.testing.assert_allclose(out[1], [0.95 - 0.035, -2.1 - 0.03], rtol=1e-14)
    out, _, _ = run(optim.SGD, grads=GRADS[:2], lr=0.1, momentum=0.5, nesterov=True)
    # step 1: b = (0.5, 1), g + 0.5 b = (0.75, 1.5) -> p = (0.925, -2.15)
    # step 2: b = 0.5 (0.5, 1) + (0.2, -0.4) = (0.45, 0.1), g + 0.5 b = (0.425, -0.35)
    np.testing.assert_allclose(out[0], [0.925, -2.15], rtol=1e-14)
    np.testing.assert_allclose(out[1], [0.925 - 0.0425, -2.15 + 0.035], rtol=1e-14)
    out, _, _ = run(optim.SGD, grads=GRADS[:1], lr=0.1, weight_decay=0.1)
    # g = (0.5, 1) + 0.1 (1, -2) = (0.6, 0.8)
    np.testing.assert_allclose(out[0], [0.94, -2.08], rtol=1e-14)


def adam_by_hand(grads, p, lr, b1, b2, eps, wd=0.0, decoupled=False, amsgrad=False):
    m = v = vmax = 0.0
    out = []
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        mhat = m / (1 - b1 ** t)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * mhat / (math.sqrt(vhat) + eps)
        out.append(p)
    return out


def test_adam_by_hand():
    g = [0.5, 0.25, -1.0]
    out, opt, p = run(optim.Adam, grads=[np.array([x]) for x in g], p0=(1.0,), lr=0.1)
    # step 1: m = 0.05, v = 0.00025, m^ = 0.5, v^ = 0.25 -> p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    np.testing.assert_allclose(out[0][0], 1 - 0.1 * 0.5 / (0.5 + 1e-8), rtol=1e-14)
    expect = adam_by_hand(g, 1.0, 0.1, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose([o[0] for o in out], expect, rtol=1e-12)
    assert opt.state[p]["step"] == 3
    np.testing.assert_allclose(opt.state[p]["exp_avg"], [0.9 * (0.9 * 0.05 + 0.025) - 0.1], rtol=1e-14)


@pytest.mark.parametrize("kw", [dict(weight_decay=0.1), dict(amsgrad=True), dict(betas=(0.5, 0.9), eps=1e-3)])
def test_adam_options_by_hand(kw):
    g = [0.5, 0.25, -1.0]
    out, _, _ = run(optim.Adam, grads=[np.array([x]) for x in g], p0=(1.0,), lr=0.1, **kw)
    b1, b2 = kw.get("betas", (0.9, 0.999))
    expect = adam_by_hand(g, 1.0, 0.1, b1, b2, kw.get("eps", 1e-8), kw.get("weight_decay", 0.0),
                          amsgrad=kw.get("amsgrad", False))
    np.testing.assert_allclose([o[0] for o in out], expect, rtol=1e-12)


def test_amsgrad_differs_when_v_shrinks():
    g = [np.array([3.0]), np.array([0.01]), np.array([0.01])]
    a, _, _ = run(optim.Adam, grads=g, p0=(0.0,), lr=0.1, betas=(0.9, 0.5))
    b, _, _ = run(optim.Adam, grads=g, p0=(0.0,), lr=0.1, betas=(0.9, 0.5), amsgrad=True)
    assert a[0] == b[0] and abs(a[2][0]) > abs(b[2][0])  # max(v) keeps steps small


def test_adamw_by_hand():
    g = [0.5, 0.25, -1.0]
    out, _, _ = run(optim.AdamW, grads=[np.array([x]) for x in g], p0=(1.0,), lr=0.1, weight_decay=0.5)
    # step 1: p = 1 * (1 - 0.1 * 0.5) = 0.95, then the Adam step of size 0.1 * 0.5 / (0.5 + 1e-8)
    np.testing.assert_allclose(out[0][0], 0.95 - 0.1 * 0.5 / (0.5 + 1e-8), rtol=1e-14)
    expect = adam_by_hand(g, 1.0, 0.1, 0.9, 0.999, 1e-8, wd=0.5, decoupled=True)
    np.testing.assert_allclose([o[0] for o in out], expect, rtol=1e-12)
    assert optim.AdamW([tg.ones(1, requires_grad=True)]).defaults["weight_decay"] == 1e-2


def test_rmsprop_by_hand():
    out, _, _ = run(optim.RMSprop, grads=[np.array([0.5]), np.array([1.0])], p0=(1.0,), lr=0.01, alpha=0.9)
    # step 1: v = 0.1 * 0.25 = 0.025 -> p = 1 - 0.01 * 0.5 / (sqrt(0.025) + 1e-8)
    p1 = 1 - 0.01 * 0.5 / (math.sqrt(0.025) + 1e-8)
    # step 2: v = 0.9 * 0.025 + 0.1 * 1 = 0.1225 -> sqrt = 0.35
    p2 = p1 - 0.01 * 1.0 / (0.35 + 1e-8)
    np.testing.assert_allclose([out[0][0], out[1][0]], [p1, p2], rtol=1e-14)


def test_rmsprop_centered_momentum_by_hand():
    out, _, _ = run(optim.RMSprop, grads=[np.array([0.5]), np.array([1.0])], p0=(1.0,), lr=0.01,
                    alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)
    p, v, a, b = 1.0, 0.0, 0.0, 0.0
    expect = []
    for g in (0.5, 1.0):
        g = g + 0.1 * p
        v = 0.9 * v + 0.1 * g * g
        a = 0.9 * a + 0.1 * g
        b = 0.5 * b + g / (math.sqrt(v - a * a) + 1e-8)
        p = p - 0.01 * b
        expect.append(p)
    np.testing.assert_allclose([o[0] for o in out], expect, rtol=1e-12)


def test_adagrad_by_hand():
    out, _, _ = run(optim.Adagrad, grads=[np.array([0.5]), np.array([1.0]), np.array([2.0])], p0=(1.0,),
                    lr=0.1, lr_decay=0.5, initial_accumulator_value=0.1)
    # s = 0.1 + 0.25 = 0.35, lr_1 = 0.1;  s = 1.35, lr_2 = 0.1 / 1.5;  s = 5.35, lr_3 = 0.1 / 2
    p1 = 1 - 0.1 * 0.5 / (math.sqrt(0.35) + 1e-10)
    p2 = p1 - 0.1 / 1.5 * 1.0 / (math.sqrt(1.35) + 1e-10)
    p3 = p2 - 0.1 / 2.0 * 2.0 / (math.sqrt(5.35) + 1e-10)
    np.testing.assert_allclose([o[0] for o in out], [p1, p2, p3], rtol=1e-14)


def test_maximize_flips_direction():
    a, _, _ = run(optim.SGD, lr=0.1)
    b, _, _ = run(optim.SGD, lr=0.1, maximize=True)
    np.testing.assert_allclose(np.array(b[0]) - [1.0, -2.0], -(np.array(a[0]) - [1.0, -2.0]), rtol=1e-14)


# ======================================================================= torch.optim parity
TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.2)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", TORCH_CASES)
def test_matches_torch_optim(name, kw, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(dtype)
    x = rng.standard_normal((5, 4)).astype(dtype)
    p = tg.Tensor(w0, requires_grad=True)
    tp = torch.tensor(w0, requires_grad=True)
    opt = getattr(optim, name)([p], **kw)
    topt = getattr(torch.optim, name)([tp], **kw)
    for _ in range(3):  # gradients depend on p: a real (tiny) training trajectory
        opt.zero_grad()
        topt.zero_grad()
        ((tg.Tensor(x) @ p.T).tanh() ** 2).sum().backward()
        ((torch.tensor(x) @ tp.T).tanh() ** 2).sum().backward()
        opt.step()
        topt.step()
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **tol)
    assert p.dtype == np.dtype(dtype)
    for k, v in topt.state[tp].items():
        if k != "step":
            np.testing.assert_allclose(opt.state[p][k], v.numpy(), **tol, err_msg=k)


# ============================================================================ groups, dtype
def test_param_groups_with_own_lr():
    a = tg.ones(2, requires_grad=True)
    b = tg.ones(2, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    a.grad, b.grad = tg.ones(2), tg.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.5)
    opt.param_groups[0]["lr"] = 0.2  # a scheduler changes lr in place
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.7, rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), 0.5 - 0.5 * 1.9, rtol=1e-6)
    c = tg.ones(1, requires_grad=True)
    opt.add_param_group({"params": c, "lr": 1.0})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["params"] == [c]


@pytest.mark.parametrize("name,kw", [("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.1)),
                                     ("Adam", dict(amsgrad=True, weight_decay=0.1)),
                                     ("AdamW", dict()),
                                     ("RMSprop", dict(momentum=0.9, centered=True, weight_decay=0.1)),
                                     ("Adagrad", dict(lr_decay=0.1, weight_decay=0.1))])
def test_float32_stays_float32(name, kw, device):
    model = nn.Linear(3, 2).to(device)
    # NumPy float64 scalars as hyperparameters would promote float32 arrays under NumPy 2
    opt = getattr(optim, name)(model.parameters(), lr=np.float64(0.01), **kw)
    for _ in range(3):
        opt.zero_grad()
        (model(tg.randn(4, 3, device=device)) ** 2).mean().backward()
        opt.step()
    for p in model.parameters():
        assert p.dtype == np.float32 and p.device.startswith(device)
        for k, v in opt.state[p].items():
            if k != "step":
                assert v.dtype == np.float32, (name, k)


def test_step_skips_params_without_grad_and_zero_grad():
    a = tg.ones(2, requires_grad=True)
    b = tg.ones(2, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = tg.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.numpy(), 1.0)
    assert b not in opt.state and a in opt.state
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), 0.0)
    opt.zero_grad()
    assert a.grad is None


def test_closure_result_is_returned():
    w = tg.Tensor([2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    np.testing.assert_allclose(w.numpy(), [1.0])  # 2 - 0.25 * 4


def test_training_reduces_loss():
    tg.manual_seed(0)
    x = tg.randn(64, 3)
    y = x @ tg.Tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Linear(3, 1)
    opt = optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    np.testing.assert_allclose(model.weight.numpy(), [[1.0, -2.0, 0.5]], atol=0.02)


def test_state_follows_a_model_moved_after_the_first_step():
    model = nn.Linear(2, 2)
    opt = optim.Adam(model.parameters(), lr=0.1)
    model(tg.ones(1, 2)).sum().backward()
    opt.step()
    model.double()
    model(tg.ones(1, 2, dtype="float64")).sum().backward()
    opt.step()
    assert all(v.dtype == np.float64 for s in opt.state.values() for k, v in s.items() if k != "step")
    assert model.weight.dtype == np.float64


# ============================================================================== state dicts
def make(name, **kw):
    tg.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.003}]
    return model, getattr(optim, name)(groups, lr=0.01, **kw)


def train(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.zero_grad()
        x = tg.Tensor(rng.standard_normal((8, 3)).astype(np.float32))
        (model(x) ** 2).mean().backward()
        opt.step()


@pytest.mark.parametrize("name,kw", [("SGD", dict(momentum=0.9)), ("Adam", dict(amsgrad=True)),
                                     ("AdamW", {}), ("RMSprop", dict(centered=True, momentum=0.5)),
                                     ("Adagrad", {})])
def test_state_dict_roundtrip_continues_identically(name, kw):
    model_a, opt_a = make(name, **kw)
    train(model_a, opt_a, 2, seed=0)
    sd = opt_a.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.003
    model_b, opt_b = make(name, **{k: v for k, v in kw.items()})
    opt_b.param_groups[1]["lr"] = 99.0  # overwritten by the state dict
    model_b.load_state_dict(model_a.state_dict())
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[1]["lr"] == 0.003
    train(model_a, opt_a, 2, seed=1)
    train(model_b, opt_b, 2, seed=1)
    for (n, p), q in zip(model_a.named_parameters(), model_b.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)


def test_state_dict_is_a_snapshot():
    model, opt = make("Adam")
    train(model, opt, 1, seed=0)
    sd = opt.state_dict()
    before = sd["state"][0]["exp_avg"].numpy().copy()
    train(model, opt, 1, seed=1)
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"].numpy(), before)


def test_load_state_dict_errors():
    model, opt = make("Adam")
    train(model, opt, 1, seed=0)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="model's state dict"):
        opt.load_state_dict(model.state_dict())
    single = optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="1 param groups|2 param groups"):
        single.load_state_dict(sd)
    small = optim.Adam([{"params": [model[0].weight]}, {"params": model[2].parameters()}])
    with pytest.raises(ValueError, match="param group 0 has 2 parameters in the state dict but 1"):
        small.load_state_dict(sd)
    bigger = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    opt_big = optim.Adam([{"params": bigger[0].parameters()}, {"params": bigger[2].parameters()}])
    with pytest.raises(tg.ShapeError, match="exp_avg.*parameter 0"):
        opt_big.load_state_dict(sd)


# =================================================================================== errors
def test_constructor_errors():
    w = tg.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    model = nn.Linear(2, 2)
    gen = model.parameters()
    list(gen)
    with pytest.raises(ValueError, match="already consumed"):
        optim.Adam(gen)
    with pytest.raises(TypeError, match="model.parameters()"):
        optim.Adam(model)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.Adam(w)
    with pytest.raises(ValueError, match=r"params\[0\] is not a leaf tensor.*mul"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([tg.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match="is a ndarray"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([w, w], lr=0.1)
    with pytest.raises(ValueError, match="invalid lr -0.1"):
        optim.SGD([w], lr=-0.1)
    with pytest.raises(TypeError, match="lr must be a number"):
        optim.Adam([w], lr="fast")
    with pytest.raises(ValueError, match=r"invalid betas\[1\] 1.0"):
        optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a pair"):
        optim.Adam([w], betas=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="alpha"):
        optim.RMSprop([w], alpha=1.5)
    with pytest.raises(ValueError, match="param group 1.*eps"):
        optim.Adam([{"params": [w]}, {"params": [tg.ones(1, requires_grad=True)], "eps": -1.0}])


def test_repr_lists_groups():
    r = repr(optim.SGD([tg.ones(1, requires_grad=True)], lr=0.1, momentum=0.9))
    assert r.startswith("SGD (\nParameter Group 0\n") and "lr: 0.1" in r and "momentum: 0.9" in r


def test_loads_a_converted_torch_state_dict():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    x = rng.standard_normal((5, 4))
    tp = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tp], lr=0.01, amsgrad=True)

    def tstep():
        topt.zero_grad()
        ((torch.tensor(x) @ tp.T).tanh() ** 2).sum().backward()
        topt.step()

    tstep()
    tstep()
    sd = topt.state_dict()
    converted = {"state": {i: {k: v.numpy() for k, v in s.items()} for i, s in sd["state"].items()},
                 "param_groups": sd["param_groups"]}
    p = tg.Tensor(tp.detach().numpy(), requires_grad=True)
    opt = optim.Adam([p])
    opt.load_state_dict(converted)
    assert opt.state[p]["step"] == 2 and opt.param_groups[0]["lr"] == 0.01
    tstep()
    ((tg.Tensor(x) @ p.T).tanh() ** 2).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12)
