"""The engine: accumulation, graph release, retain/create_graph, grad(), hooks, grad mode, tags."""
import gc
import time
import weakref

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import autograd


def leaf(*shape, seed=0, dtype="float64"):
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype, requires_grad=True)


def test_shared_weight_gets_summed_gradient():
    """A weight used at every step of an unrolled loop receives the sum of the per-step terms."""
    w = leaf(3, 3)
    h = tg.Tensor(np.ones((1, 3)), dtype="float64")
    hs = []
    for _ in range(4):
        h = (h @ w).tanh()
        hs.append(h)
    h.sum().backward()
    # Reference: the same recurrence differentiated by hand (BPTT), in NumPy
    W = w.numpy()
    H = [np.ones((1, 3))]
    for _ in range(4):
        H.append(np.tanh(H[-1] @ W))
    dW = np.zeros_like(W)
    dh = np.ones((1, 3))
    for t in range(4, 0, -1):
        da = dh * (1 - H[t] ** 2)
        dW += H[t - 1].T @ da
        dh = da @ W.T
    np.testing.assert_allclose(w.grad.numpy(), dW, rtol=1e-12)


def test_gradients_accumulate_across_backward_calls():
    x = leaf(2, 2)
    (x * 3).sum().backward()
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 2), 5.0))


def test_leaf_grads_do_not_alias():
    """add's backward hands the same gradient to both inputs; in-place work on one .grad (clipping)
    must not change the other."""
    a, b = leaf(3), leaf(3, seed=1)
    (a + b).sum().backward()
    a.grad.data *= 0.5
    np.testing.assert_allclose(b.grad.numpy(), np.ones(3))


def test_diamond_graph():
    x = leaf(3)
    y = x * 2
    z = y * y + y.exp()  # y used twice: its gradient is the sum of both paths
    z.sum().backward()
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * 2 * xv + np.exp(2 * xv)), rtol=1e-12)


def test_non_scalar_backward_needs_grad():
    x = leaf(2, 3)
    y = x * 2
    with pytest.raises(tg.GradError, match=r"scalar.*\(2, 3\)"):
        y.backward()
    y.backward(tg.ones(2, 3, dtype="float64"))
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 2.0))
    with pytest.raises(tg.ShapeError, match=r"\(3,\).*\(2, 3\)"):
        (x * 2).backward(tg.ones(3, dtype="float64"))


def test_backward_without_graph_is_a_clear_error():
    with pytest.raises(tg.GradError, match="does not require grad"):
        tg.ones(3).sum().backward()


def test_second_backward_through_freed_graph_mentions_retain_graph():
    x = leaf(3)
    y = (x.tanh() * 2).sum()
    y.backward()
    with pytest.raises(tg.GraphFreedError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = leaf(3)
    y = (x.tanh() * 2).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1)


def test_saved_arrays_released_after_backward():
    x = leaf(100, 100)
    y = x.tanh()
    z = (y * y).sum()
    fn_tanh, fn_mul = y.creator, z.creator.next[0][0]
    assert fn_tanh.saved_out is not None and fn_mul.saved
    z.backward()
    assert fn_tanh.saved_out is None and fn_mul.saved is None
    # the structure is kept for drawing
    assert fn_mul.next[0][0] is fn_tanh


def test_graph_freed_by_refcount_no_cycles():
    """Functions hold no reference to their outputs: dropping the root frees the whole graph
    without the cyclic garbage collector."""
    gc.disable()
    try:
        x = leaf(4)
        y = x
        for _ in range(50):
            y = (y * 1.01).tanh()
        ref = weakref.ref(y.creator)
        del y
        assert ref() is None
    finally:
        gc.enable()


def test_memory_does_not_grow_across_iterations():
    w = leaf(64, 64, dtype="float32")
    import tracemalloc
    tracemalloc.start()

    def step():
        h = tg.ones(8, 64)
        for _ in range(20):
            h = (h @ w).tanh()
        h.sum().backward()
        w.grad = None

    for _ in range(3):
        step()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(30):
        step()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 200_000, f"memory grew by {grown} bytes over 30 iterations"


