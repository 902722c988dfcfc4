"""viz.gradflow: per-step gradient norms, per-step terms of shared weights, Jacobian norms and the
plot, checked against a NumPy BPTT written from the equations (not from the library)."""
import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, viz


def numpy_bptt(wx, wh, b, xs, v):
    """Elman RNN h_t = tanh(x_t Wx^T + h_{t-1} Wh^T + b), h_{-1} = 0, L = <v, h_{T-1}>.
    Returns ||dL/dh_t||, per-step terms of dL/dWh, dL/dWx, dL/db, and ||dh_T/dh_t||_F (RMS)."""
    T, B, _ = xs.shape
    H = wh.shape[0]
    hs = [np.zeros((B, H))]
    for t in range(T):
        hs.append(np.tanh(xs[t] @ wx.T + hs[-1] @ wh.T + b))
    gh = v.copy()
    norms, t_wh, t_wx, t_b = [0.0] * T, [None] * T, [None] * T, [None] * T
    jac = np.zeros((T, B, H, H))  # d h_{T-1} / d h_t per sample
    J = np.broadcast_to(np.eye(H), (B, H, H)).copy()
    for t in range(T - 1, -1, -1):
        norms[t] = np.linalg.norm(gh)
        jac[t] = J
        ga = gh * (1 - hs[t + 1] ** 2)
        t_wh[t], t_wx[t], t_b[t] = ga.T @ hs[t], ga.T @ xs[t], ga.sum(0)
        gh = ga @ wh
        # J_{t-1} = J_t @ diag(1 - h_t^2) @ Wh
        J = J @ ((1 - hs[t + 1] ** 2)[:, :, None] * wh[None])
    jn = np.sqrt((jac ** 2).sum(axis=(2, 3)).mean(1))
    return np.array(norms), np.stack(t_wh), np.stack(t_wx), np.stack(t_b), jn


def direction(B, H, seed=0):
    v = np.random.RandomState(seed).standard_normal((B, H))
    return v / np.linalg.norm(v)


def test_cell_flow_matches_numpy_bptt():
    T, B, D, H = 6, 3, 2, 4
    cell = nn.RNNCell(D, H, dtype="float64")
    x = tg.randn(T, B, D, dtype="float64")
    flow = viz.gradient_flow(cell, x, jacobian=True)
    wx, wh = cell.weight_ih.numpy(), cell.weight_hh.numpy()
    b = cell.bias_ih.numpy() + cell.bias_hh.numpy()
    norms, t_wh, t_wx, t_b, jn = numpy_bptt(wx, wh, b, x.numpy(), direction(B, H))
    np.testing.assert_allclose(flow.grad_norms, norms, rtol=1e-10)
    np.testing.assert_allclose(flow.weight_terms["weight_hh"], t_wh, atol=1e-12)
    np.testing.assert_allclose(flow.weight_terms["weight_ih"], t_wx, atol=1e-12)
    np.testing.assert_allclose(flow.weight_terms["bias_ih"], t_b, atol=1e-12)
    np.testing.assert_allclose(flow.weight_term_norms["weight_hh"],
                               np.linalg.norm(t_wh.reshape(T, -1), axis=1), atol=1e-12)
    np.testing.assert_allclose(flow.jacobian_norms, jn, rtol=1e-10)
    assert flow.weight_terms["weight_hh"][0] == pytest.approx(0)  # h_{-1} = 0: no term at t = 0
    assert cell.weight_hh.grad is None  # measuring touches no .grad


