"""nn.layers: Linear, Embedding, Dropout, containers, activations, losses (NumPy references,
float64 gradcheck, PyTorch parity under importorskip)."""
import math

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn import layers

from conftest import to_np


# ====================================================================================== Linear
def test_linear_forward_matches_numpy(device):
    lin = nn.Linear(4, 3).to(device)
    x = tg.randn(2, 5, 4, device=device)
    w, b = to_np(lin.weight), to_np(lin.bias)
    np.testing.assert_allclose(to_np(lin(x)), to_np(x) @ w.T + b, rtol=1e-5, atol=1e-6)
    assert lin(x).dtype == np.float32


def test_linear_without_bias():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    x = tg.randn(4, 3)
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T, rtol=1e-6)


def test_linear_init_bounds_and_spread():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(in), 1/sqrt(in))
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.02)  # std of U(-a, a)
    assert abs(w.mean()) < 0.01 * bound


def test_linear_init_reproducible_and_dtype():
    tg.manual_seed(7)
    a = nn.Linear(5, 4)
    tg.manual_seed(7)
    b = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    np.testing.assert_array_equal(a.bias.numpy(), b.bias.numpy())
    c = nn.Linear(5, 4, dtype="float64")
    assert c.weight.dtype == np.float64 and c.bias.dtype == np.float64


def test_linear_gradcheck_float64():
    lin = nn.Linear(3, 2).double()
    x = tg.randn(4, 3, dtype="float64", requires_grad=True)

    def f(x, w, b):
        return nn.F.linear(x, w, b).tanh()

    w = tg.Tensor(lin.weight.numpy(), requires_grad=True)
    b = tg.Tensor(lin.bias.numpy(), requires_grad=True)
    assert tg.gradcheck(f, [x, w, b])


def test_linear_gradients_match_numpy():
    lin = nn.Linear(3, 2)
    x = tg.randn(4, 3)
    g = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    (lin(x) * tg.Tensor(g)).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), g.T @ x.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.bias.grad.numpy(), g.sum(0), rtol=1e-5, atol=1e-6)
    assert lin.weight.grad.dtype == np.float32


@pytest.mark.parametrize("args", [(0, 3), (3, -1), (2.0, 3), (True, 3)])
def test_linear_rejects_bad_sizes(args):
    with pytest.raises((ValueError, TypeError), match="Linear: (in|out)_features must be a positive int"):
        nn.Linear(*args)


def test_linear_wrong_feature_size_and_integer_input():
    lin = nn.Linear(4, 3)
    with pytest.raises(tg.ShapeError, match=r"Linear\(4, 3\).*\(2, 5\).*in_features=4"):
        lin(tg.randn(2, 5))
    with pytest.raises(tg.DTypeError, match="Embedding"):
        lin(tg.Tensor([[1, 2, 3, 4]]))


# =================================================================================== Embedding
def test_embedding_forward_is_row_lookup(device):
    emb = nn.Embedding(10, 4).to(device)
    idx = np.array([[1, 2, 9], [0, 2, 2]])
    out = emb(tg.Tensor(idx, device=device))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(to_np(out), to_np(emb.weight)[idx])
    np.testing.assert_array_equal(to_np(emb(idx.tolist())), to_np(emb.weight)[idx])  # lists work


def test_embedding_init_standard_normal():
    w = nn.Embedding(500, 100).weight.numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02 and w.dtype == np.float32


def test_embedding_repeated_indices_sum_gradients():
    emb = nn.Embedding(5, 3)
    idx = np.array([1, 3, 1, 1, 0])
    g = np.arange(15, dtype=np.float32).reshape(5, 3)
    (emb(idx) * tg.Tensor(g)).sum().backward()
    expected = np.zeros((5, 3), np.float32)
    np.add.at(expected, idx, g)  # row 1 used three times: gets the sum of its three gradients
    np.testing.assert_array_equal(emb.weight.grad.numpy(), expected)
    np.testing.assert_array_equal(emb.weight.grad.numpy()[1], g[0] + g[2] + g[3])


def test_embedding_gradcheck_float64():
    # (padding_idx is left out: its row's gradient is zeroed on purpose, so it is not d out/d w)
    emb = nn.Embedding(6, 3, dtype="float64")
    idx = np.array([[0, 5, 4], [2, 0, 0]])

    def f(w):
        emb._parameters["weight"] = w  # run the layer's own forward on the checked input
        return emb(idx).tanh()

    w = tg.randn(6, 3, dtype="float64", requires_grad=True)
    assert tg.gradcheck(f, [w])


def test_embedding_padding_idx_zero_row_and_no_gradient():
    emb = nn.Embedding(4, 2, padding_idx=0)
    np.testing.assert_array_equal(emb.weight.numpy()[0], 0)
    emb.weight.data[0] = 5.0  # even a non-zero padding row gets no gradient (PyTorch semantics)
    idx = np.array([0, 1, 0, 3])
    out = emb(idx)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy(), [[0, 0], [1, 1], [0, 0], [1, 1]])
    assert nn.Embedding(4, 2, padding_idx=-1).padding_idx == 3


