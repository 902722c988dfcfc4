"""The math in the docs is checked numerically: each formula is read from the page itself,
evaluated with NumPy, and compared with the engine's gradients (float64); the formulas the pages used
to print are shown to be wrong; every number the pages quote about gradients is recomputed.

Formulas are read from docs/tutorial.md, docs/rnn.md and docs/visualization.md by a small
translator (`evaluate`) for the plain-text notation of docs/notation.md: `dL/da_{t+1} W_hh` is a
row vector times a matrix, `⊙` elementwise, `^T` a transpose, `diag(v)`, `tanh²(v)`, subscripts
are Python expressions in t, k, T. If a page's formula changes, the test evaluates the new one.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ==================================================================== the formula translator
_TOKEN = re.compile(r"""
    (?P<func>tanh²\(|tanh\(|diag\(|σ\()
  | (?P<sym>(?:d(?:L|ℓ(?:_\{[^}]*\}|_[A-Za-z0-9]+))/d)?[A-Za-zα]+(?:→|←)?(?:_\{[^}]*\}|_[A-Za-z0-9]+)?)
  | (?P<post>\^T|\^2|²)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<op>⊙|\+|-|\*)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<space>\s+)
""", re.VERBOSE)


def to_python(expr: str) -> str:
    """Translate a formula of the docs into a Python expression over S(name, sub), `@` and `*`."""
    out: list[str] = []
    prev = None  # kind of the previous non-space token
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read {expr[pos:]!r} in formula {expr!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "space":
            continue
        # juxtaposition of two operands is a matrix product
        if kind in ("func", "sym", "lp") and prev in ("sym", "rp", "post"):
            out.append("@")
        if kind == "func":
            out.append({"tanh²(": "tanh2(", "tanh(": "tanh(", "diag(": "diag(", "σ(": "sigmoid("}[text])
            kind = "lp"
        elif kind == "sym":
            name, _, sub = text.partition("_") if not text.startswith("d") or "/" not in text \
                else _split_grad(text)
            sub = sub[1:-1] if sub.startswith("{") else sub
            out.append(f"S({name!r}, {sub!r})")
        elif kind == "post":
            out.append(".T" if text == "^T" else "**2")
        elif kind == "op":
            out.append("*" if text in ("⊙", "*") else text)
        elif kind == "num":
            out.append(text)
        else:
            out.append(text)
        prev = kind
    return " ".join(out)


def _split_grad(text: str) -> tuple[str, str, str]:
    """'dL/da_{t+1}' -> ('dL/da', '_', 't+1'); 'dℓ_t/dh_t' -> ('dℓ_t/dh', '_', 't')."""
    head, _, var = text.rpartition("/d")
    base, _, sub = var.partition("_")
    return f"{head}/d{base}", "_", sub


def evaluate(expr: str, lookup, **index) -> np.ndarray:
    """Evaluate a doc formula: lookup(name, i) gives the value of symbol `name` with subscript i
    (an int for time subscripts, the raw text for others such as 'hh')."""
    def S(name: str, sub: str):
        try:
            i = eval(sub, {}, dict(index))  # noqa: S307 - subscripts like t+1, T-1, k
        except Exception:
            i = sub
        return lookup(name, i)

    def diag(v):
        v = np.asarray(v)
        assert v.ndim == 1 or v.shape[0] == 1, "diag() is written for one sequence"
        return np.diag(v.ravel())

    env = {"S": S, "tanh": np.tanh, "tanh2": lambda v: np.tanh(v) ** 2, "diag": diag,
           "sigmoid": sigmoid}
    return eval(to_python(expr), env)  # noqa: S307 - our own docs


def formula(text: str, lhs: str) -> str:
    """The right-hand side of the line `lhs = ...` in a plain-text formula block of a page
    (comments in parentheses at the end of the line, after two spaces, are dropped)."""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(lhs + " ="):
            rhs = s[len(lhs) + 2:].strip()
            return re.split(r"\s{3,}\(", rhs)[0].strip()
    raise AssertionError(f"no line `{lhs} = ...` in the page")


def test_translator():
    assert to_python("dL/da_{t+1} W_hh") == "S('dL/da', 't+1') @ S('W', 'hh')"
    assert to_python("(dL/da_t)^T h_{t-1}") == "( S('dL/da', 't') ) .T @ S('h', 't-1')"
    assert to_python("f_t ⊙ dL/dc_t") == "S('f', 't') * S('dL/dc', 't')"
    assert to_python("diag(1 - h_k^2) W_hh") == "diag( 1 - S('h', 'k') **2 ) @ S('W', 'hh')"
    assert to_python("dℓ_t/dh_t") == "S('dℓ_t/dh', 't')"
    assert evaluate("a_t W_hh^T", lambda n, i: {"a": np.ones((1, 2)), "W": np.eye(2) * 3}[n], t=0).tolist() == [[3, 3]]


# ============================================================================== RNN: section 5
def rnn_run(T=5, B=3, D=3, H=4, seed=0):
    """A tanh RNN written with the engine, with the per-step tensors kept: x_t, a_t, h_t, a loss
    term ℓ_t = <v_t, h_t> at every step (so dℓ_t/dh_t = v_t)."""
    rng = np.random.default_rng(seed)
    x, v = rng.normal(size=(T, B, D)), rng.normal(size=(T, B, H))
    W_ih, W_hh, b = rng.normal(0, 0.6, (H, D)), rng.normal(0, 0.6, (H, H)), rng.normal(0, 0.1, H)
    Wt = tg.Tensor(W_hh, requires_grad=True)
    h = tg.zeros(B, H, dtype=tg.float64)
    a_s, h_s, terms = [], [], []
    for t in range(T):
        a = tg.Tensor(x[t]) @ tg.Tensor(W_ih).T + h @ Wt.T + tg.Tensor(b)
        h = a.tanh()
        a_s.append(a)
        h_s.append(h)
        terms.append((h * tg.Tensor(v[t])).sum())
    L = terms[0]
    for term in terms[1:]:
        L = L + term
    return dict(x=x, v=v, W_ih=W_ih, W_hh=W_hh, b=b, Wt=Wt, a=a_s, h=h_s, terms=terms, L=L, T=T)


def test_forward_formula_is_the_librarys_rnn():
    """tutorial.md's `a_t = x_t W_ih^T + h_{t-1} W_hh^T + b` with W_hh = weight_hh (as stored)."""
    rhs = re.search(r"`a_t = ([^`]+)`", page("tutorial.md")).group(1)
    tg.manual_seed(0)
    cell = nn.RNNCell(3, 4).double()
    x = np.random.default_rng(1).normal(size=(5, 2, 3))
    h, hs = None, []
    for t in range(5):
        h = cell(tg.Tensor(x[t]), h)
        hs.append(h.numpy())
    vals = {"W": {"ih": cell.weight_ih.numpy(), "hh": cell.weight_hh.numpy()},
            "b": cell.bias_ih.numpy() + cell.bias_hh.numpy()}
    for t in range(5):
        def lookup(n, i):
            if n == "x":
                return x[i]
            if n == "h":
                return hs[i] if i >= 0 else np.zeros((2, 4))
            return vals[n][i] if n == "W" else vals[n]
        np.testing.assert_allclose(np.tanh(evaluate(rhs, lookup, t=t)), hs[t], atol=1e-12)