def test_create_graph_hessian_vector_product():
    x = leaf(3)
    v = np.array([0.3, -1.0, 2.0])
    y = (x ** 3).sum() + (x[0] * x[1])
    (g,) = tg.grad(y, x, create_graph=True)
    (hv,) = tg.grad((g * tg.Tensor(v, dtype="float64")).sum(), x)
    xv = x.numpy()
    H = np.diag(6 * xv)
    H[0, 1] = H[1, 0] = 1
    np.testing.assert_allclose(hv.numpy(), H @ v, rtol=1e-12)


def test_backward_create_graph_gives_differentiable_grad():
    x = leaf(3)
    x.tanh().sum().backward(create_graph=True)
    assert x.grad.requires_grad
    gg = tg.grad(x.grad.sum(), x)[0]
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(gg.numpy(), -2 * t * (1 - t ** 2), rtol=1e-12)


def test_grad_function_does_not_touch_dot_grad():
    x, w = leaf(2, 3), leaf(3, 1, seed=1)
    h = x @ w
    loss = h.tanh().sum()
    gx, gh = tg.grad(loss, [x, h])
    assert x.grad is None and w.grad is None
    np.testing.assert_allclose(gh.numpy(), 1 - np.tanh(h.numpy()) ** 2, rtol=1e-12)
    np.testing.assert_allclose(gx.numpy(), gh.numpy() @ w.numpy().T, rtol=1e-12)


def test_grad_unused_input():
    x, y = leaf(2), leaf(2, seed=1)
    loss = (x * 2).sum()
    with pytest.raises(tg.GradError, match="allow_unused"):
        tg.grad(loss, [x, y], retain_graph=True)
    gx, gy = tg.grad(loss, [x, y], allow_unused=True)
    assert gy is None and np.allclose(gx.numpy(), 2)


def test_grad_and_backward_raise_pending_deferred_checks_first(monkeypatch):
    # a deferred GPU input check (docs/gpu.md) that failed; recorded by hand so it runs on the CPU
    from tinygrad_rnn import backend

    computed = []
    monkeypatch.setattr(autograd, "run_backward",
                        lambda *a, **k: computed.append(1) or (tg.zeros(2),))
    for name, call in [("grad", lambda loss, x: tg.grad(loss, x)),
                       ("backward", lambda loss, x: loss.backward())]:
        x = leaf(2)
        loss = (x * 2).sum()
        backend.check_later(np.array(True), lambda n=name: IndexError(f"pending check ({n})"))
        with pytest.raises(IndexError, match=f"pending check \\({name}\\)"):
            call(loss, x)
        assert backend.pending_checks() == 0 and computed == [] and x.grad is None
    backend.check_later(np.array(False), lambda: IndexError("passed check"))
    tg.grad((leaf(2) * 2).sum(), leaf(2))  # a check that passed: no error, the gradient runs
    assert backend.pending_checks() == 0 and computed == [1]


def test_hooks_leaf_and_nonleaf():
    x = leaf(3)
    seen = []
    x.register_hook(lambda g: seen.append(("x", g.numpy().copy())))
    h = x * 2
    h.register_hook(lambda g: g * 10)  # replaces the gradient flowing on
    h.retain_grad()
    (h * 3).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), np.full(3, 30.0))  # retain_grad sees the hooked grad
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 60.0))
    assert seen[0][0] == "x" and np.allclose(seen[0][1], 60.0)


def test_hook_removal():
    x = leaf(2)
    remove = x.register_hook(lambda g: g * 0)
    remove()
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0)


def test_no_grad_and_enable_grad():
    x = leaf(2)
    with tg.no_grad():
        y = x * 2
        assert not y.requires_grad and y.creator is None
        with tg.enable_grad():
            z = x * 2
    assert z.requires_grad

    @tg.no_grad()
    def f(a):
        return a * 2
    assert not f(x).requires_grad
    assert tg.is_grad_enabled()


