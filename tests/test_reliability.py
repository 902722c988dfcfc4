"""Reliability: detect_anomaly end to end, no reference cycles, flat memory over long training,
backward through 100,000 steps, truncated BPTT over a 1,000,000-step stream with memory bounded by
the chunk, and bit-exact resume of an LSTM + dropout TBPTT run from a checkpoint.

The long runs are marked slow (they still run in CI). Memory is measured with tracemalloc (NumPy
reports its array buffers to it). Run with `-s` to see the measured figures.
"""
from __future__ import annotations

import gc
import os
import re
import sys
import time
import tracemalloc
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim, serialization

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()


def _line_of(marker: str) -> int:
    """Line number in this file of the line carrying `marker` (a comment), for file:line checks."""
    lines = THIS.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines, 1) if line.rstrip().endswith(marker)]
    assert len(hits) == 1, marker
    return hits[0]


def _settle() -> None:
    """Collect garbage and empty CPython's attribute-lookup cache before a memory reading. The
    cache (4096 entries, C level) keeps a reference to each looked-up attribute name; RNN layers
    build names like "weight_ih" + "_l0" per forward, so until the cache is full its strings
    show up in tracemalloc as a slow, bounded "growth" that is no leak of ours."""
    clear = getattr(sys, "_clear_internal_caches", None) or getattr(sys, "_clear_type_cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        clear()
    gc.collect()


# ============================================================================== detect_anomaly
class _FixedPointRNN(nn.Module):
    """relu RNN whose state sits at the fixed point h = 1: h_t = relu(2 h_{t-1} - x_t), x_t = 1.
    The forward pass stays at 1; the gradient doubles at every step back in time."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 1, nonlinearity="relu")
        with tg.no_grad():
            self.rnn.weight_hh_l0.data[...] = 2.0
            self.rnn.weight_ih_l0.data[...] = -1.0
            self.rnn.bias_ih_l0.data[...] = 0.0
            self.rnn.bias_hh_l0.data[...] = 0.0

    def forward(self, x, h0):
        out, _ = self.rnn(x, h0)  # <- exploding-gradient line
        return out


def test_anomaly_names_backward_op_step_module_user_line_and_stats():
    T = 165
    # d loss / d h_{t-1} = 2**(T - t) for loss = h_{T-1}; float32 holds < 2**128, so the first
    # infinite gradient is the one addmm(gi_t, h_{t-1}, W_hh^T) of step t = T - 128 sends back.
    expected_step = T - 128
    model = _FixedPointRNN()
    with np.errstate(all="ignore"), tg.detect_anomaly():
        out = model(tg.ones(T, 1, 1), tg.ones(1, 1, 1))
        np.testing.assert_array_equal(out.numpy(), np.ones((T, 1, 1), np.float32))  # forward is fine
        with pytest.raises(tg.AnomalyError) as info:
            out[-1].sum().backward()
    msg = str(info.value)
    assert isinstance(info.value, FloatingPointError)
    assert msg.startswith("backward of 'addmm' produced 0 NaN and 1 Inf values")
    assert f"step={expected_step}." in msg
    assert "Tags: module=_FixedPointRNN, module=rnn, layer=0, direction=forward, step=" in msg
    assert f"{THIS.name}:{_line_of('# <- exploding-gradient line')} (out, _ = self.rnn(x, h0)" in msg
    # the Inf is the gradient sent to input 1, h_{t-1} (the previous step's h_t); the gradient the
    # op received, that of its output a_t, is 2**127 = 1.7e38, finite
    assert "values in the gradient for input 1 ('h_t') (shape (1, 1))" in msg
    assert "gradient of output 0 ('a_t'): shape (1, 1), max|finite| 1.7e+38, nan 0, inf 0" in msg
    assert "clip_grad_norm_" in msg


def test_anomaly_forward_log_of_zero_at_known_step_of_user_loop():
    cell, head = nn.GRUCell(1, 4), nn.Linear(4, 1)
    xs = tg.randn(60, 2, 1)
    xs[37, 1] = -1e4  # a corrupt sample: its predicted probability underflows to exactly 0
    h, nll = None, 0.0
    with np.errstate(all="ignore"), tg.detect_anomaly():
        for t, x_t in enumerate(xs.unbind(0)):
            with tg.scope("step", t):
                h = cell(x_t, h)
                p = (head(h) + x_t).sigmoid()
                nll = nll - p.log().sum()  # <- log line
        # forward: log(0) = -inf is a value, not an anomaly (policy); its gradient 1/0 is one
        with pytest.raises(tg.AnomalyError) as info:
            nll.backward()
    msg = str(info.value)
    assert msg.startswith("backward of 'log' produced 0 NaN and 1 Inf values in the gradient for "
                          "input 0 (shape (2, 1))")
    assert "Tags: step=37." in msg
    assert f"{THIS.name}:{_line_of('# <- log line')} (nll = nll - p.log().sum()" in msg


def test_anomaly_backward_of_sqrt_at_zero():
    x = tg.Tensor([4.0, 0.0, 1.0], requires_grad=True)
    with np.errstate(all="ignore"), tg.detect_anomaly():
        with tg.scope("module", "norm"):
            y = x.sqrt()  # forward fine: sqrt(0) = 0; backward 1 / (2 * 0) = inf
        with pytest.raises(tg.AnomalyError, match=r"backward of 'sqrt'.*1 Inf.*module=norm"):
            y.sum().backward()


def test_anomaly_mode_off_by_default_nests_and_restores():
    x = tg.Tensor([-1.0, 1.0])
    with np.errstate(all="ignore"):
        assert np.isnan(x.sqrt().numpy()[0])  # off: NaN/Inf flow silently (PyTorch's default)
        with tg.detect_anomaly():
            with tg.detect_anomaly():
                pass
            with pytest.raises(tg.AnomalyError):  # the inner exit kept the outer mode on
                x.sqrt()
        with pytest.raises(tg.AnomalyError):
            with tg.detect_anomaly():
                x.sqrt()
        x.sqrt()  # the mode was restored although the block ended with an error
        with tg.no_grad(), tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="forward of 'sqrt'"):
            x.sqrt()  # inference (no graph) is checked too


def test_anomaly_mode_changes_no_result_and_records_lines_only_when_on():
    def run():
        tg.manual_seed(3)
        lstm, head = nn.LSTM(3, 6, num_layers=2), nn.Linear(6, 2)
        out, _ = lstm(tg.randn(7, 2, 3))
        loss = nn.F.cross_entropy(head(out).reshape(-1, 2), tg.Tensor(np.arange(14) % 2))
        loss.backward()
        return loss, [p.grad.numpy().copy() for p in list(lstm.parameters()) + list(head.parameters())]

    loss_off, grads_off = run()
    assert getattr(loss_off.creator, "created_at", None) is None  # off: no stack walk, nothing stored
    with tg.detect_anomaly():
        loss_on, grads_on = run()
    assert THIS.name in loss_on.creator.created_at
    # The same values up to float32 rounding: with the mode on the engine skips some of its fast
    # paths (it must look at every gradient separately), which may change a summation order.
    np.testing.assert_allclose(loss_on.item(), loss_off.item(), rtol=1e-6)
    for a, b in zip(grads_on, grads_off):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_anomaly_error_wins_over_numpy_warning_turned_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with tg.detect_anomaly(), pytest.raises(tg.AnomalyError):
            tg.Tensor([-1.0]).sqrt()


def test_docs_anomaly_examples_run_with_warnings_as_errors():
    """tests/test_docs.py runs every block of docs/anomaly.md as a script; here they also run
    under this suite's rule that a RuntimeWarning from tinygrad_rnn is an error (so the examples'
    np.errstate is really needed and sufficient). Each block is standalone and asserts."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "anomaly.md").read_text(), re.S)
    assert len(blocks) >= 3
    errors = []
    for i, code in enumerate(blocks):
        ns: dict = {"__name__": "__main__"}
        exec(compile(code, f"docs/anomaly.md[block {i}]", "exec"), ns)
        errors.append(str(ns.get("err", "")))
    assert "step=37" in errors[1] and "Tags: step=37" in errors[2]


