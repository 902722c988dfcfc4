"""Engine state is per thread: grad mode, scope tags, detect_anomaly, record_grads and
observe_backward set in one thread never change what another thread records or computes.
Events and barriers force the interleavings that used to break (issue 12)."""
import threading

import numpy as np
import pytest

import tinygrad_rnn as tg
import tinygrad_rnn.nn as nn
from tinygrad_rnn import autograd, viz

TIMEOUT = 60


def run_threads(*targets):
    """Run each target in its own thread; re-raise the first exception a thread hit."""
    errors = []

    def wrap(f):
        def run():
            try:
                f()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        return run
    threads = [threading.Thread(target=wrap(f)) for f in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def test_no_grad_in_one_thread_does_not_cut_another_threads_graph():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    b_inside, a_done = threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        assert b_inside.wait(TIMEOUT)
        y = (w * 2).sum() + (w * 3).sum()
        y.backward()
        seen["grad"] = w.grad.numpy().copy()
        a_done.set()

    def thread_b():
        with tg.no_grad():
            b_inside.set()
            assert a_done.wait(TIMEOUT)
            seen["b_mode"] = tg.is_grad_enabled()
            seen["b_graph"] = (w * 2).requires_grad

    run_threads(thread_a, thread_b)
    np.testing.assert_array_equal(seen["grad"], [5.0, 5.0])
    assert seen["b_mode"] is False and seen["b_graph"] is False
    assert tg.is_grad_enabled()


def test_scope_tag_of_one_thread_is_not_seen_by_another():
    x = tg.Tensor([1.0], requires_grad=True)
    entered, made = threading.Event(), threading.Event()
    tags = {}

    def tagger():
        with viz.time_step(7):
            entered.set()
            assert made.wait(TIMEOUT)
            tags["own"] = (x * 2).creator.tags

    def other():
        assert entered.wait(TIMEOUT)
        tags["other"] = (x * 2).creator.tags
        tags["current"] = autograd.current_tags()
        made.set()

    run_threads(tagger, other)
    assert tags["own"] == (("step", 7),)
    assert tags["other"] == () and tags["current"] == ()


def test_no_grad_blocks_exited_out_of_order_in_two_threads_leave_grad_mode_on():
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    after = {}

    def a():
        with tg.no_grad():
            a_in.set()
            assert b_in.wait(TIMEOUT)
        a_out.set()  # A leaves first although it entered first
        after["a"] = tg.is_grad_enabled()

    def b():
        assert a_in.wait(TIMEOUT)
        with tg.no_grad():
            b_in.set()
            assert a_out.wait(TIMEOUT)
        after["b"] = tg.is_grad_enabled()

    run_threads(a, b)
    assert after == {"a": True, "b": True}
    assert tg.is_grad_enabled()
    x = tg.Tensor([1.0], requires_grad=True)
    assert (x * 2).requires_grad


def test_new_threads_start_with_the_default_state():
    seen = {}

    def child():
        seen["mode"], seen["tags"] = tg.is_grad_enabled(), autograd.current_tags()

    with tg.no_grad(), tg.scope("step", 3):
        run_threads(child)
    assert seen == {"mode": True, "tags": ()}


def test_set_grad_enabled_as_a_plain_call_switches_mode_until_switched_back():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    try:
        tg.set_grad_enabled(False)
        assert not tg.is_grad_enabled()
        assert not (x * 2).requires_grad
        tg.set_grad_enabled(True)
        assert (x * 2).requires_grad
        with tg.set_grad_enabled(False):  # as a context manager: restored on exit
            assert not (x * 2).requires_grad
        assert tg.is_grad_enabled()
        with tg.no_grad():
            tg.set_grad_enabled(True)  # PyTorch: a plain call inside no_grad applies at once
            assert (x * 2).requires_grad
        assert tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)


def test_set_grad_enabled_as_a_decorator_applies_per_call_not_at_decoration():
    @tg.set_grad_enabled(False)
    def f(a):
        return a * 2
    assert tg.is_grad_enabled()
    x = tg.Tensor([1.0], requires_grad=True)
    assert not f(x).requires_grad
    assert tg.is_grad_enabled()