def test_detach_cuts_the_graph():
    x = leaf(3)
    h = (x * 2).detach()
    assert h.is_leaf and not h.requires_grad
    y = (h * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_scope_tags_are_recorded():
    x = leaf(2)
    with tg.scope("module", "lstm"):
        with tg.scope("step", 3):
            y = x * 2
        z = y + 1
    assert y.creator.tags == (("module", "lstm"), ("step", 3))
    assert z.creator.tags == (("module", "lstm"),)
    assert autograd.current_tags() == ()


def test_record_grads_stores_norms_and_visit_order():
    x = leaf(3)
    y = x * 2
    z = y.tanh().sum()
    with tg.record_grads():
        z.backward()
    assert z.creator.visit == 0 and y.creator.visit == 2
    np.testing.assert_allclose(y.creator.grad_in_norms[0], np.linalg.norm(x.grad.numpy()))


def test_unused_outputs_of_multi_output_op():
    x = leaf(4, 2)
    a, b, c, d = x.unbind(0)
    (b * 2).sum().backward()
    want = np.zeros((4, 2))
    want[1] = 2
    np.testing.assert_allclose(x.grad.numpy(), want)


def test_float32_stays_float32_in_backward():
    x = tg.randn(3, 4, requires_grad=True)
    w = tg.randn(4, 2, requires_grad=True)
    y = ((x @ w).sigmoid() * 0.5 + 1.5 ** 2).exp().mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_gradient_cast_back_to_input_dtype():
    x = tg.randn(3, requires_grad=True)  # float32
    y = (x.double() * tg.Tensor(np.ones(3), dtype="float64")).sum()
    y.backward()
    assert x.grad.dtype == np.float32


def test_backward_through_100k_step_chain():
    """Traversal is iterative: an RNN unrolled over 100,000 steps backpropagates without recursion."""
    w = tg.Tensor([[0.5]], dtype="float64", requires_grad=True)
    h = tg.Tensor([[1.0]], dtype="float64")
    for _ in range(100_000):
        h = h @ w + 0.5
    t0 = time.perf_counter()
    h.sum().backward()
    elapsed = time.perf_counter() - t0
    # fixed point of h = 0.5 h + 0.5 is 1; dh_T/dw = sum_t 0.5^t h_{T-t-1} -> 1/(1-0.5) * 1 = 2
    np.testing.assert_allclose(w.grad.numpy(), [[2.0]], rtol=1e-9)
    print(f"backward through 100,000 steps (200,000 ops): {elapsed:.2f} s")


def test_observe_backward_sees_every_function_in_visit_order_with_edge_gradients():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, dtype=tg.float64)
    b = tg.Tensor([[0.5], [0.25]], requires_grad=True, dtype=tg.float64)
    v = tg.Tensor([3.0, 4.0], requires_grad=True, dtype=tg.float64)
    y = w * v
    z = (y + b).sum()    # b broadcasts (2,1) -> (2,2): its edge gradient is reduced to (2,1)
    seen = []
    with tg.observe_backward(lambda fn, gout, gin: seen.append((fn, gout, tuple(None if g is None else np.array(g) for g in gin)))):
        z.backward()
    assert [f.visit for f, _, _ in seen] == list(range(len(seen)))
    names = [f.name for f, _, _ in seen]
    assert names[0] == "sum" and names[-1] == "mul"
    add = next(s for s in seen if s[0].name == "add")
    np.testing.assert_array_equal(add[2][1], [[2.0], [2.0]])  # reduced to b's shape
    mul = seen[-1]
    np.testing.assert_array_equal(mul[2][0], [2.0 * 3.0, 2.0 * 4.0])  # d z/d w = 2 v
    np.testing.assert_array_equal(mul[2][1], [2.0 * 1.0, 2.0 * 2.0])
    np.testing.assert_array_equal(mul[2][0], w.grad.numpy())
    # outside the context nothing is called
    seen.clear()
    (w * 3).sum().backward()
    assert seen == []


def test_sum_sends_a_contiguous_gradient():
    """A sum's gradient is materialized: a zero-stride broadcast view would flow on (add passes it
    unchanged) and make NumPy take its slow strided path in every later op and in-place sum."""
    x = leaf(3, 4, dtype="float32")
    seen = {}
    with tg.observe_backward(lambda fn, gout, gin: seen.setdefault(fn.name, gin[0])):
        ((x + 1.0) * 2.0).sum().backward()
    g = seen["sum"]
    assert g.shape == (3, 4) and g.flags.c_contiguous and 0 not in g.strides
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2.0, np.float32))


def test_promoted_gradient_is_cast_back_for_non_leaf_inputs_too():
    """float32 times an int64 tensor: mul's backward gives float64 (gy * int array); the engine
    casts it back to the float32 input's dtype for a non-leaf input as for a leaf."""
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = w * 3.0               # a float32 non-leaf, shaped like the product
    h.retain_grad()
    (tg.arange(2) * h).sum().backward()
    assert h.grad.dtype == np.float32 and w.grad.dtype == np.float32
    np.testing.assert_array_equal(h.grad.numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 3.0])
