"""Device rules that hold on every backend: one initialisation rule, per-device cached scalars, the
benchmark without a CUDA PyTorch. The CUDA halves run on a GPU or under tools/fakecupy (CI)."""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import backend, nn, ops

LAYERS = {
    "Linear": lambda dev: nn.Linear(5, 3, device=dev),
    "Embedding": lambda dev: nn.Embedding(7, 4, padding_idx=0, device=dev),
    "RNN": lambda dev: nn.RNN(4, 6, num_layers=2, device=dev),
    "LSTM": lambda dev: nn.LSTM(4, 6, bidirectional=True, device=dev),
    "GRU": lambda dev: nn.GRU(4, 6, device=dev),
    "LSTMCell": lambda dev: nn.LSTMCell(4, 6, device=dev),
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_initial_weights_are_the_same_on_every_device(device, layer):
    """Every initialiser draws from the CPU generator and copies: a seed gives one model."""
    tg.manual_seed(3)
    cpu = LAYERS[layer]("cpu").state_dict()
    tg.manual_seed(3)
    if device != "cpu":
        # advance the device's own generator (the stand-in's stream equals the CPU's, so without
        # this a layer drawing on the device would pass by accident)
        tg.randn(5, device=device)
    dev = LAYERS[layer](device).state_dict()
    assert list(cpu) == list(dev)
    for k in cpu:
        assert dev[k].device == backend.normalize_device(device)
        np.testing.assert_array_equal(dev[k].numpy(), cpu[k].numpy(), err_msg=k)
    assert any(float(np.abs(v.numpy()).max()) > 0 for v in cpu.values())  # really drawn


def test_reset_parameters_on_the_device_draws_like_the_cpu(device):
    lstm = nn.LSTM(3, 4).to(device)
    tg.manual_seed(5)
    if device != "cpu":
        tg.randn(5, device=device)
    lstm.reset_parameters()
    ref = nn.LSTM(3, 4)
    tg.manual_seed(5)
    ref.reset_parameters()
    np.testing.assert_array_equal(lstm.weight_hh_l0.numpy(), ref.weight_hh_l0.numpy())


def test_cached_scalars_are_kept_per_device(monkeypatch):
    """A cached 0-d scalar lives on one device: an array on cuda:1 must not get cuda:0's scalar.
    (One GPU, or none, is visible here: the device of each array is simulated.)"""
    made = []
    a0, a1 = np.zeros(2, np.float32), np.zeros(3, np.float32)
    fake = {id(a0): "cuda:0", id(a1): "cuda:1"}
    monkeypatch.setattr(backend, "is_cpu_array", lambda a: False)
    monkeypatch.setattr(backend, "device_of", lambda a: fake[id(a)])
    monkeypatch.setattr(backend, "to_device", lambda a, dev: made.append(dev) or np.array(a))
    monkeypatch.setattr(ops, "_SCALARS", {})
    s0, s1 = ops._scalar(0.25, a0), ops._scalar(0.25, a1)
    assert made == ["cuda:0", "cuda:1"] and s0 is not s1
    assert ops._scalar(0.25, a1) is s1 and made == ["cuda:0", "cuda:1"]  # cached per device


def test_bench_skips_torch_gpu_rows_with_a_cpu_only_torch(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from tinygrad_rnn.bench import run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA support" in run.torch_skip_reason("cuda:0")
    assert run.torch_skip_reason("cpu") == ""
    assert run._torch_impls("lstm", np.zeros((2, 1, 3), np.float32), {}, "cuda:0") == {}


def test_bench_runs_on_cuda_with_a_cpu_only_torch(monkeypatch, capsys):
    """`python -m tinygrad_rnn.bench --device cuda` on a GPU machine whose PyTorch lacks CUDA:
    torch's rows are skipped with a note, the rest runs."""
    if not tg.cuda_available():
        pytest.skip("needs a GPU or the CuPy stand-in (tools/fakecupy)")
    torch = pytest.importorskip("torch")
    from tinygrad_rnn.bench.__main__ import main
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--device", "cuda", "--config", "quick", "--reps", "1", "--skip-extras"]) == 0
    out, err = capsys.readouterr()
    assert "PyTorch rows skipped" in err and "cupy BPTT" in out and "torch" not in out