def test_clip_grad_norm_measures_exploding_float32_gradients_without_overflow():
    """Squares of float32 gradients overflow above ~1.8e19; the norm must still come out right
    (it used to be inf, which made clipping multiply every gradient by 0)."""
    w = tg.zeros(3, requires_grad=True)
    w.grad = tg.Tensor([3e30, -4e30, 0.0])
    v = tg.zeros(2, requires_grad=True)
    v.grad = tg.Tensor([0.0, 1.0])
    total = nn.utils.clip_grad_norm_([w, v], max_norm=1.0)
    assert total.dtype == np.float32
    np.testing.assert_allclose(total.item(), 5e30, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), [0.6, -0.8, 0.0], rtol=1e-5)
    np.testing.assert_allclose(v.grad.numpy(), [0.0, 2e-31], rtol=1e-5)
    w.grad = tg.Tensor([np.inf, 1.0, 0.0])  # a real Inf stays a non-finite norm
    with pytest.raises(tg.GradError, match="non-finite gradients in"):
        nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)


# ====================================================================== cycles and memory
def _scenario(kind: str):
    """Build, run backward, update; return weakrefs to Functions of the graph."""
    lstm, head = nn.LSTM(3, 5, num_layers=2, dropout=0.2, bidirectional=True), nn.Linear(10, 2)
    opt = optim.Adam(list(lstm.parameters()) + list(head.parameters()))
    x = tg.randn(6, 2, 3, requires_grad=True)
    out, (h, c) = lstm(x, lengths=[6, 3])
    if kind == "hooks":
        out.register_hook(lambda g: g * 1.0)
        out.retain_grad()
    loss = nn.F.cross_entropy(head(out).reshape(-1, 2), tg.Tensor(np.zeros(12, np.int64)))
    refs = [weakref.ref(loss.creator), weakref.ref(out.creator), weakref.ref(h.creator)]
    if kind == "create_graph":
        (gx,) = tg.grad(loss, [x], create_graph=True)
        refs.append(weakref.ref(gx.creator))
        (gx * gx).sum().backward()
    elif kind == "retain_graph":
        loss.backward(retain_graph=True)
        loss.backward()
    elif kind == "anomaly":
        with tg.detect_anomaly():
            loss.backward()
    elif kind == "not_backwarded":
        pass  # a graph that is dropped without backward is freed as well
    else:
        loss.backward()
    opt.step()
    return refs