def test_embedding_errors():
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"Embedding\(5, 2\): index 5 is out of range; valid indices are 0..4"):
        emb(np.array([0, 5]))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        emb(np.array([-1, 2]))
    with pytest.raises(tg.DTypeError, match="Embedding: indices must be integers.*float32"):
        emb(tg.Tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="padding_idx=7 is out of range"):
        nn.Embedding(5, 2, padding_idx=7)
    with pytest.raises(ValueError, match="num_embeddings must be a positive int"):
        nn.Embedding(0, 2)
    assert emb(np.zeros((0,), dtype=np.int64)).shape == (0, 2)


def test_embedding_from_pretrained():
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    emb = nn.Embedding.from_pretrained(w)
    np.testing.assert_array_equal(emb(np.array([2, 0])).numpy(), w[[2, 0]])
    assert not emb.weight.requires_grad
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad


def test_embedding_repr():
    assert repr(nn.Embedding(10, 3, padding_idx=1)) == "Embedding(10, 3, padding_idx=1)"


# ===================================================================================== Dropout
def test_dropout_train_and_eval():
    d = nn.Dropout(0.25)
    x = tg.ones(200, 100)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert y.dtype == np.float32
    d.eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x


def test_dropout_gradient_uses_same_mask():
    d = nn.Dropout(0.5)
    x = tg.ones(50, requires_grad=True)
    y = d(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # d(x * mask/(1-p))/dx = mask/(1-p)


def test_dropout_reproducible_under_seed():
    tg.manual_seed(3)
    a = nn.Dropout(0.5)(tg.ones(30)).numpy()
    tg.manual_seed(3)
    b = nn.Dropout(0.5)(tg.ones(30)).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_rejects_p_outside_range(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\)"):
        nn.Dropout(p)


def test_dropout_rejects_non_number():
    with pytest.raises(TypeError, match="Dropout: p must be a number"):
        nn.Dropout("0.5")


# ================================================================================== containers
def test_sequential_order_indexing_len_iter():
    a, b, c = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    x = tg.randn(5, 3)
    np.testing.assert_allclose(seq(x).numpy(), c(b(a(x))).numpy(), rtol=1e-6)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    with pytest.raises(IndexError, match="index 9 is out of range for 4 modules"):
        seq[9]
    with pytest.raises(TypeError, match="expected an nn.Module"):
        nn.Sequential(nn.Linear(2, 2), lambda x: x)


def test_sequential_from_ordered_dict():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 3)), ("act", nn.Tanh())]))
    assert [n for n, _ in seq.named_parameters()] == ["enc.weight", "enc.bias"]
    assert seq[0] is seq.enc


def test_modulelist_registers_parameters():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    ml.append(nn.Linear(2, 1))
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "Linear", "Linear", "Linear"]
    assert [n for n, _ in ml.named_parameters()][:2] == ["1.weight", "1.bias"]
    del ml[0]
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert isinstance(ml[1:], nn.ModuleList) and len(ml[1:]) == 3
    with pytest.raises(NotImplementedError, match="iterate"):
        ml(tg.ones(2))


def test_identity_and_activations_match_numpy():
    x = tg.randn(3, 4)
    v = x.numpy()
    assert nn.Identity(54, unused="x")(x) is x
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(v), rtol=1e-6)
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(v, 0))
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-v)), rtol=1e-6)


# ====================================================================================== losses
def test_cross_entropy_loss_matches_numpy():
    logits = tg.randn(6, 4)
    target = np.array([0, 3, 1, 1, 2, 0])
    v = logits.numpy().astype(np.float64)
    logp = v - np.log(np.exp(v).sum(1, keepdims=True))
    nll = -logp[np.arange(6), target]
    np.testing.assert_allclose(nn.CrossEntropyLoss()(logits, target).item(), nll.mean(), rtol=1e-5)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="sum")(logits, target).item(), nll.sum(), rtol=1e-5)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="none")(logits, target).numpy(), nll, rtol=1e-5)
    t2 = target.copy()
    t2[0] = -100
    np.testing.assert_allclose(nn.CrossEntropyLoss()(logits, t2).item(), nll[1:].mean(), rtol=1e-5)


def test_mse_loss_matches_numpy():
    a, b = tg.randn(3, 2), tg.randn(3, 2)
    np.testing.assert_allclose(nn.MSELoss()(a, b).item(), ((a.numpy() - b.numpy()) ** 2).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    assert repr(nn.MSELoss()) == "MSELoss(reduction='mean')"


def test_public_names_resolve():
    for name in layers.__all__:
        assert getattr(nn, name) is getattr(layers, name)


# ===================================================================================== PyTorch
def test_parity_with_torch():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(4, 3)
    tl = torch.nn.Linear(4, 3)
    tl.load_state_dict({k: torch.tensor(v.numpy()) for k, v in lin.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(lin(tg.Tensor(x)).numpy(), tl(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    emb = nn.Embedding(7, 3, padding_idx=2)
    te = torch.nn.Embedding(7, 3, padding_idx=2)
    te.weight.data = torch.tensor(emb.weight.numpy())
    idx = np.array([[2, 1, 1], [6, 2, 1]])
    (emb(idx) ** 2).sum().backward()
    (te(torch.tensor(idx)) ** 2).sum().backward()
    np.testing.assert_allclose(emb.weight.grad.numpy(), te.weight.grad.numpy(), rtol=1e-6)