def test_layer_flow_equals_cell_flow_and_sums_to_the_layer_gradient():
    T, B, D, H = 5, 2, 3, 4
    rnn = nn.RNN(D, H, dtype="float64")
    x = tg.randn(T, B, D, dtype="float64")
    flow = viz.gradient_flow(rnn, x)
    wx, wh = rnn.weight_ih_l0.numpy(), rnn.weight_hh_l0.numpy()
    b = rnn.bias_ih_l0.numpy() + rnn.bias_hh_l0.numpy()
    norms, t_wh, _, _, _ = numpy_bptt(wx, wh, b, x.numpy(), direction(B, H))
    np.testing.assert_allclose(flow.grad_norms, norms, rtol=1e-10)
    np.testing.assert_allclose(flow.weight_terms["weight_hh_l0"], t_wh, atol=1e-12)
    # an ordinary backward through the whole-sequence call gives the sum of the terms
    out, _ = rnn(x)
    (out[-1] * tg.Tensor(direction(B, H))).sum().backward()
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(flow.weight_terms[name].sum(0), p.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(flow.weight_grads[name], p.grad.numpy(), atol=1e-12)


def test_grad_by_step_on_a_whole_sequence_layer():
    T, B, D, H = 5, 2, 3, 4
    rnn = nn.RNN(D, H, dtype="float64")
    x = tg.randn(T, B, D, dtype="float64")
    v = direction(B, H)
    out, _ = rnn(x)
    loss = (out[-1] * tg.Tensor(v)).sum()
    sg = viz.grad_by_step(loss, rnn)
    assert sg.steps == list(range(T))
    wx, wh = rnn.weight_ih_l0.numpy(), rnn.weight_hh_l0.numpy()
    b = rnn.bias_ih_l0.numpy() + rnn.bias_hh_l0.numpy()
    _, t_wh, _, _, _ = numpy_bptt(wx, wh, b, x.numpy(), v)
    # the layer transposes W_hh once, outside the steps: the terms are carried back through it
    np.testing.assert_allclose(sg.terms["weight_hh_l0"], t_wh, atol=1e-12)
    np.testing.assert_allclose(sg.outside["weight_hh_l0"], 0, atol=1e-12)
    assert rnn.weight_hh_l0.grad is None
    loss.backward()  # grad_by_step kept the graph
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(sg.terms[name].sum(0) + sg.outside[name], p.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(sg.total[name], p.grad.numpy(), atol=1e-12)
    # the input projection runs once for all steps: its weight's gradient is not split by step
    np.testing.assert_allclose(sg.terms["weight_ih_l0"], 0)
    np.testing.assert_allclose(sg.norms["weight_hh_l0"], np.linalg.norm(t_wh.reshape(T, -1), axis=1),
                               atol=1e-12)


def test_grad_by_step_on_a_hand_written_loop_sums_to_grad():
    W = tg.randn(3, 3, requires_grad=True)
    W.name = "W"
    h = tg.ones(2, 3)
    for t in range(4):
        with viz.time_step(t):
            h = (h @ W).tanh()
    loss = h.sum()
    sg = viz.grad_by_step(loss, [W])
    loss.backward()
    assert sg.terms["W"].shape == (4, 3, 3)
    np.testing.assert_allclose(sg.terms["W"].sum(0), W.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert all(n > 0 for n in sg.norms["W"])


def test_lstm_cell_and_layer_agree_and_weights_sum():
    T, B, D, H = 4, 2, 3, 3
    lstm = nn.LSTM(D, H, dtype="float64")
    cell = nn.LSTMCell(D, H, dtype="float64")
    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, n).data[...] = getattr(lstm, n + "_l0").data
    x = tg.randn(T, B, D, dtype="float64")
    fl = viz.gradient_flow(lstm, x)
    fc = viz.gradient_flow(cell, x)
    np.testing.assert_allclose(fl.grad_norms, fc.grad_norms, rtol=1e-10)
    np.testing.assert_allclose(fl.cell_grad_norms, fc.cell_grad_norms, rtol=1e-10)
    assert fl.cell_grad_norms[-1] > 0 and fl.grad_norms[-1] == pytest.approx(1.0)
    out, _ = lstm(x)
    (out[-1] * tg.Tensor(direction(B, H))).sum().backward()
    for name, p in lstm.named_parameters():
        np.testing.assert_allclose(fl.weight_terms[name].sum(0), p.grad.numpy(), atol=1e-12)


def test_vanilla_rnn_vanishes_over_50_steps_while_the_lstm_cell_path_does_not():
    T, B, D, H = 50, 2, 4, 8
    x = tg.randn(T, B, D)
    rnn = nn.RNN(D, H)
    lstm = nn.LSTM(D, H)
    for m in (rnn, lstm):
        for p in m.parameters():
            p.data *= 0.3  # small weights
    lstm.bias_ih_l0.data[H:2 * H] = 5.0  # forget gate open: c_t = f * c_{t-1} + ... with f ~ 0.99
    fr = viz.gradient_flow(rnn, x)
    fl = viz.gradient_flow(lstm, x)
    assert fr.grad_norms[-1] == pytest.approx(1.0, rel=1e-5)
    assert fr.grad_norms[0] / fr.grad_norms[-1] < 1e-6          # many orders of magnitude
    assert np.all(np.diff(np.log(fr.grad_norms[fr.grad_norms > 0])) > 0)  # monotone decay back in time
    c = fl.cell_grad_norms
    assert c.min() / c.max() > 0.1                               # within one order over 50 steps
    assert fl.grad_norms[0] / fl.grad_norms[-1] > 1e3 * fr.grad_norms[0] / fr.grad_norms[-1]


def test_clipping_scales_every_step_term_by_one_factor():
    rnn = nn.RNN(3, 4)
    for p in rnn.parameters():
        p.data *= 3.0  # exploding
    x = tg.randn(20, 2, 3)
    f = viz.gradient_flow(rnn, x, clip=0.5)
    assert f.total_norm > 0.5
    assert f.clip_coef * f.total_norm == pytest.approx(0.5, rel=1e-4)
    g = viz.gradient_flow(rnn, x, clip=1e9)
    assert g.clip_coef == pytest.approx(1.0)
    assert viz.gradient_flow(rnn, x).clip is None


def test_errors():
    with pytest.raises(ValueError, match="bidirectional"):
        viz.gradient_flow(nn.GRU(2, 3, bidirectional=True), tg.randn(3, 1, 2))
    with pytest.raises(ValueError, match="3-d"):
        viz.gradient_flow(nn.GRU(2, 3), tg.randn(3, 2))
    with pytest.raises(KeyError, match="weight_xx"):
        viz.gradient_flow(nn.GRU(2, 3), tg.randn(3, 1, 2), weights=["weight_xx"])
    with pytest.raises(ValueError, match="loss"):
        viz.gradient_flow(nn.GRU(2, 3), tg.randn(3, 1, 2), loss="first")


def test_custom_loss_batch_first_and_gru():
    gru = nn.GRU(2, 3, batch_first=True)
    x = tg.randn(1, 4, 2)  # (B, T, D)
    f = viz.gradient_flow(gru, x, loss=lambda ys: sum(((y ** 2).sum() for y in ys[1:]), ys[0].sum()))
    assert f.grad_norms.shape == (4,) and np.all(f.grad_norms > 0) and f.cell_grad_norms is None
    f2 = viz.gradient_flow(gru, x, loss="all", weights=["weight_hh_l0"])
    assert list(f2.weight_terms) == ["weight_hh_l0"] and f2.recurrent_weight() == "weight_hh_l0"


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    x = tg.randn(8, 1, 2)
    flows = {"RNN": viz.gradient_flow(nn.RNN(2, 3), x, jacobian=True, clip=0.1),
             "LSTM": viz.gradient_flow(nn.LSTM(2, 3), x)}
    out = tmp_path / "flow.png"
    fig = viz.plot_gradient_flow(flows, path=out, title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("dL/dc_t" in s for s in labels) and any(s.startswith("RNN") for s in labels)
    viz.plot_gradient_flow(flows["RNN"], quantity="weight", clipped=True)
    viz.plot_gradient_flow([flows["RNN"]], quantity="jacobian")
    with pytest.raises(ValueError, match="jacobian"):
        viz.plot_gradient_flow(flows["LSTM"], quantity="jacobian")
    with pytest.raises(ValueError, match="clip"):
        viz.plot_gradient_flow(flows["LSTM"], quantity="weight", clipped=True)
    with pytest.raises(ValueError, match="quantity"):
        viz.plot_gradient_flow(flows["LSTM"], quantity="loss")
    import matplotlib.pyplot as plt
    plt.close("all")


def test_flow_on_every_device(device):
    lstm = nn.LSTM(2, 3).to(device)
    f = viz.gradient_flow(lstm, tg.randn(5, 2, 2, device=device), jacobian=True, clip=0.1)
    assert f.grad_norms.shape == (5,) and f.cell_grad_norms.shape == (5,)
    assert f.grad_norms[-1] == pytest.approx(1.0, rel=1e-5)
    assert f.jacobian_norms[-1] == pytest.approx(np.sqrt(3), rel=1e-5)
    out, _ = lstm(tg.randn(4, 1, 2, device=device))
    sg = viz.grad_by_step(out[-1].sum(), lstm)
    out[-1].sum().backward()
    np.testing.assert_allclose(sg.terms["weight_hh_l0"].sum(0), lstm.weight_hh_l0.grad.numpy(),
                               rtol=1e-4, atol=1e-6)


def test_step_terms_per_visit_sum_to_the_gradient_and_leave_the_visit_order():
    """StepTerms (the observer behind grad_by_step and viz.explore's running sums): one term per
    edge into the steps, the GRU's W_hh^T -> split carried back to W_hh, summing to .grad."""
    from tinygrad_rnn.viz.gradflow import StepTerms
    gru = nn.GRU(3, 4, dtype="float64")
    out, _ = gru(tg.randn(4, 2, 3, dtype="float64"))
    loss = (out * out).sum()
    split = StepTerms([loss])
    assert {f.name for f in split.ops} >= {"permute", "split"}  # W^T and its chunks
    with tg.observe_backward(split):
        loss.backward(retain_graph=True)
    visits = {id(f): f.visit for f in split.ops}
    per_edge = split.carried(lambda event, slot, step: (event, slot, step))
    assert {f.visit for f in split.ops} and visits == {id(f): f.visit for f in split.ops}
    by_step = split.carried(lambda event, slot, step: step)
    assert set(by_step) == {None, 0, 1, 2, 3}  # None: the input projection, outside the steps
    w = gru.weight_hh_l0
    assert sum(1 for b in per_edge.values() if id(w) in b) == 4  # h_{t-1} W_hh^T: one use per step
    for p in gru.parameters():
        total = sum(b[id(p)] for b in per_edge.values() if id(p) in b)
        np.testing.assert_allclose(total, p.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(sum(b[id(p)] for b in by_step.values() if id(p) in b),
                                   p.grad.numpy(), atol=1e-12)
    sg = viz.grad_by_step(loss, gru)
    for t in range(4):
        np.testing.assert_allclose(sg.terms["weight_hh_l0"][t], by_step[t][id(w)], atol=1e-12)
