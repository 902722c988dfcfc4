"""No device->host syncs inside loops (docs/gpu.md, "Host syncs"), counted by the CuPy stand-in.

tools/fakecupy counts every device->host transfer (`cupy._stats()`); real CuPy cannot, so these
tests run only under the stand-in (CI puts it on PYTHONPATH; see .ci/run)."""
import math

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import backend, nn
from tinygrad_rnn.nn.seq2seq import Seq2Seq

cupy = pytest.importorskip("cupy", reason="needs the CuPy stand-in tools/fakecupy on PYTHONPATH")
if not hasattr(cupy, "_stats"):
    pytest.skip("real CuPy cannot count syncs: these tests need the stand-in tools/fakecupy",
                allow_module_level=True)

DEV = "cuda"


def syncs() -> int:
    """Device->host transfers so far (host->device copies are not syncs)."""
    return sum(v for k, v in cupy._stats().items() if k != "h2d")


def count(f) -> int:
    before = syncs()
    f()
    return syncs() - before


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 2, "bidirectional": True}])
def test_recurrent_layers_forward_and_backward_do_not_sync(cls, kw):
    layer = cls(4, 8, batch_first=True, device=DEV, **kw)
    x = tg.randn(3, 10, 4, device=DEV, requires_grad=True)

    def step(lengths=None):
        out, _ = layer(x, lengths=lengths)
        (out * out).sum().backward()
    assert count(step) == 0
    assert count(lambda: step([10, 7, 3])) == 0  # lengths given on the host
    assert layer.weight_hh_l0.grad is not None and x.grad.device == "cuda:0"


def _model(**kw) -> Seq2Seq:
    tg.manual_seed(0)
    return Seq2Seq(12, 12, embed_size=8, hidden_size=16, device=DEV, **kw)


def _batch(steps: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    src, tgt = rng.integers(3, 12, (4, steps)), rng.integers(3, 12, (4, steps))
    src[1, -2:] = 0  # padded: the attention mask is used at every decoder step
    tgt[1, -1] = 0
    return src, tgt


@pytest.mark.parametrize("kw", [{}, {"encoder_cell": "lstm", "bidirectional": True, "attention": "general"}])
def test_seq2seq_training_step_syncs_do_not_grow_with_T(kw):
    model = _model(**kw)
    opt = tg.optim.SGD(model.parameters(), lr=0.1)

    def step(steps: int) -> None:
        src, tgt = _batch(steps)
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step(3)  # warm-up
    short, long = count(lambda: step(5)), count(lambda: step(40))
    assert short == long, (short, long)
    assert long <= 5  # the loss's target checks and deferred input checks, once per step


def _never_ending(model: Seq2Seq) -> Seq2Seq:
    model.out.bias.data[model.eos_idx] = -1e4  # eos is never emitted: decoding runs to max_len
    return model


@pytest.mark.parametrize("every", [1, 4, 8])
def test_greedy_syncs_once_every_k_steps(every):
    model = _never_ending(_model())
    src, _ = _batch(7)
    short = count(lambda: model.greedy(src, max_len=16, sync_every=every))
    long = count(lambda: model.greedy(src, max_len=48, sync_every=every))
    assert long - short <= math.ceil(32 / every), (short, long)
    assert short <= 16 // every + 3  # + the results' copy and the input checks, once per call


@pytest.mark.parametrize("every", [1, 8])
def test_beam_search_syncs_once_every_k_steps(every):
    model = _never_ending(_model(encoder_cell="lstm", decoder_cell="lstm"))
    src, _ = _batch(7)
    short = count(lambda: model.beam_search(src, beam_size=3, max_len=16, sync_every=every))
    long = count(lambda: model.beam_search(src, beam_size=3, max_len=48, sync_every=every))
    assert long - short <= math.ceil(32 / every), (short, long)


def test_decoding_results_do_not_depend_on_sync_every():
    model = _model()
    src, _ = _batch(6, seed=3)
    for f in (model.greedy, lambda s, **kw: model.beam_search(s, beam_size=3, **kw)):
        ref = f(src, max_len=12, sync_every=1, return_attention=True)
        got = f(src, max_len=12, sync_every=8, return_attention=True)
        assert got[0] == ref[0]
        for a, b in zip(got[1], ref[1]):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="sync_every must be a positive int"):
        model.greedy(src, sync_every=0)


