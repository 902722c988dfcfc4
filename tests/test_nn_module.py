"""nn.Module / nn.Parameter: registration, traversal, state_dict / load_state_dict, modes, dtype."""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(tg.ones(2))
        self.fc = nn.Linear(3, 2)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(2, 1, bias=False)
        self.not_a_param = tg.zeros(4)          # a plain Tensor attribute is not registered
        self.register_buffer("running", tg.zeros(2))

    def forward(self, x):
        return self.head(self.block(x))


def test_registration_and_names_in_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "head.weight"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.act", "head"]
    assert [type(c).__name__ for c in net.children()] == ["Block", "Linear"]
    assert len(list(net.modules())) == 5
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert len(list(net.block.parameters(recurse=False))) == 1
    assert list(net.state_dict()) == names + ["running"]


def test_reassigning_attribute_unregisters():
    net = Net()
    net.head = nn.Identity()
    assert "head.weight" not in dict(net.named_parameters())
    net.block.scale = None
    assert "block.scale" not in dict(net.named_parameters())
    assert net.block.scale is None


def test_shared_parameter_listed_once():
    net = Net()
    net.tied = net.head  # the same module twice: its parameters appear once
    assert len(list(net.parameters())) == 4


def test_super_init_missing_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(RuntimeError, match="super\\(\\).__init__"):
        Bad()


def test_forward_and_backward_reach_every_parameter():
    net = Net()
    out = net(tg.randn(5, 3))
    assert out.shape == (5, 1)
    out.sum().backward()
    for n, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, n
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net(tg.randn(5, 3)).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())


def test_train_eval_propagates():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.2)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_roundtrip_with_tensors_and_arrays():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert all(isinstance(v, tg.Tensor) and not v.requires_grad for v in sd.values())
    assert b.load_state_dict(sd) == ([], [])
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    # NumPy arrays (e.g. a converted PyTorch state dict) load too, cast to each parameter's dtype
    c = Net()
    c.load_state_dict({k: v.numpy().astype(np.float64) for k, v in sd.items()})
    assert c.block.fc.weight.dtype == np.float32
    np.testing.assert_array_equal(c.block.fc.weight.numpy(), a.block.fc.weight.numpy())


def test_load_state_dict_keeps_parameter_identity():
    net = Net()
    w = net.block.fc.weight
    arr = w.data
    net.load_state_dict(Net().state_dict())
    assert net.block.fc.weight is w and w.data is arr  # in place: an optimizer keeps working


def test_load_state_dict_reports_missing_unexpected_misshaped_by_name():
    net = Net()
    sd = dict(net.state_dict())
    del sd["head.weight"]
    sd["block.extra"] = np.zeros(3)
    sd["block.fc.bias"] = np.zeros(5)
    with pytest.raises(tg.ShapeError) as ei:
        net.load_state_dict(sd)
    msg = str(ei.value)
    assert "head.weight" in msg and "missing" in msg
    assert "block.extra" in msg and "unexpected" in msg
    assert "block.fc.bias" in msg and "(5,)" in msg and "(2,)" in msg


def test_load_state_dict_non_strict_returns_keys():
    net = Net()
    sd = dict(net.state_dict())
    del sd["head.weight"]
    sd["other"] = np.zeros(1)
    missing, unexpected = Net().load_state_dict(sd, strict=False)
    assert missing == ["head.weight"] and unexpected == ["other"]
    sd["block.scale"] = np.zeros(7)  # a shape mismatch is an error even when not strict
    with pytest.raises(tg.ShapeError, match="block.scale"):
        Net().load_state_dict(sd, strict=False)


def test_to_dtype_and_double_float():
    net = Net()
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.running.dtype == np.float64
    y = net(tg.randn(2, 3, dtype="float64"))
    assert y.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.to(dtype="float64")
    assert net.head.weight.dtype == np.float64
    with pytest.raises(tg.DTypeError):
        net.to(dtype="int64")


def test_to_keeps_parameter_identity():
    net = Net()
    w = net.head.weight
    net.double()
    assert net.head.weight is w


def test_repr_is_nested_and_readable():
    r = repr(Net())
    assert r.startswith("Net(\n  (block): Block(\n    (fc): Linear(in_features=3, out_features=2, bias=True)")
    assert "(head): Linear(in_features=2, out_features=1, bias=False)" in r
    assert repr(nn.Parameter(tg.zeros(2))).startswith("Parameter containing:")


def test_call_tags_ops_with_module_name():
    from tinygrad_rnn.autograd import iter_graph

    net = Net()
    x = tg.randn(2, 3, requires_grad=True)
    out = net(x)
    tags = {t for fn in iter_graph([out]) for t in fn.tags}
    assert ("module", "fc") in tags and ("module", "head") in tags


def test_parameter_of_integer_data_is_rejected():
    with pytest.raises(tg.DTypeError):
        nn.Parameter(tg.Tensor([1, 2, 3]))


def test_to_accepts_dtype_object():
    net = nn.Linear(2, 2)
    net.to(tg.float64)
    assert net.weight.dtype == np.float64


def test_load_state_dict_bad_values_are_clear_errors():
    net = nn.Linear(2, 2)
    with pytest.raises((TypeError, ValueError), match="weight"):
        net.load_state_dict({"weight": 1.0, "bias": np.zeros(2)})
    with pytest.raises(TypeError, match="dict"):
        net.load_state_dict([1, 2])


def test_to_device(device):
    net = Net().to(device)
    assert all(p.device.startswith(device) for p in net.parameters())
    y = net(tg.randn(2, 3, device=device))
    assert y.device.startswith(device)