def _rnn_backward_by_formulas(run, rec: str, act: str) -> tuple[list, list]:
    """dL/dh_t and dL/da_t for every t from the page's two formulas, backwards in time."""
    T = run["T"]
    hn = [h.numpy() for h in run["h"]]
    dh, da = [None] * T, [None] * (T + 1)
    da[T] = np.zeros_like(hn[0])

    def lookup(n, i):
        if n == "W":
            return {"hh": run["W_hh"], "ih": run["W_ih"]}[i]
        if n == "dℓ_t/dh":
            return run["v"][i]
        if n == "dL/da":
            return da[i]
        if n == "dL/dh":
            return dh[i]
        if n == "h":
            return hn[i]
        raise KeyError(n)

    for t in reversed(range(T)):
        dh[t] = evaluate(rec, lookup, t=t)
        da[t] = evaluate(act, lookup, t=t)
    return dh, da[:T]


def test_tutorial_bptt_recursion_equals_autodiff_and_the_old_one_did_not():
    text = page("tutorial.md")
    rec = formula(text, "dL/dh_t")
    act = formula(text, "dL/da_t")
    run = rnn_run()
    auto = [g.numpy() for g in tg.grad(run["L"], run["h"], retain_graph=True)]
    dh, da = _rnn_backward_by_formulas(run, rec, act)
    for t in range(run["T"]):
        np.testing.assert_allclose(dh[t], auto[t], atol=1e-12)
    # the recursion the page printed before, `dL/da_{t+1} W_hh^T` under this forward: wrong
    old, _ = _rnn_backward_by_formulas(run, "dℓ_t/dh_t + dL/da_{t+1} W_hh^T", act)
    assert max(np.abs(o - a).max() for o, a in zip(old, auto)) > 0.05


