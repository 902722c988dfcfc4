"""nn.init: distributions (bounds, mean, std), orthogonality, identity, gains, in-place semantics,
dtype, reproducibility under manual_seed."""
import math

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn import init

from conftest import to_np


def big(*shape, dtype="float32", device="cpu"):
    return tg.zeros(*shape, dtype=dtype, device=device)


def test_uniform_bounds_mean_std(device):
    t = init.uniform_(big(300, 200, device=device), -2.0, 3.0)
    v = to_np(t)
    assert v.min() >= -2.0 and v.max() < 3.0
    np.testing.assert_allclose(v.mean(), 0.5, atol=0.02)
    np.testing.assert_allclose(v.std(), 5 / math.sqrt(12), rtol=0.01)


def test_normal_mean_std(device):
    v = to_np(init.normal_(big(300, 200, device=device), mean=1.5, std=0.5))
    np.testing.assert_allclose(v.mean(), 1.5, atol=0.005)
    np.testing.assert_allclose(v.std(), 0.5, rtol=0.01)


def test_constants():
    t = big(3, 2)
    assert init.ones_(t) is t and np.all(t.numpy() == 1)
    assert np.all(init.zeros_(t).numpy() == 0)
    assert np.all(init.constant_(t, 0.25).numpy() == 0.25)


def test_in_place_keeps_identity_dtype_and_array():
    p = nn.Parameter(tg.zeros(4, 5, dtype="float64"))
    arr = p.data
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.xavier_normal_,
               init.kaiming_uniform_, init.orthogonal_):
        assert fn(p) is p
        assert p.data is arr and p.dtype == np.float64
    q = init.normal_(tg.zeros(4, 5))
    assert q.dtype == np.float32


def test_xavier_uniform_and_normal():
    fan_in, fan_out = 200, 300
    a = math.sqrt(6 / (fan_in + fan_out))
    v = init.xavier_uniform_(big(fan_out, fan_in), gain=1.0).numpy()
    assert np.abs(v).max() <= a and np.abs(v).max() > 0.99 * a
    np.testing.assert_allclose(v.std(), a / math.sqrt(3), rtol=0.01)
    v = init.xavier_normal_(big(fan_out, fan_in), gain=2.0).numpy()
    np.testing.assert_allclose(v.std(), 2.0 * math.sqrt(2 / (fan_in + fan_out)), rtol=0.01)


def test_kaiming_uniform_bound_and_modes():
    v = init.kaiming_uniform_(big(300, 400), nonlinearity="relu").numpy()
    bound = math.sqrt(2) * math.sqrt(3 / 400)
    assert np.abs(v).max() <= bound and np.abs(v).max() > 0.99 * bound
    v = init.kaiming_uniform_(big(300, 400), mode="fan_out", nonlinearity="relu").numpy()
    assert np.abs(v).max() <= math.sqrt(2) * math.sqrt(3 / 300)
    v = init.kaiming_uniform_(big(300, 400), a=math.sqrt(5)).numpy()  # Linear's default
    assert np.abs(v).max() <= 1 / math.sqrt(400)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(big(2, 2), mode="fan_avg")


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("shape", [(6, 6), (8, 3), (3, 8), (4, 2, 3)])
def test_orthogonal_rows_or_columns_orthonormal(shape):
    gain = 1.5
    w = init.orthogonal_(tg.zeros(*shape, dtype="float64"), gain=gain).numpy().reshape(shape[0], -1)
    rows, cols = w.shape
    if rows >= cols:
        np.testing.assert_allclose(w.T @ w, gain ** 2 * np.eye(cols), atol=1e-12)
    else:
        np.testing.assert_allclose(w @ w.T, gain ** 2 * np.eye(rows), atol=1e-12)


def test_orthogonal_square_has_unit_singular_values_float32():
    w = init.orthogonal_(tg.zeros(16, 16)).numpy()
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), 1.0, atol=1e-5)


def test_identity():
    w = init.identity_(tg.zeros(3, 4), gain=0.5).numpy()
    np.testing.assert_array_equal(w, 0.5 * np.eye(3, 4))
    with pytest.raises(tg.ShapeError, match="2-D"):
        init.identity_(tg.zeros(3))


def test_fan_based_inits_need_two_dims():
    for fn in (init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.orthogonal_):
        with pytest.raises(tg.ShapeError, match=r"\(5,\)"):
            fn(tg.zeros(5))


@pytest.mark.parametrize("fn", [init.uniform_, init.normal_, init.xavier_uniform_,
                                init.kaiming_uniform_, init.orthogonal_])
def test_reproducible_under_manual_seed(fn):
    tg.manual_seed(123)
    a = fn(tg.zeros(5, 4)).numpy().copy()
    b = fn(tg.zeros(5, 4)).numpy().copy()
    tg.manual_seed(123)
    np.testing.assert_array_equal(fn(tg.zeros(5, 4)).numpy(), a)
    np.testing.assert_array_equal(fn(tg.zeros(5, 4)).numpy(), b)
    assert not np.array_equal(a, b)
