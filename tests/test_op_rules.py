"""The rules an op's author must follow, checked over every row of the op table (tests/test_ops.py).

The engine trusts two class flags of each Function (autograd.Function's docstring):
- `fresh_grads = True`: backward returns new arrays, no views of `gy`, of saved data or of each
  other, so the engine may sum later gradients into them in place. A wrong flag silently corrupts
  gradients, so it is checked here on the arrays a real backward returns.
- `broadcasts = False`: backward returns gradients of exactly each input's shape and dtype;
  `broadcasts = True`: of a shape the engine can sum back to the input's (and exactly the
  input's when the input is shaped like the output: the engine skips the check then).
And the layering rule: op code never reads or patches the engine's internals (the backward mode
reaches ops only through the Function helpers).
"""
import ast
import pathlib

import numpy as np
import pytest
from test_ops import CASES, _as_tuple, _inputs

import tinygrad_rnn as tg
from tinygrad_rnn import autograd, ops
from tinygrad_rnn.autograd import Function, OuterSum


def _spy(fns, calls):
    """Shadow each graph Function's backward (instance attribute) to keep what it got and returned."""
    for fn in fns:
        def backward(*gys, _fn=fn, _orig=fn.backward):
            saved = [t.data for t in _fn.saved] if _fn.saved else []
            keep = getattr(_fn, "keep", None)  # arrays a forward kept (masks)
            saved += list(keep) if isinstance(keep, tuple) else ([keep] if keep is not None else [])
            out = _fn.saved_out if _fn.save_output else None
            saved += list(out) if isinstance(out, tuple) else ([out] if out is not None else [])
            gxs = _orig(*gys)
            calls.append((_fn, gys, saved, _as_tuple(gxs)))
            return gxs
        fn.backward = backward


def _arrays(vals):
    return [v for v in vals if isinstance(v, np.ndarray)]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_backward_honours_fresh_grads_and_shape_flags(case):
    _, fn, _, shapes, gen = case[:5]
    _, xs = _inputs(shapes, gen, "cpu")
    outs = _as_tuple(fn(*xs))
    rng = np.random.default_rng(1)
    loss = sum(((o * tg.Tensor(rng.standard_normal(o.shape), dtype="float64")).sum()
                for o in outs if o.requires_grad), tg.Tensor(0.0, dtype="float64"))
    calls = []
    fns = autograd.iter_graph([o for o in outs if o.requires_grad])
    _spy(fns, calls)
    loss.backward()
    assert {id(c[0]) for c in calls} == {id(f) for f in fns}
    for f, gys, saved, gxs in calls:
        assert len(gxs) == len(f.next), f"{f.name}: backward must return one gradient per input"
        if f.fresh_grads:
            got = _arrays(gxs)
            for i, g in enumerate(got):
                for other in _arrays(gys) + saved:
                    assert not np.shares_memory(g, other), (
                        f"{f.name} declares fresh_grads=True but returns a view of its gradient "
                        f"input or of saved data")
                for h in got[i + 1:]:
                    assert not np.shares_memory(g, h), f"{f.name}: fresh gradients alias each other"
        if f.broadcasts:  # the engine reduces these with sum_to and casts them back
            for parent, g in zip(f.next, gxs):
                if parent is None or g is None:
                    continue
                node, idx = parent
                own = ((node.data.shape, node.data.dtype) if isinstance(node, tg.Tensor)
                       else node.out_meta[idx])
                g = g.value() if isinstance(g, OuterSum) else g
                assert np.broadcast_shapes(own[0], g.shape) == g.shape, (
                    f"{f.name}: gradient of shape {g.shape} cannot be summed to {own[0]}")
                if own == f.out_meta[0]:  # the engine skips the check when the records match
                    assert (g.shape, g.dtype) == own, (
                        f"{f.name}: an input shaped like the output must get a gradient shaped "
                        f"like it, got {g.shape} {g.dtype}")
        else:
            for parent, g in zip(f.next, gxs):
                if parent is None or g is None:
                    continue
                node, idx = parent
                shape, dtype = ((node.data.shape, node.data.dtype) if isinstance(node, tg.Tensor)
                                else node.out_meta[idx])
                if isinstance(g, OuterSum):
                    g = g.value()
                assert (g.shape, g.dtype) == (shape, dtype), (
                    f"{f.name} has broadcasts=False but returned a gradient of shape {g.shape} "
                    f"{g.dtype} for an input of shape {shape} {dtype}")


MULTI = [c for c in CASES if len(c[3]) > 1]


@pytest.mark.parametrize("case", MULTI, ids=[f"{c[0]}-{i}" for i, c in enumerate(MULTI)])
def test_mixed_dtype_inputs_get_gradients_of_their_own_dtype(case):
    """Input 0 float32, the others float64: forward promotes, and each leaf's gradient still comes
    back in its own dtype (the engine casts it back for broadcasts=True ops; a float32 weight must
    never get a float64 .grad)."""
    _, fn, _, shapes, gen = case[:5]
    _, xs = _inputs(shapes, gen, "cpu")
    xs[0] = tg.Tensor(xs[0].data, dtype="float32", requires_grad=True)
    outs = [o for o in _as_tuple(fn(*xs)) if o.requires_grad]
    sum((o.sum() for o in outs[1:]), outs[0].sum()).backward()
    for k, x in enumerate(xs):
        assert x.grad is not None and x.grad.dtype == x.dtype, (
            f"{case[0]}: input {k} is {x.dtype} but its gradient is {x.grad and x.grad.dtype}")
        assert x.grad.shape == x.shape


def test_every_fresh_grads_op_is_exercised_by_the_table():
    covered = {c[0] for c in CASES}
    fresh = {name for name, cls in ops.OPS.items() if cls.fresh_grads}
    assert fresh and fresh <= covered


def test_the_rule_check_catches_a_wrong_fresh_grads_flag():
    class Leaky(Function):  # returns gy itself but claims fresh arrays
        name = "leaky"
        fresh_grads = True

        def forward(self, x):
            return x * 1.0

        def backward(self, gy):
            return gy

    x = tg.Tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    y = Leaky()(x)
    calls = []
    _spy([y.creator], calls)
    y.backward(tg.Tensor([1.0, 1.0], dtype="float64"))
    (_, gys, _, gxs), = calls
    assert np.shares_memory(gxs[0], gys[0])  # what the table test above would reject


OPS_SRC = pathlib.Path(ops.__file__).read_text()


def test_ops_never_read_the_backward_mode_or_patch_the_engine():
    for name in ("_fast", "OuterSum", "_sum_to", "_state", "_STATE"):
        assert f"autograd.{name}" not in OPS_SRC, f"ops.py uses autograd.{name}"
    for node in ast.walk(ast.parse(OPS_SRC)):
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                assert not (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                            and t.value.id in ("autograd", "backend", "tensor")), \
                    f"ops.py:{node.lineno} assigns into another module"