def test_plain_set_grad_enabled_inside_a_scope_survives_the_scope_exit():
    try:
        with tg.scope("module", "m"):
            tg.set_grad_enabled(False)
        assert not tg.is_grad_enabled()  # the scope restores its tags only
        assert autograd.current_tags() == ()
    finally:
        tg.set_grad_enabled(True)


def test_backward_in_one_thread_leaves_other_threads_recording():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    in_backward, checked = threading.Event(), threading.Event()
    seen = {}

    def hook(g):
        in_backward.set()           # this thread is inside backward (grad mode off for it)...
        assert checked.wait(TIMEOUT)
        seen["inside"] = tg.is_grad_enabled()

    def a():
        w.register_hook(hook)
        (w * w).sum().backward()

    def b():
        assert in_backward.wait(TIMEOUT)  # ...while this one keeps recording
        seen["other_mode"] = tg.is_grad_enabled()
        seen["other_graph"] = (w * 3).requires_grad
        checked.set()

    run_threads(a, b)
    assert seen == {"inside": False, "other_mode": True, "other_graph": True}
    assert tg.is_grad_enabled()


def test_anomaly_record_grads_and_observers_are_per_thread():
    in_ctx, done = threading.Event(), threading.Event()
    seen = {"calls": 0}

    def watcher():
        def cb(fn, go, gi):
            seen["calls"] += 1
        with tg.detect_anomaly(), tg.record_grads(), tg.observe_backward(cb):
            in_ctx.set()
            assert done.wait(TIMEOUT)

    def worker():
        assert in_ctx.wait(TIMEOUT)
        x = tg.Tensor([0.0, 1.0], requires_grad=True)
        with np.errstate(all="ignore"):
            y = x.log()  # -inf, and NaN below: not checked in this thread
            (y * 0).sum().backward()
        seen["norms"] = y.creator.grad_out_norms
        done.set()

    run_threads(watcher, worker)
    assert seen == {"calls": 0, "norms": None}


def _setup(seed, cell):
    """A small model, its optimizer and a batch (built in one thread: the RNG is process-wide)."""
    tg.manual_seed(seed)
    if cell == "mlp":
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
        return model, tg.optim.SGD(model.parameters(), lr=0.1), tg.randn(5, 3)
    model = nn.LSTM(3, 4)
    return model, tg.optim.Adam(model.parameters(), lr=0.01), tg.randn(6, 2, 3)


def _train(setup, steps, barrier=None, eval_every=0):
    """SGD/Adam steps; returns every step's gradients."""
    model, opt, x = setup
    grads = []
    for it in range(steps):
        if barrier is not None:
            barrier.wait()
        out = model(x)
        loss = (out[0] if isinstance(out, tuple) else out).pow(2).mean()
        if barrier is not None:
            barrier.wait()  # both threads hold a graph here
        opt.zero_grad()
        loss.backward()
        grads.append([p.grad.numpy().copy() for p in model.parameters()])
        opt.step()
        if eval_every and it % eval_every == 0:
            with tg.no_grad():
                model(x)
    return grads


@pytest.mark.parametrize("cells", [("mlp", "lstm"), ("lstm", "lstm")])
def test_two_threads_training_concurrently_get_exactly_the_single_threaded_gradients(cells):
    steps = 30
    want = [_train(_setup(1, cells[0]), steps), _train(_setup(2, cells[1]), steps)]
    setups = [_setup(1, cells[0]), _setup(2, cells[1])]
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    got = [None, None]

    def job(i, eval_every):
        def run():
            got[i] = _train(setups[i], steps, barrier, eval_every)
        return run

    # thread 1 also evaluates under no_grad between steps: it must not cut thread 0's graph
    run_threads(job(0, 0), job(1, 2))
    for w, g in zip(want, got):
        assert len(g) == steps
        for step_w, step_g in zip(w, g):
            for a, b in zip(step_w, step_g):
                np.testing.assert_array_equal(a, b)
