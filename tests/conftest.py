"""Shared fixtures: `device` runs a test on every available backend (CUDA skipped with a reason)."""
import numpy as np
import pytest

import tinygrad_rnn as tg

try:  # Tests use small arrays: one BLAS thread is as fast, and a multi-threaded OpenBLAS slows down
    # by 10-100x when the machine's cores are busy with other work (threads wait for each other).
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")
except ImportError:  # threadpoolctl comes with the dev extra (via scikit-learn)
    pass

DEVICES = ["cpu", "cuda"]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda" and not tg.cuda_available():
        pytest.skip("CUDA not available: install cupy-cuda12x/13x and run on a machine with a GPU")
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    tg.manual_seed(0)
    np.random.seed(0)
    tg.backend._pending.checks.clear()  # deferred GPU checks left by an earlier test's error
    yield


def to_np(x):
    return x.numpy() if isinstance(x, tg.Tensor) else np.asarray(x)
