"""Recurrent cells and layers (tinygrad_rnn/nn/rnn.py) against a plain NumPy implementation of the
equations written here, float64 gradcheck through 5+ time steps for every option, PyTorch parity
(only when torch is installed), packed-sequence semantics of `lengths`, truncated BPTT, errors, and
a small training run."""
from collections import Counter

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.autograd import iter_graph
from tinygrad_rnn.errors import DTypeError, GraphFreedError, ShapeError
from tinygrad_rnn.nn.rnn import detach_state

T, B, D, H = 5, 2, 3, 2  # tiny sizes keep float64 gradcheck fast
LAYERS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
CELLS = {"RNN": nn.RNNCell, "LSTM": nn.LSTMCell, "GRU": nn.GRUCell}


# ====================================================================== NumPy reference equations
def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_step(kind, x, state, p, opts):
    """One step of the textbook equations, PyTorch gate layout; x (B, D), state tuple of (B, H)."""
    wi, wh = p["weight_ih"], p["weight_hh"]
    hs = wh.shape[1]
    bi = p.get("bias_ih") if p.get("bias_ih") is not None else np.zeros(wi.shape[0])
    bh = p.get("bias_hh") if p.get("bias_hh") is not None else np.zeros(wi.shape[0])
    blk = lambda a, k: a[..., k * hs:(k + 1) * hs]  # noqa: E731 - gate k of a stacked array
    if kind == "RNN":
        a = x @ wi.T + bi + state[0] @ wh.T + bh
        return (np.maximum(a, 0) if opts.get("nonlinearity") == "relu" else np.tanh(a),)
    if kind == "LSTM":
        h, c = state
        a = x @ wi.T + bi + h @ wh.T + bh
        ai, af, ag, ao = (blk(a, k) for k in range(4))
        if opts.get("peephole"):
            ai, af = ai + p["weight_ci"] * c, af + p["weight_cf"] * c
        c_new = sig(af) * c + sig(ai) * np.tanh(ag)
        if opts.get("peephole"):
            ao = ao + p["weight_co"] * c_new
        return sig(ao) * np.tanh(c_new), c_new
    h = state[0]
    gi = x @ wi.T + bi
    r = sig(blk(gi, 0) + h @ blk(wh.T, 0) + blk(bh, 0))
    z = sig(blk(gi, 1) + h @ blk(wh.T, 1) + blk(bh, 1))
    if opts.get("reset_after", True):
        n = np.tanh(blk(gi, 2) + r * (h @ blk(wh.T, 2) + blk(bh, 2)))
    else:
        n = np.tanh(blk(gi, 2) + (r * h) @ blk(wh.T, 2) + blk(bh, 2))
    return ((1 - z) * n + z * h,)


def ref_layer(kind, x, sd, opts, num_layers=1, bidirectional=False, h0=None, lengths=None):
    """Stacked/bidirectional layer run one sequence at a time over its own valid prefix (so packed
    semantics hold by construction). x (T, B, D); sd: name -> array. Returns out, [h_n(, c_n)]."""
    steps, batch, _ = x.shape
    hidden = sd["weight_hh_l0"].shape[1]
    n_state = 2 if kind == "LSTM" else 1
    dirs = 2 if bidirectional else 1
    lengths = list(lengths) if lengths is not None else [steps] * batch
    finals = np.zeros((n_state, num_layers * dirs, batch, hidden))
    inp = x
    for layer in range(num_layers):
        out = np.zeros((steps, batch, dirs * hidden))
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {k[:-len(sfx)]: v for k, v in sd.items() if k.endswith(sfx)}
            for b in range(batch):
                state = tuple(np.zeros((1, hidden)) if h0 is None else h0[i][layer * dirs + d, b:b + 1]
                              for i in range(n_state))
                order = range(lengths[b] - 1, -1, -1) if d else range(lengths[b])
                for t in order:
                    state = ref_step(kind, inp[t, b:b + 1], state, p, opts)
                    out[t, b, d * hidden:(d + 1) * hidden] = state[0][0]
                for i in range(n_state):
                    finals[i, layer * dirs + d, b] = state[i][0]
        inp = out
    return inp, list(finals)