@pytest.mark.parametrize("kind", ["plain", "hooks", "create_graph", "retain_graph", "anomaly",
                                  "not_backwarded"])
def test_graphs_are_freed_by_reference_counting_alone(kind):
    gc.collect()
    gc.disable()  # any graph still alive now would need the cycle collector
    try:
        refs = _scenario(kind)
        alive = [r() for r in refs if r() is not None]
    finally:
        gc.enable()
    assert alive == []
    assert gc.collect() == 0  # and there was no cyclic garbage to collect either


def _lstm_trainer(seed=0):
    tg.manual_seed(seed)
    lstm, head = nn.LSTM(3, 16), nn.Linear(16, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = optim.Adam(params, lr=1e-3)
    x, y = tg.randn(8, 4, 3), tg.randn(8, 4, 1)

    def step(state):
        out, state = lstm(x, state)
        loss = nn.F.mse_loss(head(out), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return nn.detach_state(state), loss.item()
    return step


@pytest.mark.slow
def test_1000_lstm_training_iterations_keep_memory_flat():
    step = _lstm_trainer()
    state, _ = step(None)  # warm-up: the optimizer allocates its state on the first step
    _settle()
    tracemalloc.start()
    try:
        state, first = step(state)
        _settle()
        start, per_iteration_peak = tracemalloc.get_traced_memory()
        for _ in range(998):
            state, last = step(state)
        _settle()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n1000 LSTM iterations: traced memory after iteration 2 {start} B, after 1000 {end} B "
          f"(peak inside one iteration {per_iteration_peak} B); loss {first:.4f} -> {last:.4f}")
    assert last < first  # it trained
    # Flat: what the loop still holds after 1000 iterations differs from what it held after 2 by
    # far less than one iteration's graph (a leaked graph per iteration would add ~100 kB each).
    assert abs(end - start) < 4096, (start, end)
    assert per_iteration_peak > 50_000


def _rnn_bptt_reference(x, w_ih, w_hh, b, r):
    """NumPy BPTT of h_t = tanh(W_ih x_t + W_hh h_{t-1} + b), h_{-1} = 0, loss = sum_t r_t . h_t.
    Returns (loss, dW_ih, dW_hh, db); x (T, D), r (T, H)."""
    T, H = x.shape[0], w_hh.shape[0]
    hs = np.empty((T + 1, H))
    hs[0] = 0.0
    pre = x @ w_ih.T + b
    for t in range(T):
        hs[t + 1] = np.tanh(pre[t] + w_hh @ hs[t])
    loss = float((hs[1:] * r).sum())
    das = np.empty((T, H))
    dh = np.zeros(H)
    for t in range(T - 1, -1, -1):
        da = (dh + r[t]) * (1.0 - hs[t + 1] ** 2)
        das[t] = da
        dh = w_hh.T @ da
    return loss, das.T @ x, das.T @ hs[:-1], das.sum(0)


@pytest.mark.slow
def test_backward_through_100k_steps_matches_numpy_bptt():
    T, H = 100_000, 2
    rnn = nn.RNN(1, H, dtype="float64")
    x = tg.randn(T, 1, 1, dtype="float64")
    r = tg.randn(T, 1, H, dtype="float64")
    t0 = time.perf_counter()
    out, _ = rnn(x)
    loss = (out * r).sum()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    del out, loss
    print(f"\nRNN(1, {H}) over {T} steps: forward {t1 - t0:.2f} s, backward {t2 - t1:.2f} s")
    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).numpy()
    ref_loss, g_ih, g_hh, g_b = _rnn_bptt_reference(x.numpy()[:, 0], rnn.weight_ih_l0.numpy(),
                                                    rnn.weight_hh_l0.numpy(), b, r.numpy()[:, 0])
    np.testing.assert_allclose(rnn.weight_ih_l0.grad.numpy(), g_ih, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.numpy(), g_hh, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rnn.bias_ih_l0.grad.numpy(), g_b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rnn.bias_hh_l0.grad.numpy(), g_b, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_truncated_bptt_over_a_million_step_stream_has_memory_bounded_by_the_chunk():
    """Next-value prediction on a sine wave of 1,000,000 steps, in 1,000 chunks of 1,000 steps,
    the state carried across chunks and detached. Memory is traced on sampled chunks only
    (tracing every allocation costs ~4x): each sampled chunk's peak must be the same wherever it
    lies in the stream, proportional to the chunk length, and the chunk must leave nothing behind."""
    tg.manual_seed(0)
    chunk, n_chunks, H = 1000, 1000, 4
    rnn, head = nn.RNN(1, H), nn.Linear(H, 1)
    opt = optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=0.05, momentum=0.9)

    def train_chunk(k, h, size=chunk):
        t = np.arange(k * size, (k + 1) * size + 1)
        s = np.sin(0.05 * t).astype(np.float32)
        x, y = tg.Tensor(s[:-1].reshape(size, 1, 1)), tg.Tensor(s[1:].reshape(size, 1, 1))
        out, h = rnn(x, h)
        loss = nn.F.mse_loss(head(out), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return nn.detach_state(h), loss.item()

    def traced(k, h, size=chunk):
        _settle()
        tracemalloc.start()
        try:
            h, loss = train_chunk(k, h, size)
            _settle()
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return h, loss, kept, peak

    sampled = {2, 3, 500, 998, 999}
    h, losses, peaks, kept = None, [], {}, {}
    t0 = time.perf_counter()
    for k in range(n_chunks):
        if k in sampled:
            h, loss, kept[k], peaks[k] = traced(k, h)
        else:
            h, loss = train_chunk(k, h)
        losses.append(loss)
        if k == 3:
            objects_early = len(gc.get_objects())
    elapsed = time.perf_counter() - t0
    objects_late = len(gc.get_objects())
    _, _, _, half_peak = traced(n_chunks, h, chunk // 2)
    print(f"\nTBPTT over {chunk * n_chunks} steps in {elapsed:.1f} s; peak traced memory per "
          f"{chunk}-step chunk: {peaks} B; kept after a chunk: {kept} B; peak for a {chunk // 2}-step "
          f"chunk: {half_peak} B; gc-tracked objects after chunk 3: {objects_early}, at the end: "
          f"{objects_late}; loss {np.mean(losses[:10]):.3g} -> {np.mean(losses[-10:]):.3g}")
    ref = peaks[2]
    assert all(abs(p - ref) < 0.02 * ref for p in peaks.values()), peaks   # flat along the stream
    assert 0.4 < half_peak / ref < 0.6, (half_peak, ref)                  # bounded by the chunk
    assert all(v < 8192 for v in kept.values()), kept                      # nothing left behind
    assert abs(objects_late - objects_early) < 50
    assert np.mean(losses[-10:]) < 0.01 * np.mean(losses[:10])            # and it learned


# =============================================================== checkpoint: resume bit for bit
def _tbptt_run(n_chunks, ckpt=None, resume=None, save_at=(), crash_at=()):
    """LSTM (2 layers, dropout between them) + Linear trained by truncated BPTT on a random
    stream drawn chunk by chunk from the library RNG (which also draws the dropout masks).
    Saves {model, optim, rng, hidden state, chunk} after the chunks in `save_at`; the saves in
    `crash_at` die midway through writing. Returns (model, opt, state, losses)."""
    model = nn.ModuleList([nn.LSTM(2, 8, num_layers=2, dropout=0.3), nn.Linear(8, 1)])
    opt = optim.Adam(model.parameters(), lr=0.01)
    state, start, losses = None, 0, []
    if resume is not None:
        ck = tg.load(resume)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        tg.backend.set_rng_state(ck["rng"])
        state, start = ck["state"], ck["chunk"]
    lstm, head = model[0], model[1]
    for k in range(start, n_chunks):
        x = tg.randn(10, 3, 2)
        y = x.sum(-1, keepdim=True).tanh()
        out, state = lstm(x, state)
        loss = nn.F.mse_loss(head(out), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        state = nn.detach_state(state)
        losses.append(loss.item())
        if k + 1 in save_at or k + 1 in crash_at:
            blob = {"model": model.state_dict(), "optim": opt.state_dict(),
                    "rng": tg.backend.get_rng_state(), "state": state, "chunk": k + 1}
            if k + 1 in crash_at:
                real = serialization._write_npz

                def die(f, arrays):
                    f.write(b"PK\x03\x04" + b"\0" * 64)  # part of the archive reaches the disk
                    raise KeyboardInterrupt              # and the process is interrupted
                serialization._write_npz = die
                try:
                    tg.save(blob, ckpt)
                except KeyboardInterrupt:
                    pass
                finally:
                    serialization._write_npz = real
            else:
                tg.save(blob, ckpt)
    return model, opt, state, losses


def test_resume_lstm_dropout_tbptt_run_from_checkpoint_is_bit_exact(tmp_path):
    """tests/test_serialization.py covers a Linear + Dropout model; this adds a recurrent run:
    the hidden state carried between chunks is part of the checkpoint, and a crash while writing
    a later checkpoint leaves the earlier one intact to resume from."""
    ckpt = tmp_path / "run.ckpt"
    tg.manual_seed(0)
    model_a, opt_a, state_a, losses_a = _tbptt_run(8)
    rng_a = tg.backend.get_rng_state()

    tg.manual_seed(0)
    _tbptt_run(6, ckpt=ckpt, save_at={3}, crash_at={5})  # dies while saving after chunk 5
    assert os.listdir(tmp_path) == ["run.ckpt"]           # no temporary file left behind
    assert tg.load(ckpt)["chunk"] == 3                    # the old checkpoint survived

    tg.manual_seed(1234)  # a "new process": other seed, RNG used differently
    tg.randn(11)
    model_c, opt_c, state_c, losses_c = _tbptt_run(8, resume=ckpt)

    assert losses_c == losses_a[3:]
    for (n, p), q in zip(model_a.named_parameters(), model_c.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    for s_a, s_c in zip(state_a, state_c):
        np.testing.assert_array_equal(s_a.numpy(), s_c.numpy())
    sa, sc = opt_a.state_dict(), opt_c.state_dict()
    assert sa["param_groups"] == sc["param_groups"]
    for i in sa["state"]:
        assert sa["state"][i]["step"] == sc["state"][i]["step"] == 8
        for k in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(sa["state"][i][k].numpy(), sc["state"][i][k].numpy())
    assert tg.backend.get_rng_state() == rng_a


# ====================================================================== real devices (CuPy)
@pytest.mark.skipif(not tg.cuda_available(), reason="needs CUDA + CuPy; tests/test_mistakes.py "
                                                    "covers the same checks with simulated devices")
def test_device_mixes_on_a_real_gpu():
    lstm = nn.LSTM(4, 8).to("cuda")
    with pytest.raises(tg.DeviceError, match=r"LSTM: input is on cpu but the parameters are on cuda"):
        lstm(tg.randn(5, 3, 4))
    with pytest.raises(tg.DeviceError, match="h0 is on cpu"):
        lstm(tg.randn(5, 3, 4, device="cuda"), (tg.zeros(1, 3, 8), tg.zeros(1, 3, 8, device="cuda")))
    with pytest.raises(tg.DeviceError, match="different devices"):
        nn.Linear(4, 2).to("cuda")(tg.randn(3, 4))
    emb = nn.Embedding(10, 4).to("cuda")
    with pytest.raises(tg.DeviceError, match="Embedding: indices are on cpu"):
        emb(tg.Tensor([1, 2]))


# ---------------------------------------------------- detect_anomaly policy (issue 12)
def test_anomaly_forward_allows_inf_but_not_nan_and_backward_checks_both():
    with np.errstate(all="ignore"), tg.detect_anomaly():
        x = tg.Tensor([0.0, 1.0], requires_grad=True)
        y = x.log()  # -inf: a legitimate value (masking), no alarm in forward
        assert np.isneginf(y.numpy()[0])
        with pytest.raises(tg.AnomalyError, match="backward of 'log'.*1 Inf"):
            y.sum().backward()
        with pytest.raises(tg.AnomalyError, match="forward of 'sub' produced 1 NaN"):
            y - y  # -inf - -inf = NaN


def test_anomaly_reports_nan_arriving_in_a_sequence_input_with_its_time_step():
    lstm = nn.LSTM(3, 4)
    x = tg.randn(6, 2, 3)
    x[3, 0, 0] = float("nan")
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        lstm(x)
    assert str(info.value).startswith("input x has NaN at [3, 0, 0]: time step 3")
    gru = nn.GRU(3, 4, batch_first=True)
    xb = tg.randn(2, 5, 3).named("tokens")
    xb[1, 4, 2] = float("nan")
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match=r"input tokens has NaN at \[1, 4, 2\]: time step 4"):
        gru(xb)
    with np.errstate(all="ignore"):
        lstm(x)  # off: no check, no error


def test_anomaly_reports_nan_input_of_a_hand_written_loop_by_name_and_step():
    cell = nn.RNNCell(2, 3)
    xs = [tg.randn(1, 2).named("x_t") for _ in range(4)]
    xs[2][0, 1] = float("nan")
    h = None
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        for t, x in enumerate(xs):
            with tg.scope("step", t):
                h = cell(x, h)
    msg = str(info.value)
    assert msg.startswith("input x_t has NaN at [0, 1]: time step 2")
    assert "no op produced it" in msg and "reshape" not in msg


def test_anomaly_message_shows_math_names_of_outputs():
    # in backward the Inf is in the gradient sent to an INPUT of the op: named by that input's
    # name; the statistics are those of the gradients the op received, named by its outputs
    a = tg.Tensor([0.0, 1.0], requires_grad=True).named("a")
    b = tg.Tensor([1.0, 2.0], requires_grad=True)
    with np.errstate(all="ignore"), tg.detect_anomaly():
        y = (b * a.sqrt()).named("y_t")
        with pytest.raises(tg.AnomalyError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert msg.startswith("backward of 'sqrt' produced 0 NaN and 1 Inf values in the gradient for "
                          "input 0 ('a') (shape (2,))"), msg
    assert "gradient of output 0: shape (2,), max|finite| 2, nan 0, inf 0" in msg  # b = [1, 2]
    # a computed input: named by the op that made it; the received gradient by this op's output
    x = tg.Tensor([0.0, 1.0], requires_grad=True)
    with np.errstate(all="ignore"), tg.detect_anomaly():
        r = (x * 3).named("u_t").sqrt().named("r_t")
        with pytest.raises(tg.AnomalyError) as info:
            (r * 5).sum().backward()
    msg = str(info.value)
    assert "Inf values in the gradient for input 0 ('u_t') (shape (2,))" in msg
    assert "gradient of output 0 ('r_t'): shape (2,), max|finite| 5, nan 0, inf 0" in msg
    assert "output 0 ('r_t')" not in msg.split(".")[0]  # the old, wrong label
