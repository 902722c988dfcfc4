"""viz.labels and the levels of detail of draw_graph: math names on nodes (cells, attention, user
names), folded steps, the loss box, the initial state, the legend (no-gradient edges, zero
gradients, backward order) and the fixed colour scale; asserted on traced data and DOT text."""
import re

import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, viz
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.viz.graph import fold_steps, trace
from tinygrad_rnn.viz.labels import at_step, math_label, output_names


def lstm_loss(T=4, cross_entropy=True):
    tg.manual_seed(0)
    lstm, head = nn.LSTM(3, 4), nn.Linear(4, 5)
    out, _ = lstm(tg.randn(T, 2, 3))
    logits = head(out[-1])
    loss = F.cross_entropy(logits, [1, 3]) if cross_entropy else F.mse_loss(logits, tg.zeros(2, 5))
    return lstm, head, loss


def titles(tr, step):
    return {math_label(n)[0] for n in tr.nodes.values() if n.kind == "op" and n.step == step}


def test_at_step_reads_name_templates_at_a_time_step():
    assert at_step("h_t", 3) == "h_3"
    assert at_step("f_t⊙c_{t-1}", 3) == "f_3⊙c_2"
    assert at_step("c_{t-1}", 0) == "c_{-1}"
    assert at_step("h_{t+1}", 12) == "h_13"
    assert at_step("c_{t-1}", 3, reverse=True) == "c_4"
    assert at_step("x_tmp", 3) == "x_tmp" and at_step("tanh(c_t)", 2) == "tanh(c_2)"
    assert at_step("h_t", None) == "h_t"


def test_lstm_nodes_carry_the_math_names_with_the_op_below():
    _, _, loss = lstm_loss(T=3)
    tr = trace(loss)
    assert {"a_1", "a_1^i, a_1^f, a_1^g, a_1^o", "i_1", "f_1", "g_1", "o_1", "f_1⊙c_0", "i_1⊙g_1", "c_1",
            "tanh(c_1)", "h_1"} <= titles(tr, 1)
    (c1,) = [n for n in tr.nodes.values() if n.step == 1 and math_label(n)[0] == "c_1"]
    assert math_label(c1) == ("c_1", "add") and output_names(c1) == ["c_1"]
    assert "f_0⊙c_{-1}" in titles(tr, 0)  # the initial cell state is c_{-1}
    src = viz.draw_graph(loss, steps="all").source
    assert "f_2⊙c_1\\nmul" in src and "h_2\\nmul" in src
    # the gate edges out of the split are named, not [0]..[3]
    assert sum(src.count(f'label="a_{t}^f"') for t in range(3)) == 3


def test_rnn_and_gru_names():
    rnn = nn.RNN(2, 3)
    out, _ = rnn(tg.randn(2, 1, 2))
    t = titles(trace(out.sum()), 1)
    assert {"a_1", "h_1"} <= t
    gru = nn.GRU(2, 3)
    out, _ = gru(tg.randn(2, 1, 2))
    assert {"r_1, z_1", "n_1", "h_1"} <= titles(trace(out.sum()), 1)
    names = {math_label(n)[0] for n in trace(out.sum()).nodes.values() if n.kind == "op"}
    assert {"W_ih^T", "W_hh^T", "x_t W_ih^T + b"} <= names


def test_attention_names_and_user_names():
    attn = nn.AdditiveAttention(4, 4)
    s = tg.randn(2, 4, requires_grad=True)
    h = tg.randn(2, 5, 4, requires_grad=True)
    ctx, alpha = attn(s, h)
    tr = trace(ctx.sum() + alpha.sum())
    names = {math_label(n)[0] for n in tr.nodes.values() if n.kind == "op"}
    assert {"e_ij", "alpha_ij", "c_i"} <= names
    # a user's own names: .named() and names= both show, with the op below
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = (w * 3).named("y_t")
    z = y.tanh()
    src = viz.draw_graph(z.sum(), names={z: "z"}).source
    assert "y_t\\nmul" in src and "z\\ntanh" in src


def test_folded_steps_keep_one_edge_per_tensor_and_account_for_every_edge():
    _, _, loss = lstm_loss(T=4)
    full = trace(loss)
    tr = fold_steps(full, "last")
    boxes = [n for n in tr.nodes.values() if n.kind == "step"]
    assert [b.title for b in boxes] == ["t = 0", "t = 1", "t = 2"]
    assert sum(e.count for e in tr.edges) + sum(h["edges"] for h in tr.hidden.values()) == len(full.edges)
    assert all(tr.hidden[b.id]["ops"] == 11 for b in boxes)
    # box t = 1 -> box t = 2 carries h_1 and c_1 on two edges
    b1, b2 = boxes[1].id, boxes[2].id
    carried = sorted(output_names(full.nodes[e.origin])[e.out_index] for e in tr.edges
                     if e.src == b1 and e.dst == b2)
    assert carried == ["c_1", "h_1"]
    src = viz.draw_graph(loss).source  # the default folds all but the last step of 4 LSTM steps
    assert src.count("one step: 11 ops") == 3 and "subgraph cluster_" in src and "h_3\\nmul" in src
    assert viz.draw_graph(loss, steps=[0, 3]).source.count("one step: 11 ops") == 2
    with pytest.raises(ValueError, match="steps"):
        viz.draw_graph(loss, steps="some")


