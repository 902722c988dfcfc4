"""viz.graph: structure of the drawn graph (clusters, shared weights, collapse, gradients, memory,
truncated-BPTT cuts) asserted on the traced data and on the DOT text, never on pixels."""
import re

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, viz
from tinygrad_rnn.viz.graph import collapse_steps, saved_bytes, trace


class Cell(nn.Module):
    """A hand-written Elman cell: h' = tanh(x W_x^T + h W_h^T + b) (W_h used once per step)."""

    def __init__(self, d, h):
        super().__init__()
        self.W_x = nn.Parameter(tg.randn(h, d) * 0.5)
        self.W_h = nn.Parameter(tg.randn(h, h) * 0.5)
        self.b = nn.Parameter(tg.zeros(h))

    def forward(self, x, h):
        return (x @ self.W_x.T + h @ self.W_h.T + self.b).tanh()


def unroll(T=4, B=2, D=3, H=4, h0=None, t0=0):
    cell = Cell(D, H)
    xs = tg.randn(T, B, D).unbind(0)
    h = h0 if h0 is not None else tg.zeros(B, H)
    hs = []
    for t, x_t in enumerate(xs):
        with viz.time_step(t0 + t):
            h = cell(x_t, h)
        hs.append(h)
    loss = (tg.stack(hs) ** 2).mean()
    return cell, hs, loss


def node_ids(source, label_start):
    return re.findall(r'^\s*(\w+) \[label="' + re.escape(label_start), source, flags=re.M)


def edges_from(source, nid):
    return re.findall(r"^\s*" + nid + r" -> (\w+)", source, flags=re.M)


def test_one_cluster_per_time_step_in_time_order():
    _, _, loss = unroll(T=5)
    src = viz.draw_graph(loss, steps="all").source
    labels = re.findall(r'label="t = (\d+)"', src)
    assert labels == ["0", "1", "2", "3", "4"]
    assert src.count("subgraph cluster_") == 5
    assert trace(loss).steps == [0, 1, 2, 3, 4]


def test_shared_parameter_drawn_once_with_one_edge_per_step():
    T = 6
    cell, _, loss = unroll(T=T)
    src = viz.draw_graph(loss, model=cell).source
    ids = node_ids(src, "W_h\\n")
    assert len(ids) == 1, "the shared weight must be one node"
    targets = edges_from(src, ids[0])
    assert len(targets) == T
    # each edge goes into a different step cluster
    tr = trace(loss, model=cell)
    steps = sorted(tr.nodes[e.dst].step for e in tr.edges if e.src == ids[0])
    assert steps == list(range(T))
    # parameters are outside every cluster
    assert tr.nodes[ids[0]].path == () and tr.nodes[ids[0]].kind == "param"


def test_builtin_layer_tags_steps_and_names_parameters():
    rnn = nn.RNN(3, 4)
    out, _ = rnn(tg.randn(7, 2, 3))
    src = viz.draw_graph(out.sum(), model={"rnn": rnn}).source
    assert re.findall(r'label="t = (\d+)"', src) == [str(t) for t in range(7)]
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
        assert len(node_ids(src, name + "\\n")) == 1
    # the layer transposes W_hh once; that transposed weight feeds every step
    w = node_ids(src, "rnn.weight_hh_l0\\n")[0]
    (perm,) = edges_from(src, w)
    assert len(edges_from(src, perm)) == 7


def test_multilayer_layer_clusters_and_module_clusters():
    lstm = nn.LSTM(3, 4, num_layers=2)
    out, _ = lstm(tg.randn(3, 2, 3))
    src = viz.draw_graph(out.sum(), steps="all").source
    assert 'label="layer 0"' in src and 'label="layer 1"' in src
    assert len(re.findall(r'label="t = \d+"', src)) == 6  # 3 steps in each of 2 layers
    src_m = viz.draw_graph(out.sum(), cluster="module", steps="all").source
    assert 'label=LSTM' in src_m or 'label="LSTM"' in src_m
    assert "t = " not in src_m
    both = viz.draw_graph(out.sum(), cluster="time+module").source
    assert "t = 0" in both and re.search(r'label="?LSTM', both)