def np_sd(module):
    return {k: v.numpy().astype(np.float64) for k, v in module.state_dict().items()}


def flat(out, state):
    """(out, h) / (out, (h, c)) -> (out, h[, c]) so gradcheck sees every output."""
    return (out, *state) if isinstance(state, tuple) else (out, state)


# ============================================================================ parameters, init
def test_parameter_names_and_shapes_follow_pytorch():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    names = [(k, tuple(v.shape)) for k, v in lstm.named_parameters()]
    expect = []
    for layer, d_in in ((0, 3), (1, 8)):
        for sfx in ("", "_reverse"):
            s = f"_l{layer}{sfx}"
            expect += [("weight_ih" + s, (16, d_in)), ("weight_hh" + s, (16, 4)),
                       ("bias_ih" + s, (16,)), ("bias_hh" + s, (16,))]
    assert names == expect
    assert [k for k, _ in nn.GRU(3, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert nn.GRU(3, 4).weight_ih_l0.shape == (12, 3) and nn.RNN(3, 4).weight_hh_l0.shape == (4, 4)
    peep = dict((k, tuple(v.shape)) for k, v in nn.LSTM(3, 4, peephole=True, bidirectional=True).named_parameters())
    for k in ("weight_ci_l0", "weight_cf_l0", "weight_co_l0", "weight_co_l0_reverse"):
        assert peep[k] == (4,)
    cell = [(k, tuple(v.shape)) for k, v in nn.LSTMCell(3, 4, peephole=True).named_parameters()]
    assert cell == [("weight_ih", (16, 3)), ("weight_hh", (16, 4)), ("bias_ih", (16,)), ("bias_hh", (16,)),
                    ("weight_ci", (4,)), ("weight_cf", (4,)), ("weight_co", (4,))]
    assert [k for k, _ in nn.RNNCell(3, 4, bias=False).named_parameters()] == ["weight_ih", "weight_hh"]
    assert nn.GRUCell(3, 4).weight_hh.shape == (12, 4)


def test_init_is_uniform_in_pytorch_range_and_reproducible():
    tg.manual_seed(7)
    a = nn.LSTM(5, 25, num_layers=2, peephole=True)
    tg.manual_seed(7)
    b = nn.LSTM(5, 25, num_layers=2, peephole=True)
    k = 1 / np.sqrt(25)
    allv = np.concatenate([p.numpy().ravel() for p in a.parameters()])
    assert allv.dtype == np.float32 and np.abs(allv).max() <= k
    assert allv.min() < -0.95 * k and allv.max() > 0.95 * k and abs(allv.mean()) < 0.02
    for (n1, p1), (n2, p2) in zip(a.named_parameters(), b.named_parameters()):
        assert n1 == n2 and np.array_equal(p1.numpy(), p2.numpy())
    assert not np.array_equal(a.weight_ih_l0.numpy(), a.weight_ih_l1.numpy()[:, :5])
    cell = nn.GRUCell(3, 16)
    assert np.abs(cell.weight_hh.numpy()).max() <= 0.25 and np.abs(cell.bias_ih.numpy()).max() <= 0.25


# =========================================================================== forward values
CELL_CASES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("RNN", {"bias": False}),
              ("LSTM", {}), ("LSTM", {"peephole": True}), ("LSTM", {"bias": False}),
              ("GRU", {}), ("GRU", {"reset_after": False}), ("GRU", {"reset_after": False, "bias": False})]


@pytest.mark.parametrize("kind,opts", CELL_CASES, ids=[f"{k}-{o}" for k, o in CELL_CASES])
def test_cell_forward_matches_numpy(device, kind, opts):
    cell = CELLS[kind](4, 3, **opts, dtype="float64", device=device)
    p = np_sd(cell)
    x = np.random.randn(2, 4)
    state = tuple(np.random.randn(2, 3) for _ in range(2 if kind == "LSTM" else 1))
    hx = tuple(tg.Tensor(s, device=device) for s in state)
    got = cell(tg.Tensor(x, device=device), hx if kind == "LSTM" else hx[0])
    got = got if isinstance(got, tuple) else (got,)
    want = ref_step(kind, x, state, p, opts)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-12, atol=1e-12)
    # hx=None means zeros; an unbatched sample gives unbatched results
    zero = tuple(np.zeros((1, 3)) for _ in state)
    got0 = cell(tg.Tensor(x[0], device=device))
    got0 = got0 if isinstance(got0, tuple) else (got0,)
    for g, w in zip(got0, ref_step(kind, x[:1], zero, p, opts), strict=True):
        assert g.shape == (3,)
        np.testing.assert_allclose(g.numpy(), w[0], rtol=1e-12, atol=1e-12)