# ------------------------------------------------------------ the checks that no longer sync still fail
def test_embedding_index_out_of_range_is_reported_at_the_next_sync():
    emb = nn.Embedding(10, 4, device=DEV)
    idx = tg.Tensor([[1, 12], [3, 4]], device=DEV)
    n = syncs()
    out = emb(idx)          # no sync at the lookup; the index is clamped meanwhile
    assert syncs() == n and backend.pending_checks() == 1
    with pytest.raises(IndexError, match=r"Embedding\(10, 4\): index 12 is out of range.*next sync point"):
        out.sum().backward()
    assert backend.pending_checks() == 0
    out = emb(tg.Tensor([-1], device=DEV))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        out.numpy()
    emb(tg.Tensor([0, 9], device=DEV)).sum().backward()  # a valid lookup passes


def test_tg_grad_reports_pending_checks_too():
    emb = nn.Embedding(10, 4, device=DEV)
    out = emb(tg.Tensor([[1, 12]], device=DEV))
    assert backend.pending_checks() == 1
    with pytest.raises(IndexError, match=r"Embedding\(10, 4\): index 12 is out of range"):
        tg.grad(out.sum(), emb.weight)
    assert backend.pending_checks() == 0
    (g,) = tg.grad(emb(tg.Tensor([0, 9, 9], device=DEV)).sum(), emb.weight)  # a valid lookup passes
    np.testing.assert_array_equal(g.numpy()[[0, 9, 1]].sum(1), [4.0, 8.0, 0.0])


def test_getitem_index_out_of_range_is_reported_at_the_next_sync():
    x = tg.randn(5, 3, device=DEV, requires_grad=True)
    idx = tg.Tensor([0, 7], device=DEV)
    n = syncs()
    y = x[idx]
    assert syncs() == n
    with pytest.raises(IndexError, match=r"getitem: index 7 is out of range for dimension 0 of size 5"):
        y.item() if y.numel() == 1 else y.tolist()
    y = x[:, tg.Tensor([-4], device=DEV)]
    with pytest.raises(IndexError, match="index -4 is out of range for dimension 1 of size 3"):
        y.sum().backward()
    np.testing.assert_array_equal(x[tg.Tensor([4, -5], device=DEV)].numpy(), x.numpy()[[4, -5]])


def test_all_false_attention_mask_is_reported_at_the_next_sync():
    att = nn.attention.DotAttention()
    q, k = tg.randn(2, 4, device=DEV), tg.randn(2, 3, 4, device=DEV)
    mask = tg.Tensor(np.array([[True, False, False], [False, False, False]]), device=DEV)
    n = syncs()
    with np.errstate(invalid="ignore"):  # the empty row is 0/0 until the check fails
        ctx, _ = att(q, k, mask=mask)
    assert syncs() == n
    with pytest.raises(ValueError, match=r"mask\[1\] is all False.*next sync point"):
        ctx.numpy()


def test_many_pending_checks_are_read_in_one_transfer():
    emb = nn.Embedding(10, 4, device=DEV)
    idx = tg.Tensor([1, 2], device=DEV)
    outs = [emb(idx) for _ in range(backend.MAX_PENDING - 1)]
    assert backend.pending_checks() == backend.MAX_PENDING - 1
    assert count(lambda: emb(idx)) == 1 and backend.pending_checks() == 0  # flushed at the cap
    assert count(lambda: outs[0].sum().backward()) == 0  # nothing pending: backward does not sync