def test_old_tutorial_convention_was_inconsistent():
    """The old page wrote the forward as `h_{t-1} W_hh` and the recursion as `dL/da_{t+1} W_hh`:
    with the forward as written, autodiff needs W_hh^T (the issue measured up to 0.56 off)."""
    rng = np.random.default_rng(0)
    T, B, H = 5, 2, 4
    M = tg.Tensor(rng.normal(0, 0.5, (H, H)), requires_grad=True)   # the old `W_hh`, used as h M
    x = rng.normal(size=(T, B, H))
    h, hs = tg.zeros(B, H, dtype=tg.float64), []
    for t in range(T):
        h = (tg.Tensor(x[t]) + h @ M).tanh()
        hs.append(h)
    auto = [g.numpy() for g in tg.grad(h.sum(), hs)]
    hn, Mn = [h.numpy() for h in hs], M.numpy()
    for transpose, ok in ((False, False), (True, True)):
        g, da_next, err = None, np.zeros((B, H)), 0.0
        for t in reversed(range(T)):
            g = (np.ones((B, H)) if t == T - 1 else 0) + da_next @ (Mn.T if transpose else Mn)
            err = max(err, np.abs(g - auto[t]).max())
            da_next = g * (1 - hn[t] ** 2)
        assert (err < 1e-12) == ok, (transpose, err)


def test_two_level_sum_over_loss_terms_and_uses():
    """dL/dW_hh = Σ_t dℓ_t/dW_hh (outer, notes 001's E = Σ E_t) with dℓ_t/dW_hh = Σ_{k ≤ t}
    (dℓ_t/da_k)^T h_{k-1} (inner, one term per use of W_hh); and the swapped single sum."""
    text = page("tutorial.md")
    outer = formula(text, "dL/dW_hh")
    assert outer == "Σ_t dℓ_t/dW_hh"
    inner = formula(text, "dℓ_t/dW_hh")
    m = re.fullmatch(r"Σ_\{k ≤ t\} (.+)", inner)
    assert m, inner
    summand = m.group(1)
    run = rnn_run()
    T = run["T"]
    hn = [h.numpy() for h in run["h"]]
    per_term = []
    for t in range(T):
        grads = tg.grad(run["terms"][t], run["a"][:t + 1] + [run["Wt"]], retain_graph=True)
        dl_da = [g.numpy() for g in grads[:t + 1]]

        def lookup(n, i, dl_da=dl_da):
            if n == "dℓ_t/da":
                return dl_da[i]
            if n == "h":
                return hn[i] if i >= 0 else np.zeros_like(hn[0])
            raise KeyError(n)
        inner_sum = sum(evaluate(summand, lookup, t=t, k=k) for k in range(t + 1))
        np.testing.assert_allclose(inner_sum, grads[-1].numpy(), atol=1e-12)
        per_term.append(inner_sum)
    (dW,) = tg.grad(run["L"], [run["Wt"]], retain_graph=True)
    np.testing.assert_allclose(sum(per_term), dW.numpy(), atol=1e-12)   # the outer sum
    # BPTT's single sum over uses, Σ_t (dL/da_t)^T h_{t-1}, from the page's third line
    single = [line.strip() for line in text.splitlines() if line.strip().startswith("dL/dW_hh = Σ_t (")]
    assert single, "the single-sum line `dL/dW_hh = Σ_t (dL/da_t)^T h_{t-1}` is missing"
    summand = re.match(r"dL/dW_hh = Σ_t (.+?)\s{3,}", single[0]).group(1)
    _, da = _rnn_backward_by_formulas(run, formula(text, "dL/dh_t"), formula(text, "dL/da_t"))
    total = sum(evaluate(summand, lambda n, i: da[i] if n == "dL/da" else
                         (hn[i] if i >= 0 else np.zeros_like(hn[0])), t=t) for t in range(T))
    np.testing.assert_allclose(total, dW.numpy(), atol=1e-12)