def test_the_loss_is_one_box_unless_expanded():
    for ce, name, inner in ((True, "cross_entropy", "exp"), (False, "mse_loss", "sub")):
        _, _, loss = lstm_loss(T=2, cross_entropy=ce)
        src = viz.draw_graph(loss).source
        assert src.count(f'label="{name}\\n') == 1 and f'label="{inner}\\n' not in src
        (box,) = [n for n in fold_box(loss) if n.kind == "loss"]
        assert box.title == name
        expanded = viz.draw_graph(loss, expand_loss=True).source
        assert f'label="{name}\\n' not in expanded and f'label="{inner}\\n' in expanded


def fold_box(loss):
    from tinygrad_rnn.viz.graph import fold_scopes
    return fold_scopes(trace(loss)).nodes.values()


def test_legend_explains_none_edges_zero_gradients_and_backward_order():
    x = tg.Tensor(0.5)
    w = tg.Tensor(2.0, requires_grad=True)
    y = (w * x).tanh()
    loss = y * y + y
    with tg.record_grads():
        loss.backward(retain_graph=True)
    src = viz.draw_graph(loss, show_grads=True, backward_order=True, show_constants=True,
                         show_values=True).source
    assert "is on the other edge" in src and "sends the whole gradient" in src
    assert "constant input" in src and 'label="constant\\n() float32\\n0.5"' in src
    assert "engine's backward visited the ops" in src
    # the forget gate at t = 0 gets an exact zero gradient (c_{-1} = 0): drawn and explained
    lstm = nn.LSTM(2, 3)
    out, _ = lstm(tg.randn(2, 1, 2))
    l2 = out[-1].sum()
    with tg.record_grads():
        l2.backward(retain_graph=True)
    tr = trace(l2)
    (f0,) = [n for n in tr.nodes.values() if n.step == 0 and math_label(n)[0] == "f_0"]
    assert f0.grad == 0
    src = viz.draw_graph(l2, show_grads=True, steps="all").source
    assert "grad norm 0\\n" in src or "grad norm 0\"" in src
    assert "dL/df_0 = dL/dc_0 ⊙ c_(-1) = 0" in src


def test_one_colour_scale_for_drawings_meant_to_be_compared():
    def drawn(scale):
        rnn = nn.RNN(2, 3)
        out, _ = rnn(tg.randn(3, 1, 2))
        loss = out[-1].sum() * scale
        with tg.record_grads():
            loss.backward(retain_graph=True)
        return viz.draw_graph(loss, show_grads=True, grad_range=(1e-3, 1e1)).source

    tg.manual_seed(1)
    a = drawn(1.0)
    tg.manual_seed(1)
    b = drawn(1000.0)
    def ticks(src):
        return re.findall(r"1e-?\d+", src.split("gradient norm (log scale)")[1])[:2]
    assert ticks(a) == ticks(b) == ["1e-3", "1e1"]
    assert a != b  # same scale, different gradients: different colours


def test_math_label_of_leaves_and_unnamed_ops():
    w = tg.Tensor([1.0], requires_grad=True)
    w.name = "W"
    tr = trace((w * 2).sum())
    labels = {n.kind: math_label(n) for n in tr.nodes.values()}
    assert labels["leaf"] == ("W", "") and ("sum", "") in labels.values()


def _named_calls(run, monkeypatch) -> int:
    """How many times run() calls Tensor.named."""
    real, calls = Tensor.named, [0]

    def counting(self, name):
        calls[0] += 1
        return real(self, name)

    with monkeypatch.context() as m:
        m.setattr(Tensor, "named", counting)
        run()
    return calls[0]


@pytest.mark.parametrize("steps", [1, 7])
def test_lstm_names_14_intermediates_per_step(steps, monkeypatch):
    lstm = nn.LSTM(3, 4)
    x = tg.randn(steps, 2, 3)

    def run():
        out, _ = lstm(x)
        (out * out).sum().backward()
    assert _named_calls(run, monkeypatch) == 14 * steps + 4  # 14 names per step, 4 outside the steps


@pytest.mark.bench
def test_naming_the_intermediates_costs_little(monkeypatch):
    """The cells' .named() calls on the LSTM benchmark's small config, (B, T, D, H) = (32, 50, 32,
    32), forward + backward: calls per run x the cost of one call (min of repeats), as a share of
    the run (min of 7), printed. Timing the run with and without names directly is drowned in
    noise on a shared machine; the count and the per-call cost are not. (The count itself is
    checked by test_lstm_names_14_intermediates_per_step; no timing is asserted.)"""
    import timeit

    lstm = nn.LSTM(32, 32)
    x = tg.randn(50, 32, 32)

    def run():
        out, _ = lstm(x)
        (out * out).sum().backward()

    calls = _named_calls(run, monkeypatch)
    h = tg.randn(2, 3, requires_grad=True) * 2
    per_call = min(timeit.repeat(lambda: h.named("h_t"), number=20000, repeat=5)) / 20000
    t_run = min(timeit.repeat(run, number=1, repeat=7))
    share = calls * per_call / t_run
    print(f"{calls} named() calls per run, {per_call * 1e6:.2f} us each: {share:.2%} of a "
          f"{t_run * 1e3:.1f} ms forward + backward")