LAYER_CASES = [
    ("RNN", {}, {}), ("RNN", {"nonlinearity": "relu"}, {"num_layers": 2}),
    ("RNN", {}, {"bidirectional": True, "lengths": [5, 3]}),
    ("LSTM", {}, {}), ("LSTM", {}, {"num_layers": 2, "bidirectional": True, "h0": True}),
    ("LSTM", {}, {"num_layers": 2, "bidirectional": True, "lengths": [2, 5], "h0": True}),
    ("LSTM", {"peephole": True}, {"bidirectional": True, "lengths": [4, 1]}),
    ("LSTM", {"bias": False}, {"batch_first": True}),
    ("GRU", {}, {"num_layers": 2, "h0": True}), ("GRU", {}, {"bidirectional": True, "lengths": [3, 5]}),
    ("GRU", {"reset_after": False}, {"num_layers": 2, "bidirectional": True, "lengths": [5, 2]}),
    ("GRU", {"dropout": 0.5}, {"num_layers": 2}),  # dropout is off: the module is in eval mode
]


@pytest.mark.parametrize("kind,opts,run", LAYER_CASES, ids=[f"{k}-{o}-{r}" for k, o, r in LAYER_CASES])
def test_layer_forward_matches_numpy(device, kind, opts, run):
    run = dict(run)
    nl, bi, bf = run.get("num_layers", 1), run.get("bidirectional", False), run.get("batch_first", False)
    m = LAYERS[kind](D, H, num_layers=nl, bidirectional=bi, batch_first=bf, **opts, dtype="float64",
                     device=device).eval()
    x = np.random.randn(T, B, D)
    n_state = 2 if kind == "LSTM" else 1
    h0 = [np.random.randn(nl * (1 + bi), B, H) for _ in range(n_state)] if run.get("h0") else None
    hx = None
    if h0 is not None:
        hx = tuple(tg.Tensor(a, device=device) for a in h0)
        hx = hx if kind == "LSTM" else hx[0]
    xin = tg.Tensor(x.transpose(1, 0, 2) if bf else x, device=device)
    out, state = m(xin, hx, lengths=run.get("lengths"))
    want_out, want_state = ref_layer(kind, x, np_sd(m), opts, nl, bi, h0, run.get("lengths"))
    got = out.numpy().transpose(1, 0, 2) if bf else out.numpy()
    assert got.shape == (T, B, H * (1 + bi))
    np.testing.assert_allclose(got, want_out, rtol=1e-11, atol=1e-12)
    for g, w in zip(state if kind == "LSTM" else (state,), want_state, strict=True):
        assert g.shape == (nl * (1 + bi), B, H)
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-11, atol=1e-12)


def test_unbatched_input_matches_batch_of_one():
    m = nn.LSTM(D, H, num_layers=2, bidirectional=True)
    x = tg.randn(T, D)
    h0, c0 = tg.randn(4, H), tg.randn(4, H)
    out, (h, c) = m(x, (h0, c0))
    out1, (h1, c1) = m(x.unsqueeze(1), (h0.unsqueeze(1), c0.unsqueeze(1)))
    assert out.shape == (T, 2 * H) and h.shape == (4, H) and c.shape == (4, H)
    np.testing.assert_allclose(out.numpy(), out1.numpy()[:, 0], rtol=1e-6)
    np.testing.assert_allclose(h.numpy(), h1.numpy()[:, 0], rtol=1e-6)
    np.testing.assert_allclose(c.numpy(), c1.numpy()[:, 0], rtol=1e-6)


