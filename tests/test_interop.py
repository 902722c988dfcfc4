"""Arrays cross between tinygrad_rnn, NumPy, CuPy and PyTorch: __array__ on the CPU (refused on a
GPU, as CuPy refuses it), DLPack without copies both ways, dtypes kept, PyTorch state dicts."""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import backend, nn


# ------------------------------------------------------------------------------------ NumPy
def test_np_asarray_of_a_cpu_tensor_shares_its_memory():
    t = tg.Tensor([1.0, 2.0, 3.0])
    a = np.asarray(t)
    assert a.dtype == np.float32
    a[0] = 7.0
    assert t.tolist() == [7.0, 2.0, 3.0]
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    c = np.array(t)  # np.array copies by default
    c[1] = -1.0
    assert t.tolist()[1] == 2.0
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_np_asarray_of_a_gpu_tensor_is_refused_as_cupy_does(device):
    if device == "cpu":
        pytest.skip("the refusal is for device tensors")
    t = tg.randn(3, device=device)
    with pytest.raises(TypeError, match=r"Implicit conversion .* not allowed.*t\.numpy\(\)"):
        np.asarray(t)
    assert np.asarray(t.numpy()).shape == (3,)  # the explicit copy


def test_dlpack_with_numpy_shares_memory_both_ways():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = tg.from_dlpack(a)
    assert t.dtype == np.float64 and t.shape == (2, 3) and t.device == "cpu"
    a[1, 2] = 50.0
    assert t.numpy()[1, 2] == 50.0
    b = np.from_dlpack(t)
    b[0, 0] = -3.0
    assert a[0, 0] == -3.0 and t.numpy()[0, 0] == -3.0
    assert t.__dlpack_device__() == (1, 0)
    assert tg.from_dlpack(t).data is t.data  # a Tensor: the same data, detached
    with pytest.raises(TypeError, match=r"from_dlpack: expected an array with __dlpack__.*got list"):
        tg.from_dlpack([1, 2])


def test_from_dlpack_of_a_device_array_shares_memory(device):
    xp = backend.xp_for(backend.normalize_device(device))
    a = xp.zeros(4, dtype=xp.float64)
    t = tg.from_dlpack(a)
    assert t.device == backend.normalize_device(device) and t.dtype == np.float64
    a[2] = 5.0
    assert t.numpy()[2] == 5.0
    kept = tg.Tensor(xp.ones(2, dtype=xp.int32))  # a copy, dtype kept
    assert kept.dtype == np.int32


# ---------------------------------------------------------------------------------- PyTorch
def test_torch_from_dlpack_shares_memory():
    torch = pytest.importorskip("torch")
    t = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    p = torch.from_dlpack(t)
    assert p.dtype == torch.float32 and tuple(p.shape) == (2, 2)
    p[0, 1] = 20.0
    assert t.numpy()[0, 1] == 20.0
    assert torch.tensor(t).tolist() == [[1.0, 20.0], [3.0, 4.0]]  # a copy, through DLPack
    assert torch.tensor(tg.Tensor(2.5)).item() == 2.5             # 0-d (len() would fail)


def test_tg_from_dlpack_of_a_torch_tensor_shares_memory():
    torch = pytest.importorskip("torch")
    p = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    t = tg.from_dlpack(p)
    assert t.dtype == np.float64 and t.shape == (3, 2)
    p[2, 1] = 99.0
    assert t.numpy()[2, 1] == 99.0
    t.data[0, 0] = -1.0
    assert p[0, 0].item() == -1.0
    q = torch.ones(2, requires_grad=True)  # exported as its data (PyTorch itself refuses)
    assert tg.from_dlpack(q).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int64", "int32", "bool"])
def test_a_torch_tensor_keeps_its_dtype(dtype):
    torch = pytest.importorskip("torch")
    p = torch.tensor([1, 0, 3]).to(getattr(torch, dtype))
    if dtype == "float64":
        p = torch.tensor([0.1, 1 / 3, 2.0 ** -40], dtype=torch.float64)
    t = tg.Tensor(p)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.numpy(), p.numpy())  # exact: no float32 round trip
    old = t.numpy().copy()
    p.fill_(0)  # Tensor(...) copies
    np.testing.assert_array_equal(t.numpy(), old)
    assert old.any()
    assert tg.Tensor(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]


def test_load_state_dict_takes_a_pytorch_state_dict_as_it_is():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    model = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    model.load_state_dict(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    out, (h, c) = model(tg.Tensor(x))
    rout, (rh, rc) = ref(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), rout.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), rc.detach().numpy(), rtol=1e-5, atol=1e-6)
    lin, rlin = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    lin.load_state_dict(dict(rlin.named_parameters()))  # parameters that require grad work too
    np.testing.assert_array_equal(lin.weight.numpy(), rlin.weight.detach().numpy())


def test_load_state_dict_errors_name_torch_tensor():
    torch = pytest.importorskip("torch")
    model = nn.LSTM(4, 8)
    with pytest.raises(tg.ShapeError, match=r"weight_hh_l0: checkpoint torch\.Tensor \(64, 16\) vs model \(32, 8\)"):
        model.load_state_dict(torch.nn.LSTM(4, 16).state_dict())
    with pytest.raises(TypeError, match=r"torch\.Tensor.*got weight_ih_l0 \(list\)"):
        model.load_state_dict({"weight_ih_l0": [1.0]}, strict=False)
    with pytest.raises(TypeError, match=r"torch\.Tensor \(dtype torch\.bfloat16\).*x\.float\(\)"):
        tg.from_dlpack(torch.ones(2, dtype=torch.bfloat16))


def test_jax_arrays_cross_without_a_copy():
    jnp = pytest.importorskip("jax.numpy")
    j = jnp.arange(4.0)
    t = tg.from_dlpack(j)
    np.testing.assert_array_equal(t.numpy(), np.arange(4.0, dtype=t.dtype))
    assert tg.Tensor(j).dtype == t.dtype