def test_nested_module_clusters():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.LSTM(3, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            out, _ = self.enc(x)
            return self.head(out)

    m = Model()
    y = m(tg.randn(2, 1, 3))
    src = viz.draw_graph(y.sum(), model=m, cluster="module").source
    # Model > enc and Model > head, nested: the outer cluster opens before the inner ones
    outer = src.index('label=Model')
    assert outer < src.index('label=enc') and outer < src.index('label=head')
    assert "enc.weight_hh_l0" in src and "head.weight" in src


def test_collapse_keeps_first_and_last_steps_and_accounts_for_every_edge():
    T, k = 20, 2
    _, _, loss = unroll(T=T)
    full = trace(loss)
    col = collapse_steps(full, k)
    assert col.steps == [0, 1, T - 2, T - 1]
    (sid,) = col.hidden
    info = col.hidden[sid]
    assert info["steps"] == T - 2 * k
    n_step_ops = len(full.step_nodes(5))
    assert info["ops"] == (T - 2 * k) * n_step_ops
    # every original edge is either drawn (count > 1 when merged) or inside the summary
    assert sum(e.count for e in col.edges) + info["edges"] == len(full.edges)
    for e in col.edges:
        assert e.src in col.nodes and e.dst in col.nodes
    # edges that do not touch the hidden steps are unchanged
    kept = {(e.src, e.dst, e.slot) for e in full.edges
            if e.src in col.nodes and e.dst in col.nodes}
    drawn = {(e.src, e.dst, e.slot) for e in col.edges if sid not in (e.src, e.dst)}
    assert kept == drawn
    # the recurrence passes through the summary: step k-1 -> summary -> step T-k
    assert any(e.dst == sid and col.nodes[e.src].step == k - 1 for e in col.edges)
    assert any(e.src == sid and col.nodes[e.dst].step == T - k for e in col.edges)
    src = viz.draw_graph(loss, collapse=k, steps="all").source
    assert f"{T - 2 * k} steps hidden (t = {k} .. {T - k - 1})" in src
    assert len(re.findall(r'label="t = \d+"', src)) == 2 * k
    # nothing to collapse: the graph is unchanged
    assert viz.draw_graph(loss, collapse=10).source == viz.draw_graph(loss).source


def test_dot_is_deterministic():
    def build():
        tg.manual_seed(3)
        cell, _, loss = unroll(T=3)
        with tg.record_grads():
            loss.backward(retain_graph=True)
        return viz.draw_graph(loss, model=cell, show_grads=True, backward_order=True,
                              show_memory=True).source

    a, b = build(), build()  # two graphs built in one process: different creation counters
    assert a == b
    cell, _, loss = unroll(T=3)
    assert viz.draw_graph(loss).source == viz.draw_graph(loss).source
    assert "0x" not in a  # no id()-based names


def test_gradient_annotations_match_grad_norms():
    cell, hs, loss = unroll(T=4)
    hs[1].retain_grad()
    with viz.record_grads():
        loss.backward()
    tr = trace(loss, model=cell)
    for name in ("W_x", "W_h", "b"):
        (node,) = [n for n in tr.nodes.values() if n.title == name]
        p = getattr(cell, name)
        assert node.grad == pytest.approx(float(np.linalg.norm(p.grad.numpy())), rel=1e-6)
    # an intermediate: the op that produced h_1 carries ||dL/dh_1||
    (h1,) = [n for n in tr.nodes.values() if n.fn is hs[1].creator]
    assert h1.grad == pytest.approx(float(np.linalg.norm(hs[1].grad.numpy())), rel=1e-5)
    # the loss seed is 1
    assert tr.nodes["out0"].grad == pytest.approx(1.0)
    src = viz.draw_graph(loss, model=cell, show_grads=True).source
    assert f"grad norm {np.linalg.norm(cell.W_h.grad.numpy()):.2e}" in src
    assert "gradient norm (log scale)" in src  # the legend
    assert "penwidth" in src and "record_grads" not in src


def test_edge_gradients_sum_back_to_the_weight_gradient():
    # the gradient sent along W_h's edge at step t is that step's term; the terms' vector sum is
    # W_h.grad, so the largest edge norm cannot exceed the sum of all edge norms
    cell, _, loss = unroll(T=5)
    with tg.record_grads():
        loss.backward()
    tr = trace(loss, model=cell)
    wid = next(n.id for n in tr.nodes.values() if n.title == "W_h")
    norms = [e.grad for e in tr.edges if e.src == wid]
    assert len(norms) == 5 and all(g is not None and g >= 0 for g in norms)
    assert np.linalg.norm(cell.W_h.grad.numpy()) <= sum(norms) + 1e-6


def test_show_grads_without_record_grads_explains_what_to_do():
    cell, _, loss = unroll(T=3)
    loss.backward()
    src = viz.draw_graph(loss, model=cell, show_grads=True).source
    assert "record_grads" in src
    assert f"grad norm {np.linalg.norm(cell.b.grad.numpy()):.2e}" in src
    cell2, _, loss2 = unroll(T=2)
    assert "No gradients yet" in viz.draw_graph(loss2, show_grads=True).source


def test_backward_order_runs_through_time_in_reverse():
    _, hs, loss = unroll(T=4)
    loss.backward()
    tr = trace(loss)
    visits = [tr.nodes[next(n.id for n in tr.nodes.values() if n.fn is h.creator)].visit
              for h in hs]
    assert visits == sorted(visits, reverse=True)  # the last step is visited first
    src = viz.draw_graph(loss, backward_order=True).source
    assert re.search(r'label="#0  ', src)
    _, _, fresh = unroll(T=2)
    assert "no backward has run" in viz.draw_graph(fresh, backward_order=True).source


def test_show_memory_counts_saved_bytes_per_step():
    B, H, T = 2, 4, 5
    _, _, loss = unroll(T=T, B=B, H=H)
    per_step, outside, freed = saved_bytes(trace(loss))
    # per step: tanh keeps its output (B, H); matmul keeps x_t (B, D=3) and h_{t-1} (the previous
    # step's tanh output, already counted, except at t = 0 where it is the zero state); the
    # transposed weights are views of parameters and not counted
    step = B * H * 4 + B * 3 * 4
    assert per_step == {0: step + B * H * 4, **{t: step for t in range(1, T)}}
    assert not freed
    src = viz.draw_graph(loss, show_memory=True).source
    assert src.count(f"saved for backward: {step} B") == T - 1
    loss.backward()
    per_step2, _, freed2 = saved_bytes(trace(loss))
    assert freed2 and sum(per_step2.values()) == 0
    assert "backward already freed" in viz.draw_graph(loss, show_memory=True).source


def test_memory_grows_linearly_with_sequence_length():
    totals = []
    for T in (4, 8, 16):
        _, _, loss = unroll(T=T)
        per_step, _, _ = saved_bytes(trace(loss))
        totals.append(sum(per_step.values()))
    assert totals[2] - totals[1] == 2 * (totals[1] - totals[0])


def test_truncated_bptt_cut_is_marked():
    cell = Cell(3, 4)
    h = tg.zeros(2, 4)
    for chunk in range(2):
        xs = tg.randn(3, 2, 3).unbind(0)
        for t, x_t in enumerate(xs):
            with viz.time_step(3 * chunk + t):
                h = cell(x_t, h)
        loss = (h ** 2).sum()
        if chunk == 0:
            first = viz.draw_graph(loss).source
            loss.backward()
            h = h.detach()
    assert "initial state = 0" in first
    src = viz.draw_graph(loss).source
    assert "detached state" in src and "gradient stops here" in src
    assert re.findall(r'label="t = (\d+)"', src) == ["3", "4", "5"]
    tr = trace(loss)
    (cut,) = [n for n in tr.nodes.values() if n.kind == "cut"]
    (e,) = [e for e in tr.edges if e.src == cut.id]
    assert tr.nodes[e.dst].step == 3 and e.kind == "cut"
    loss.backward()
    # after backward the saved state is freed: the drawing keeps what it saw before
    assert viz.draw_graph(loss).source == src
    assert "gradient stops" not in viz.draw_graph(loss, show_cut=False).source
    # never drawn before backward: a neutral box, not a cut
    _, _, fresh = unroll(T=3, h0=tg.randn(2, 4))
    fresh.backward()
    after = viz.draw_graph(fresh).source
    assert "state given without gradient" in after and "gradient stops" not in after


def test_initial_state_looks_the_same_before_and_after_backward():
    lstm = nn.LSTM(3, 4)
    out, _ = lstm(tg.randn(4, 2, 3))
    loss = out[-1].sum()
    before = viz.draw_graph(loss, steps="all").source
    loss.backward()
    after = viz.draw_graph(loss, steps="all").source
    assert before == after
    assert "initial state = 0" in after and "octagon" not in after and "gradient stops" not in after


def test_state_that_requires_grad_is_not_a_cut():
    h0 = tg.zeros(2, 4, requires_grad=True)
    h0.name = "h0"
    _, _, loss = unroll(T=3, h0=h0)
    src = viz.draw_graph(loss).source
    assert "gradient stops" not in src and "initial state" not in src
    assert len(node_ids(src, "h0\\n")) == 1


def test_names_values_and_saved_shapes():
    cell, hs, loss = unroll(T=2, B=1, H=2)
    src = viz.draw_graph(loss, model=cell, names={hs[0]: "h_0"}, show_values=True,
                         show_saved=True).source
    assert "h_0\\ntanh" in src
    b = cell.b.numpy()
    assert np.array2string(b, precision=3, separator=", ", suppress_small=True) in src
    assert "saves (1, 2)" in src


def test_options_are_checked():
    _, _, loss = unroll(T=2)
    with pytest.raises(ValueError, match="cluster"):
        viz.draw_graph(loss, cluster="steps")
    with pytest.raises(TypeError, match="Tensor"):
        viz.draw_graph(loss, 3)
    with pytest.raises(ValueError, match="at least one tensor"):
        viz.draw_graph()
    with pytest.raises(ValueError, match="collapse"):
        viz.draw_graph(loss, collapse=-1)
    assert "subgraph" not in viz.draw_graph(loss, cluster=None).source


def test_returns_a_graphviz_digraph_and_time_step_is_scope():
    import graphviz

    _, _, loss = unroll(T=2)
    g = viz.draw_graph(loss)
    assert isinstance(g, graphviz.Digraph)
    with viz.time_step(7):
        y = tg.ones(2, requires_grad=True) * 2
    assert y.creator.tags[-1] == ("step", 7)
    assert viz.record_grads is tg.record_grads


def test_draw_on_every_device(device):
    rnn = nn.RNN(3, 4).to(device)
    out, _ = rnn(tg.randn(3, 2, 3, device=device))
    loss = out.sum()
    before = viz.draw_graph(loss, model={"rnn": rnn}, show_memory=True, show_values=True).source
    assert "saved for backward: 32 B" in before and "initial state = 0" in before
    with tg.record_grads():
        loss.backward()
    src = viz.draw_graph(loss, model={"rnn": rnn}, show_grads=True, collapse=1).source
    assert f"grad norm {np.linalg.norm(rnn.weight_hh_l0.grad.numpy()):.2e}" in src