def test_gru_update_gate_maps_to_lecture_notes():
    """The notes: z = sigmoid(W_z [h, x]), h~ = tanh(W [r*h, x]), h_t = (1 - z) h_{t-1} + z h~.
    Our z is the notes' 1 - z, so the notes' update-gate weights are ours negated (docs/rnn.md)."""
    cell = nn.GRUCell(D, H, reset_after=False, dtype="float64")
    p = np_sd(cell)
    w_ih, w_hh, b = p["weight_ih"], p["weight_hh"], p["bias_ih"] + p["bias_hh"]
    x, h = np.random.randn(B, D), np.random.randn(B, H)
    z_notes = sig(-(x @ w_ih[H:2 * H].T + h @ w_hh[H:2 * H].T + b[H:2 * H]))
    r = sig(x @ w_ih[:H].T + h @ w_hh[:H].T + b[:H])
    h_tilde = np.tanh(x @ w_ih[2 * H:].T + (r * h) @ w_hh[2 * H:].T + b[2 * H:])
    notes = (1 - z_notes) * h + z_notes * h_tilde
    np.testing.assert_allclose(cell(tg.Tensor(x), tg.Tensor(h)).numpy(), notes, rtol=1e-12)


# ============================================================================ float64 gradcheck
def _check_module_grads(module, inputs, call, atol=1e-6):
    """gradcheck through `call(module, *inputs)` w.r.t. every input and every parameter: the
    parameters are swapped for the float64 copies gradcheck perturbs."""
    names = [n for n, _ in module.named_parameters()]
    params = [tg.Tensor(p.numpy().astype(np.float64), requires_grad=True) for p in module.parameters()]

    def fn(*args):
        for name, t in zip(names, args[len(inputs):]):
            module._parameters[name] = t
        return call(module, *args[:len(inputs)])

    return tg.gradcheck(fn, list(inputs) + params, atol=atol, rtol=1e-4)


def _x64(*shape):
    return tg.Tensor(np.random.randn(*shape), requires_grad=True)


GRAD_CASES = [
    ("RNN", {"num_layers": 2, "bidirectional": True}, None),
    ("RNN", {"nonlinearity": "relu", "bidirectional": True}, [5, 3]),
    ("LSTM", {"num_layers": 2, "bidirectional": True}, [3, 5]),
    ("LSTM", {"peephole": True, "bidirectional": True}, [5, 2]),
    ("LSTM", {"num_layers": 2, "dropout": 0.5}, None),          # eval mode
    ("LSTM", {"batch_first": True, "bias": False}, None),
    ("GRU", {"bidirectional": True}, [5, 4]),
    ("GRU", {"reset_after": False, "num_layers": 2}, [2, 5]),
]


@pytest.mark.parametrize("kind,opts,lengths", GRAD_CASES, ids=[f"{k}-{o}-{n}" for k, o, n in GRAD_CASES])
def test_layer_gradcheck(kind, opts, lengths):
    m = LAYERS[kind](D, H, **opts, dtype="float64").eval()
    count = opts.get("num_layers", 1) * (2 if opts.get("bidirectional") else 1)
    x = _x64(B, T, D) if opts.get("batch_first") else _x64(T, B, D)
    states = [_x64(count, B, H) for _ in range(2 if kind == "LSTM" else 1)]

    def call(mod, x, *s):
        return flat(*mod(x, tuple(s) if kind == "LSTM" else s[0], lengths=lengths))

    assert _check_module_grads(m, [x, *states], call)


@pytest.mark.parametrize("kind,opts", CELL_CASES, ids=[f"{k}-{o}" for k, o in CELL_CASES])
def test_cell_gradcheck_through_time(kind, opts):
    cell = CELLS[kind](D, H, **opts, dtype="float64")
    x = _x64(T, B, D)
    states = [_x64(B, H) for _ in range(2 if kind == "LSTM" else 1)]

    def call(mod, x, *s):
        state, outs = (tuple(s) if kind == "LSTM" else s[0]), []
        for xt in x.unbind(0):
            state = mod(xt, state)
            outs.append(state[0] if kind == "LSTM" else state)
        return (tg.stack(outs), *(state if kind == "LSTM" else (state,)))

    assert _check_module_grads(cell, [x, *states], call)