# ============================================================================== RNN: section 7
def test_jacobian_product_and_bound():
    text = page("tutorial.md")
    line = next(s for s in text.splitlines() if s.startswith("dL/dh_t = dL/dh_{T-1} J_{T-1}"))
    jac = re.search(r"J_k = ∂h_k/∂h_\{k-1\} = (.+)$", line).group(1).strip()
    rng = np.random.default_rng(3)
    T, H = 8, 5
    W_ih, W_hh = rng.normal(0, 0.5, (H, 2)), rng.normal(0, 0.7, (H, H))
    x = rng.normal(size=(T, 1, 2))
    Wt = tg.Tensor(W_hh)
    h, hs = tg.Tensor(rng.normal(size=(1, H)) * 0.1, requires_grad=True), []
    for t in range(T):
        h = (tg.Tensor(x[t]) @ tg.Tensor(W_ih).T + h @ Wt.T).tanh()
        hs.append(h)
    v = rng.normal(size=(1, H))
    L = (hs[-1] * tg.Tensor(v)).sum()                         # a loss on the last step only
    auto = [g.numpy() for g in tg.grad(L, hs, retain_graph=True)]
    hn = [h.numpy() for h in hs]

    def lookup(n, i):
        return {"h": lambda: hn[i], "W": lambda: W_hh}[n]()

    for t in range(T):
        g = v.copy()                                          # dL/dh_{T-1}
        for k in range(T - 1, t, -1):                         # J_{T-1} ... J_{t+1}
            g = g @ evaluate(jac, lookup, k=k)
        np.testing.assert_allclose(g, auto[t], atol=1e-12)
        bound = np.linalg.norm(v) * np.prod([np.linalg.norm(W_hh, 2) * np.abs(1 - hn[k] ** 2).max()
                                             for k in range(t + 1, T)])
        assert np.linalg.norm(auto[t]) <= bound + 1e-12
    # each J_k is the engine's Jacobian of one step
    k = 4
    rows = [tg.grad(hs[k][0, j], hs[k - 1], retain_graph=True)[0].numpy()[0] for j in range(H)]
    np.testing.assert_allclose(np.array(rows), evaluate(jac, lookup, k=k), atol=1e-12)
    # the notes' column form, one factor per step: W_hh^T diag(1 - h_{t+1}^2)
    col = re.search(r"∂L/∂h_t = (W_hh\^T diag\(1 - h_\{t\+1\}\^2\)) \.\.\.", text).group(1)
    g = v.T
    for k in range(T - 1, 0, -1):
        g = evaluate(col, lookup, t=k - 1) @ g
    np.testing.assert_allclose(g.T, auto[0], atol=1e-12)
    # the old product `diag(1 - h^2) W_hh` under the old forward `h_{t-1} W_hh` (W_hh = our W_hh^T)
    g = v.copy()
    for k in range(T - 1, 0, -1):
        g = g @ (np.diag(1 - hn[k].ravel() ** 2) @ W_hh.T)
    assert np.abs(g - auto[0]).max() > 1e-3


