"""The benchmark runs end to end in its quick mode (no timing assertions: timings are not tests)."""
import json

import numpy as np
import pytest

from tinygrad_rnn.bench.__main__ import main
from tinygrad_rnn.bench.reference import GATES, STEPS


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_reference_bptt_matches_finite_differences(cell):
    """The hand-written reference is itself checked, independently of the library."""
    rng = np.random.default_rng(0)
    T, B, D, H = 3, 2, 3, 4
    G = GATES[cell]
    p = {"weight_ih": rng.standard_normal((G * H, D)) * 0.5, "weight_hh": rng.standard_normal((G * H, H)) * 0.5,
         "bias_ih": rng.standard_normal(G * H) * 0.5, "bias_hh": rng.standard_normal(G * H) * 0.5}
    x = rng.standard_normal((T, B, D))
    _, grads = STEPS[cell](x, p)
    eps = 1e-6
    for name, w in p.items():
        flat = w.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            lp, _ = STEPS[cell](x, p)
            flat[j] = orig - eps
            lm, _ = STEPS[cell](x, p)
            flat[j] = orig
            assert abs((lp - lm) / (2 * eps) - grads[name].reshape(-1)[j]) < 1e-6


def test_quick_benchmark_runs(capsys):
    assert main(["--config", "quick", "--cell", "lstm,gru,rnn", "--reps", "1", "--json", "--no-torch"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [s["cell"] for s in res["steps"]] == ["lstm", "gru", "rnn"]
    for s in res["steps"]:
        assert s["grad_rel_err"] < 1e-3  # checked against the hand-written BPTT before timing
        assert set(s["times_s"]) == {"tinygrad_rnn", "numpy BPTT"}
        assert all(t > 0 for t in s["times_s"].values()) and s["floor_s"] > 0
    assert res["per_op_us"]["tinygrad_rnn"] > 0


def test_table_output(capsys):
    main(["--config", "quick", "--reps", "1", "--no-torch", "--skip-extras", "--markdown"])
    out = capsys.readouterr().out
    assert "LSTM quick" in out and "numpy BPTT" in out and "matmul floor" in out
    assert "| lstm | quick (4, 12, 5, 6) |" in out