def test_two_layer_bidirectional_lstm_with_lengths_max_grad_error():
    """The number quoted in the issue's note: float64 autodiff vs central differences."""
    m = nn.LSTM(D, H, num_layers=2, bidirectional=True, dtype="float64")
    x = _x64(T, B, D)

    def fn(x, *params):
        for (name, _), t in zip(list(m.named_parameters()), params):
            m._parameters[name] = t
        return flat(*m(x, lengths=[T, 3]))

    params = [tg.Tensor(p.numpy(), requires_grad=True) for p in m.parameters()]
    err = tg.max_grad_error(fn, [x, *params])
    assert err < 1e-8


# ============================================================================== PyTorch parity
@pytest.mark.parametrize("kind,opts", [("RNN", {"nonlinearity": "relu"}), ("RNN", {}), ("LSTM", {}), ("GRU", {})])
def test_pytorch_state_dict_loads_and_matches(kind, opts):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    tm = getattr(torch.nn, kind)(4, 5, **kw, **opts).double()
    ours = LAYERS[kind](4, 5, **kw, **opts).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    assert list(dict(ours.named_parameters())) == list(dict(tm.named_parameters()))
    x = np.random.randn(3, 6, 4)
    lengths = [6, 2, 4]
    # padded full-length run, with an initial state
    n_state = 2 if kind == "LSTM" else 1
    h0 = [np.random.randn(4, 3, 5) for _ in range(n_state)]
    th = tuple(torch.tensor(a) for a in h0)
    xt = torch.tensor(x, requires_grad=True)
    t_out, t_state = tm(xt, th if kind == "LSTM" else th[0])
    xo = tg.Tensor(x, requires_grad=True)
    oh = tuple(tg.Tensor(a) for a in h0)
    o_out, o_state = ours(xo, oh if kind == "LSTM" else oh[0])
    np.testing.assert_allclose(o_out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(flat(o_out, o_state), flat(t_out, t_state)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    # gradients of a weighted sum of all outputs
    ws = [np.random.randn(*a.shape) for a in flat(t_out, t_state)]
    sum(((a * torch.tensor(w)).sum() for a, w in zip(flat(t_out, t_state), ws))).backward()
    loss = None
    for a, w in zip(flat(o_out, o_state), ws):
        term = (a * tg.Tensor(w)).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (name, p), (_, tp) in zip(ours.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    # variable lengths == PyTorch's packed sequences
    pack = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), lengths, batch_first=True,
                                                   enforce_sorted=False)
    t_po, t_ps = tm(pack)
    t_po = torch.nn.utils.rnn.pad_packed_sequence(t_po, batch_first=True, total_length=6)[0]
    o_po, o_ps = ours(tg.Tensor(x), lengths=lengths)
    for a, b in zip(flat(o_po, o_ps), flat(t_po, t_ps)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_pytorch_cells_match():
    torch = pytest.importorskip("torch")
    x, h, c = np.random.randn(3, 4), np.random.randn(3, 5), np.random.randn(3, 5)
    for kind in ("RNN", "LSTM", "GRU"):
        tc = getattr(torch.nn, kind + "Cell")(4, 5).double()
        oc = CELLS[kind](4, 5).double()
        oc.load_state_dict({k: v.detach().numpy() for k, v in tc.state_dict().items()})
        if kind == "LSTM":
            want = tc(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
            got = oc(tg.Tensor(x), (tg.Tensor(h), tg.Tensor(c)))
        else:
            want, got = (tc(torch.tensor(x), torch.tensor(h)),), (oc(tg.Tensor(x), tg.Tensor(h)),)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-13)


# ========================================================================== lengths semantics
def test_lengths_follow_packed_sequence_semantics(device):
    m = nn.LSTM(D, H, num_layers=2, bidirectional=True, dtype="float64", device=device)
    x = np.random.randn(T, 3, D)
    lengths = [5, 2, 4]
    x[2:, 1] = 1e3  # garbage in the padding must not matter
    x[4:, 2] = -1e3
    xt = tg.Tensor(x, requires_grad=True, device=device)
    out, (h, c) = m(xt, lengths=lengths)
    for b, n in enumerate(lengths):
        # each sequence alone, unpadded: same outputs, and h_n/c_n at its own last step (the
        # reverse direction starts at the last valid step, not at the padding)
        o1, (h1, c1) = m(tg.Tensor(x[:n, b:b + 1], device=device))
        np.testing.assert_allclose(out.numpy()[:n, b], o1.numpy()[:, 0], rtol=1e-12, atol=1e-13)
        assert not out.numpy()[n:, b].any()  # zero past the length
        np.testing.assert_allclose(h.numpy()[:, b], h1.numpy()[:, 0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(c.numpy()[:, b], c1.numpy()[:, 0], rtol=1e-12, atol=1e-13)
    (out.sum() + h.sum() + c.sum()).backward()
    g = xt.grad.numpy()
    assert not g[2:, 1].any() and not g[4:, 2].any()  # padding gets exactly zero gradient
    assert np.abs(g[:2, 1]).min() > 0


def test_lengths_accepts_list_array_tensor_and_full_lengths_mean_no_mask():
    m = nn.GRU(D, H, bidirectional=True)
    x = tg.randn(T, B, D)
    a = m(x, lengths=[5, 3])[0].numpy()
    for lengths in (np.array([5, 3]), tg.Tensor([5, 3]), (5, 3), [np.int64(5), 3]):
        np.testing.assert_array_equal(m(x, lengths=lengths)[0].numpy(), a)
    full = m(x, lengths=[T, T])
    plain = m(x)
    np.testing.assert_array_equal(full[0].numpy(), plain[0].numpy())
    np.testing.assert_array_equal(full[1].numpy(), plain[1].numpy())
    fns = iter_graph([full[0]])
    assert not any(f.name == "where" for f in fns)


# ============================================================ time loop: precompute, tags, ops
@pytest.mark.parametrize("kind,opts", [("RNN", {}), ("LSTM", {}), ("LSTM", {"peephole": True}),
                                       ("GRU", {}), ("GRU", {"reset_after": False})])
def test_precomputed_projection_equals_per_step_cell(kind, opts):
    """The layer projects all T inputs in one matmul; a per-step cell loop gives the same values."""
    m = LAYERS[kind](D, H, bidirectional=True, **opts, dtype="float64")
    cell = CELLS[kind](D, H, **opts, dtype="float64")
    x = tg.randn(7, B, D, dtype="float64")
    out, _ = m(x)
    for d, sfx in enumerate(("_l0", "_l0_reverse")):
        cell.load_state_dict({k[:-len(sfx)]: v for k, v in m.state_dict().items() if k.endswith(sfx)})
        state, hs = None, []
        for xt in (x.unbind(0)[::-1] if d else x.unbind(0)):
            state = cell(xt, state)
            hs.append(state[0] if kind == "LSTM" else state)
        hs = hs[::-1] if d else hs
        np.testing.assert_allclose(out.numpy()[..., d * H:(d + 1) * H], tg.stack(hs).numpy(),
                                   rtol=1e-13, atol=1e-14)


def test_time_loop_is_tagged_and_lean():
    m = nn.LSTM(D, H, num_layers=2, bidirectional=True)
    out, (h, c) = m(tg.randn(6, B, D))
    fns = iter_graph([out, h, c])
    assert not any(f.name == "getitem" for f in fns)  # x[t] would make backward quadratic in T
    per_step = Counter()
    names = Counter()
    for f in fns:
        tags = dict(f.tags)
        assert tags.get("module") == "LSTM"
        if "step" in tags:
            assert tags["layer"] in (0, 1) and tags["direction"] in ("forward", "reverse")
            key = (tags["layer"], tags["direction"], tags["step"])
            per_step[key] += 1
            names[(key, f.name)] += 1
    assert len(per_step) == 2 * 2 * 6
    # per step: projection + h @ W_hh^T (one addmm), chunk, 3 sigmoid + 2 tanh, f*c + i*g, o*tanh(c)
    assert set(per_step.values()) == {11}
    for key in per_step:
        assert names[(key, "addmm")] == 1 and names[(key, "sigmoid")] == 3 and names[(key, "tanh")] == 2
    # the input projections (with the folded biases): one addmm per layer and direction, outside the steps
    outside = [f for f in fns if f.name == "addmm" and "step" not in dict(f.tags)]
    assert len(outside) == 4


def test_float32_stays_float32():
    m = nn.GRU(D, H, num_layers=2, bidirectional=True)
    out, h = m(tg.randn(T, B, D), lengths=[5, 2])
    assert out.dtype == np.float32 and h.dtype == np.float32
    (out.sum() + h.sum()).backward()
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


# ================================================================================ dropout
def test_dropout_between_layers_only_in_training():
    m = nn.LSTM(D, 8, num_layers=2, dropout=0.5)
    x = tg.randn(T, B, D)
    out_e, (h_e, c_e) = m.eval()(x)
    out_t, (h_t, c_t) = m.train()(x)
    assert not np.allclose(out_t.numpy(), out_e.numpy())  # layer 1 saw dropped-out inputs
    np.testing.assert_array_equal(h_t.numpy()[0], h_e.numpy()[0])  # layer 0 is untouched
    np.testing.assert_array_equal(out_t.numpy()[-1], h_t.numpy()[-1])  # none after the last layer
    ref = nn.LSTM(D, 8, num_layers=2)
    ref.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(ref(x)[0].numpy(), out_e.numpy())
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.GRU(D, H, dropout=0.3)


# ============================================================================ truncated BPTT
def test_truncated_bptt_stops_gradients_at_the_cut():
    m = nn.LSTM(D, H, dtype="float64")
    x1, x2 = _x64(T, B, D), _x64(T, B, D)
    _, state = m(x1)
    state = detach_state(state)
    assert isinstance(state, tuple) and all(s.creator is None and not s.requires_grad for s in state)
    out, _ = m(x2, state)
    out.sum().backward()
    assert x1.grad is None and x2.grad is not None
    g = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
    # the same as starting chunk 2 from constant state values
    m.zero_grad()
    out2, _ = m(x2, tuple(tg.Tensor(s.numpy()) for s in state))
    out2.sum().backward()
    for k, p in m.named_parameters():
        np.testing.assert_allclose(g[k], p.grad.numpy(), rtol=1e-13)
    # without the cut, gradients reach chunk 1 ...
    _, state = m(x1)
    m(x2, state)[0].sum().backward()
    assert x1.grad is not None and np.abs(x1.grad.numpy()).sum() > 0


def test_carrying_state_without_detach_fails_clearly():
    m = nn.GRU(D, H)
    h = None
    for k in range(2):
        out, h = m(tg.randn(T, B, D), h)
        if k == 1:
            with pytest.raises(GraphFreedError, match="detach"):
                out.sum().backward()
        else:
            out.sum().backward()


def test_detach_state_helper():
    assert detach_state(None) is None
    a = tg.randn(2, requires_grad=True) * 2
    assert detach_state(a).creator is None
    out = detach_state([a, (a, None)])
    assert isinstance(out, list) and out[1][0].creator is None and out[1][1] is None
    with pytest.raises(TypeError, match="detach_state"):
        detach_state(3.0)


# ================================================================================= errors
def test_bad_inputs_give_clear_errors():
    lstm = nn.LSTM(3, 4)
    with pytest.raises(ShapeError, match=r"LSTM: input has shape \(5, 2, 7\).*input_size=3"):
        lstm(tg.randn(5, 2, 7))
    with pytest.raises(ShapeError, match=r"dim 1 has size 3.*transpose\(1, 2\)"):
        lstm(tg.randn(5, 3, 2))
    with pytest.raises(ShapeError, match="4 dims"):
        lstm(tg.randn(1, 5, 2, 3))
    with pytest.raises(TypeError, match="LSTM: input must be a Tensor"):
        lstm(np.zeros((5, 2, 3)))
    with pytest.raises(DTypeError, match="LSTM: input has dtype float64 but the parameters are float32"):
        lstm(tg.randn(5, 2, 3, dtype="float64"))
    x = tg.randn(5, 2, 3)  # read as T=5, B=2
    with pytest.raises(ShapeError, match=r"h0 has shape \(1, 5, 4\), expected \(1, 2, 4\).*batch_first=True"):
        lstm(x, (tg.zeros(1, 5, 4), tg.zeros(1, 5, 4)))
    with pytest.raises(ShapeError, match=r"c0 has shape"):
        lstm(x, (tg.zeros(1, 2, 4), tg.zeros(1, 2, 3)))
    with pytest.raises(TypeError, match=r"tuple \(h0, c0\)"):
        lstm(x, tg.zeros(1, 2, 4))
    with pytest.raises(ShapeError, match="got 5 lengths for a batch of 2.*batch_first=True"):
        lstm(x, lengths=[5, 5, 5, 5, 5])
    with pytest.raises(ShapeError, match=r"lengths\[0\] = 6 is longer than the 5 time steps"):
        lstm(x, lengths=[6, 3])
    with pytest.raises(ShapeError, match=r"lengths\[1\] = 0 must be at least 1"):
        lstm(x, lengths=[5, 0])
    with pytest.raises(ShapeError, match=r"lengths\[1\] = -2"):
        lstm(x, lengths=[5, -2])
    with pytest.raises(DTypeError, match="integers"):
        lstm(x, lengths=[5, 2.5])
    with pytest.raises(DTypeError, match="integers"):
        lstm(x, lengths=tg.Tensor([5.0, 2.0]))
    bf = nn.GRU(3, 4, batch_first=True)  # x (2, 5, 3) read as B=2, T=5; true data is (T=2, B=5)
    with pytest.raises(ShapeError, match=r"GRU: h0 has shape \(1, 5, 4\).*batch_first=False"):
        bf(tg.randn(2, 5, 3), tg.zeros(1, 5, 4))


def test_bad_cell_inputs_and_options_give_clear_errors():
    with pytest.raises(ShapeError, match=r"LSTMCell: input has shape \(2, 5\).*input_size=3"):
        nn.LSTMCell(3, 4)(tg.randn(2, 5))
    with pytest.raises(ShapeError, match=r"GRUCell: hx has shape \(3, 4\), expected \(2, 4\)"):
        nn.GRUCell(3, 4)(tg.randn(2, 3), tg.zeros(3, 4))
    with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
        nn.LSTMCell(3, 4)(tg.randn(2, 3), tg.zeros(2, 4))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(3, 4, num_layers=2, dropout=1.0)
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match="num_layers"):
        nn.LSTM(3, 4, num_layers=0)


def test_repr():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True, peephole=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True, peephole=True)"
    assert repr(nn.GRUCell(3, 4, reset_after=False)) == "GRUCell(3, 4, reset_after=False)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"


# ================================================================================ training
def test_lstm_learns_to_recall_the_first_token():
    """Classify a sequence of 8 one-hot tokens (4 classes) by its FIRST token: the answer must be
    carried through 7 steps of distractors. Chance is 25%; we ask for >= 95% on 512 fresh sequences,
    with Adam (lr 0.01), batches of 32, hidden size 32."""
    optim = pytest.importorskip("tinygrad_rnn.optim")
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    k, steps = 4, 8
    lstm, head = nn.LSTM(k, 32, batch_first=True), nn.Linear(32, k)
    opt = optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.01)

    def batch(n):
        tok = rng.integers(0, k, size=(n, steps))
        return tg.Tensor(np.eye(k, dtype=np.float32)[tok]), tok[:, 0]

    def accuracy():
        x, y = batch(512)
        with tg.no_grad():
            _, (h, _) = lstm(x)
            return float((head(h[-1]).argmax(-1).numpy() == y).mean())

    acc = 0.0
    for it in range(1, 1501):  # converges in 100-750 steps (~0.2-1.3 s) over seeds 0-9
        x, y = batch(32)
        _, (h, _) = lstm(x)
        loss = nn.F.cross_entropy(head(h[-1]), tg.Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 0:
            acc = accuracy()
            if acc >= 0.95:
                break
    assert acc >= 0.95, f"accuracy {acc:.3f} after {it} steps"