# ============================================================================= LSTM: section 8
def numpy_lstm(x: np.ndarray, Wi: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> list[dict]:
    """The LSTM forward in NumPy (gate order i, f, g, o, from h_{-1} = c_{-1} = 0): per step a
    dict of i, f, g, o, c, h."""
    H = Wh.shape[1]
    h, c, steps = np.zeros((x.shape[1], H)), np.zeros((x.shape[1], H)), []
    for x_t in x:
        a = x_t @ Wi.T + h @ Wh.T + b
        i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        steps.append(dict(i=i, f=f, g=g, o=o, c=c, h=h))
    return steps


def lstm_run(T=6, B=2, D=3, H=4, seed=0):
    tg.manual_seed(seed)
    cell = nn.LSTMCell(D, H).double()
    x = np.random.default_rng(seed).normal(size=(T, B, D))
    v = np.random.default_rng(seed + 1).normal(size=(T, B, H))
    h = c = tg.zeros(B, H, dtype=tg.float64)
    hs, cs = [], []
    for t in range(T):
        h, c = cell(tg.Tensor(x[t]), (h, c))
        hs.append(h)
        cs.append(c)
    L = (hs[0] * tg.Tensor(v[0])).sum()
    for t in range(1, T):
        L = L + (hs[t] * tg.Tensor(v[t])).sum()
    auto = [g.numpy() for g in tg.grad(L, hs + cs)]
    Wi, Wh = cell.weight_ih.numpy(), cell.weight_hh.numpy()
    b = cell.bias_ih.numpy() + cell.bias_hh.numpy()
    gates = numpy_lstm(x, Wi, Wh, b)
    for t in range(T):
        np.testing.assert_allclose(gates[t]["c"], cs[t].numpy(), atol=1e-12)
    return dict(T=T, H=H, v=v, Wh=Wh, gates=gates, dh=auto[:T], dc=auto[T:])


def _lstm_lookup(run, dc=None):
    G, T = run["gates"], run["T"]
    dc = dc if dc is not None else run["dc"]

    def lookup(n, i):
        if n in ("i", "f", "g", "o", "c", "h"):
            return G[i][n] if i >= 0 else np.zeros_like(G[0]["c"])
        if n == "dL/dc":
            return dc[i] if i < T else np.zeros_like(dc[0])
        if n == "dL/dh":
            return run["dh"][i]
        if n == "dL/da":
            return run["da"][i]
        if n == "W":
            return run["Wh"]
        if n.startswith("dℓ_") and n.endswith("/dh"):
            return run["v"][i]
        raise KeyError(n)
    return lookup


LSTM_DC = "f_t ⊙ dL/dc_t + dL/dh_{t-1} ⊙ o_{t-1} ⊙ (1 - tanh²(c_{t-1}))"


@pytest.mark.parametrize("name", ["tutorial.md", "rnn.md", "visualization.md"])
def test_lstm_cell_recursion_equals_autodiff(name):
    text = page(name)
    assert f"dL/dc_{{t-1}} = {LSTM_DC}" in text
    run = lstm_run()
    lookup = _lstm_lookup(run)
    for t in range(1, run["T"]):
        np.testing.assert_allclose(evaluate(LSTM_DC, lookup, t=t), run["dc"][t - 1], atol=1e-12)
    # the claim visualization.md used to print, `dc_{t-1} = f_t * dc_t`, misses the inflow
    t = 2
    assert np.abs(evaluate("f_t ⊙ dL/dc_t", lookup, t=t) - run["dc"][t - 1]).max() > 1e-2


def test_lstm_full_backward_of_the_tutorial():
    """The tutorial's dL/dh_{t-1} line and its four blocks of dL/da_t, evaluated from the page."""
    text = page("tutorial.md")
    dh_line = formula(text, "dL/dh_{t-1}")
    m = re.search(r"dL/da_t = \[(.+?)\]", text, re.S)
    blocks = [b.strip() for b in re.sub(r"\s+", " ", m.group(1)).split(",")]
    assert len(blocks) == 4
    run = lstm_run()
    lookup = _lstm_lookup(run)
    T, H = run["T"], run["H"]
    run["da"] = [np.concatenate([evaluate(b, lookup, t=t) for b in blocks], axis=1) for t in range(T)]
    for t in range(1, T):
        np.testing.assert_allclose(evaluate(dh_line, lookup, t=t), run["dh"][t - 1], atol=1e-12)
    assert run["da"][0].shape[1] == 4 * H


def _block_after(text: str, marker: str, lang: str) -> tuple[str, int]:
    """The first ```lang block after `marker` in the page, and where it ends."""
    start = text.index(marker)
    m = re.compile(rf"^```{lang}\n(.*?)^```", re.S | re.M).search(text, start)
    return m.group(1), m.end()


def _run_python(code: str, tmp_path: Path) -> str:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_lstm_cell_path_numbers_quoted_in_the_tutorial(tmp_path):
    """The section-8 block prints exactly the text block under it, and the prose quotes it."""
    text = page("tutorial.md")
    code, end = _block_after(text, "The **original LSTM**", "python")
    assert "def run(forget" in code
    printed, end = _text_after(text, end)
    out = _run_python(code, tmp_path)
    assert out.strip() == printed.strip()
    rows = {line.split()[0]: line.split() for line in printed.strip().splitlines()[1:]}
    bias3, none, default = rows["bias"], rows["none"], rows["default"]
    prose = re.sub(r"\s+", " ", text[end:end + 1500])
    assert f"(mean `f = {bias3[2]}`)" in prose
    assert f"keeps {bias3[3]} of the" in prose and f"is {bias3[5]}" in prose
    assert f"({none[4]} here)" in prose and none[2] == "1"
    assert f"({default[2]} and {default[4]})" in prose


def _text_after(text: str, pos: int) -> tuple[str, int]:
    m = re.compile(r"^```text\n(.*?)^```", re.S | re.M).search(text, pos)
    assert m and text[pos:m.start()].strip() in ("", "prints"), "the printed output must follow the block"
    return m.group(1), m.end()


def printed_as(value: float, shown: str) -> bool:
    """`value` rounds to `shown` at the number of significant digits `shown` has."""
    digits = len(re.sub(r"^0\.0*|e.*$|\.", "", shown))
    return float(f"{value:.{digits}g}") == float(shown)


_POWER = re.compile(r"`(σ\(\d+\)|\d+(?:\.\d+)?)\^(\d+) ≈ ([0-9.]+(?:e-?\d+)?)`")


@pytest.mark.parametrize("name", ["tutorial.md", "rnn.md", "visualization.md"])
def test_quoted_powers_of_the_forget_gate(name):
    """Every `0.95^100 ≈ 0.006`-like figure in the page, recomputed to the printed precision."""
    found = _POWER.findall(page(name))
    assert found, f"{name} quotes no forget-gate product"
    for base, n, shown in found:
        value = sigmoid(float(base[2:-1])) if base.startswith("σ") else float(base)
        exact = value ** int(n)
        assert printed_as(exact, shown), (base, n, exact, shown)


def test_the_table_model_numbers(tmp_path):
    """The vanishing_gradients table's LSTM rows (quoted by tutorial.md and rnn.md) and the
    forget gates of its bias-3 model that the tutorial quotes: geometric mean and mean product."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import vanishing_gradients as vg
    finally:
        sys.path.remove(str(ROOT / "examples"))
    tg.manual_seed(0)
    flows, models = vg.measure(100, 32, "cpu", 1.0, show_progress=False)
    cell_ratio = {k: f.cell_grad_norms[0] / f.cell_grad_norms[-1] for k, f in flows.items()
                  if f.cell_grad_norms is not None}
    tut, rnn_md = page("tutorial.md"), re.sub(r"\s+", " ", page("rnn.md"))
    for label in ("LSTM, default init", "LSTM, forget-gate bias 3"):
        row = re.search(rf"^\| {re.escape(label)} \| (\S+) \| (\S+) \| (\S+) \|$", tut, re.M)
        ratio, factor = vg.decay(flows[label])
        for value, shown in zip((ratio, factor, cell_ratio[label]), row.groups()):
            assert printed_as(value, shown), (label, value, shown)
    quoted = re.search(r"over 100 steps is (\S+), \[tutorial section 7\]", rnn_md).group(1)
    assert printed_as(cell_ratio["LSTM, default init"], quoted)
    tg.manual_seed(0)
    x = tg.randn(100, 8, 4).numpy().astype(np.float64)          # measure()'s input: its first draw
    m = models["LSTM, forget-gate bias 3"]
    Wi, Wh = m.weight_ih_l0.numpy().astype(np.float64), m.weight_hh_l0.numpy().astype(np.float64)
    b = (m.bias_ih_l0.numpy() + m.bias_hh_l0.numpy()).astype(np.float64)
    fs = np.array([step["f"] for step in numpy_lstm(x, Wi, Wh, b)][1:])   # f_1 ... f_{T-1}
    text = re.sub(r"\s+", " ", tut)
    assert f"forget gates average {np.exp(np.log(fs).mean()):.3f} (geometric mean)" in text
    assert f"multiply to {fs.prod(0).mean():.3f} on average" in text


# ================================================================== deep and bidirectional RNNs
RNN_MD_BACKWARD = [
    "dL/dh→_t = [dL/du_t of layer l+1]_{:H} + dL/da→_{t+1} W_hh",
    "dL/dh←_t = [dL/du_t of layer l+1]_{H:} + dL/da←_{t-1} W'_hh",
    "dL/da→_t = dL/dh→_t ⊙ (1 - h→_t^2),   dL/da←_t = dL/dh←_t ⊙ (1 - h←_t^2)",
    "dL/du_t = dL/da→_t W_ih + dL/da←_t W'_ih",
    "dL/dW_hh = Σ_t (dL/da→_t)^T h→_{t-1},   dL/dW'_hh = Σ_t (dL/da←_t)^T h←_{t+1},   dL/dW_ih = Σ_t (dL/da→_t)^T u_t",
]


def test_deep_bidirectional_backward_equations_equal_autodiff():
    """rnn.md's backward equations, implemented line by line in NumPy, against the engine on
    nn.RNN(num_layers=2, bidirectional=True) with L = Σ_t <v_t, out_t>."""
    text = page("rnn.md")
    for line in RNN_MD_BACKWARD:
        assert line in text, line
    T, B, D, H, Lyr = 5, 2, 3, 4, 2
    tg.manual_seed(0)
    rnn = nn.RNN(D, H, num_layers=Lyr, bidirectional=True).double()
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.normal(size=(T, B, D)), requires_grad=True)
    v = rng.normal(size=(T, B, 2 * H))
    out, _ = rnn(x)
    (out * tg.Tensor(v)).sum().backward()
    P = {n: p.numpy() for n, p in rnn.named_parameters()}

    # forward, per the page's equations
    u = [x.numpy()[t] for t in range(T)]
    states = []
    for l in range(Lyr):
        par = {d: (P[f"weight_ih_l{l}{s}"], P[f"weight_hh_l{l}{s}"], P[f"bias_ih_l{l}{s}"] + P[f"bias_hh_l{l}{s}"])
               for d, s in (("f", ""), ("r", "_reverse"))}
        hf, hr = [None] * T, [None] * T
        prev = np.zeros((B, H))
        for t in range(T):
            Wi, Wh, b = par["f"]
            prev = hf[t] = np.tanh(u[t] @ Wi.T + prev @ Wh.T + b)
        prev = np.zeros((B, H))
        for t in reversed(range(T)):
            Wi, Wh, b = par["r"]
            prev = hr[t] = np.tanh(u[t] @ Wi.T + prev @ Wh.T + b)
        states.append((u, hf, hr, par))
        u = [np.concatenate([hf[t], hr[t]], 1) for t in range(T)]
    np.testing.assert_allclose(np.stack(u), out.numpy(), atol=1e-12)

    # backward, line by line
    du_above = [v[t] for t in range(T)]                       # dL/dout_t for the top layer
    grads = {}
    for l in reversed(range(Lyr)):
        u, hf, hr, par = states[l]
        daf, dar = [None] * (T + 1), [None] * (T + 1)
        daf[T] = np.zeros((B, H))
        for t in reversed(range(T)):                          # forward direction: back in time
            dhf = du_above[t][:, :H] + daf[t + 1] @ par["f"][1]
            daf[t] = dhf * (1 - hf[t] ** 2)
        dar_prev = np.zeros((B, H))
        for t in range(T):                                    # reverse direction: forward in time
            dhr = du_above[t][:, H:] + dar_prev @ par["r"][1]
            dar[t] = dar_prev = dhr * (1 - hr[t] ** 2)
        du_above = [daf[t] @ par["f"][0] + dar[t] @ par["r"][0] for t in range(T)]
        zero = np.zeros((B, H))
        grads[f"weight_hh_l{l}"] = sum(daf[t].T @ (hf[t - 1] if t > 0 else zero) for t in range(T))
        grads[f"weight_hh_l{l}_reverse"] = sum(dar[t].T @ (hr[t + 1] if t < T - 1 else zero) for t in range(T))
        grads[f"weight_ih_l{l}"] = sum(daf[t].T @ u[t] for t in range(T))
        grads[f"weight_ih_l{l}_reverse"] = sum(dar[t].T @ u[t] for t in range(T))
        grads[f"bias_ih_l{l}"] = sum(daf[t].sum(0) for t in range(T))
        grads[f"bias_ih_l{l}_reverse"] = sum(dar[t].sum(0) for t in range(T))
    for name, g in grads.items():
        np.testing.assert_allclose(dict(rnn.named_parameters())[name].grad.numpy(), g, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(x.grad.numpy(), np.stack(du_above), atol=1e-12)


def test_deep_bidirectional_dependency_block_prints_what_the_page_says(tmp_path):
    text = page("rnn.md")
    code, end = _block_after(text, "even one direction depends on every input", "python")
    printed, _ = _text_after(text, end)
    assert _run_python(code, tmp_path).strip() == printed.strip()


def test_number_of_paths_through_a_deep_rnn():
    """rnn.md: the gradient of ℓ_t reaches x_j (j ≤ t) of an L-layer one-direction RNN along
    C(t - j + L - 1, L - 1) paths. Count them in the grid of states (layer, step)."""
    assert "`C(t - j + L - 1, L - 1)`" in page("rnn.md")
    for L in (1, 2, 3, 4):
        for gap in range(6):
            # paths from (layer 0, step j) to (layer L-1, step j + gap): right along a layer, or up
            count = np.zeros((L, gap + 1), dtype=np.int64)
            count[0, 0] = 1
            for l in range(L):
                for s in range(gap + 1):
                    if l or s:
                        count[l, s] = (count[l - 1, s] if l else 0) + (count[l, s - 1] if s else 0)
            assert count[L - 1, gap] == math.comb(gap + L - 1, L - 1)


# ================================================================================= notation
def test_notation_weight_hh_is_W_hh_not_its_transpose():
    """docs/notation.md: `weight_hh_l0` is W_hh (G·H, H), used as h_{t-1} W_hh^T, as in PyTorch."""
    text = page("notation.md")
    assert "`weight_hh_l0` **is** `W_hh`, not its transpose" in text
    tg.manual_seed(0)
    lstm = nn.LSTM(3, 4).double()
    assert lstm.weight_hh_l0.shape == (16, 4) and lstm.weight_ih_l0.shape == (16, 3)
    x = np.random.default_rng(0).normal(size=(1, 2, 3))
    out, _ = lstm(tg.Tensor(x))
    a = x[0] @ lstm.weight_ih_l0.numpy().T + lstm.bias_ih_l0.numpy() + lstm.bias_hh_l0.numpy()
    i, g, o = sigmoid(a[:, :4]), np.tanh(a[:, 8:12]), sigmoid(a[:, 12:])
    np.testing.assert_allclose(out.numpy()[0], o * np.tanh(i * g), atol=1e-12)   # h_{-1} = c_{-1} = 0
    torch = pytest.importorskip("torch")
    ref = torch.nn.RNN(3, 4).double()
    ours = nn.RNN(3, 4).double()
    ours.load_state_dict({k: w.detach().numpy() for k, w in ref.state_dict().items()})
    xs = np.random.default_rng(1).normal(size=(3, 1, 3))
    h = np.zeros((1, 4))
    P = {k: w.detach().numpy() for k, w in ref.state_dict().items()}
    for t in range(3):
        h = np.tanh(xs[t] @ P["weight_ih_l0"].T + h @ P["weight_hh_l0"].T + P["bias_ih_l0"] + P["bias_hh_l0"])
    np.testing.assert_allclose(ours(tg.Tensor(xs))[0].numpy()[-1], h, atol=1e-12)


def test_notation_page_is_linked():
    assert "(docs/notation.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(notation.md)" in page("index.md")
