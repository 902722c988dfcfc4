"""tinygrad_rnn: a small autodiff library where recurrence is first-class.

Tensors on NumPy (CPU) or CuPy (GPU), reverse-mode autodiff written once for both, and RNN/LSTM/GRU
built from primitive ops so that backpropagation through time emerges from the unrolled graph.
"""
from __future__ import annotations

from . import backend
from .autograd import (detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad,
                       observe_backward, record_grads, scope, set_grad_enabled)
from .backend import cuda_available, manual_seed
from .creation import (arange, eye, from_dlpack, full, full_like, ones, ones_like, rand, randint, randn,
                       zeros, zeros_like)
from .errors import (AnomalyError, CheckpointError, DeviceError, DTypeError, GradError,
                     GraphFreedError, InplaceError, ShapeError, TinygradRNNError)
from . import optim
from .gradcheck import GradcheckError, gradcheck, max_grad_error
from .ops import (abs, addmm, amax, amin, argmax, argmin, cat, chunk, clamp, exp, log, matmul, maximum,
                  mean, minimum, relu, sigmoid, split, sqrt, stack, sum, tanh, unbind, where)
from .ops import (ceil, cos, cumsum, elu, erf, expm1, flip, floor, gelu, leaky_relu, sign, sin, softplus,
                  std, tril, triu, var)
from .serialization import load, save
from .tensor import Tensor, as_dtype, bool_, float16, float32, float64, int32, int64

__version__ = "0.1.0"

__all__ = [
    "Tensor", "float16", "float32", "float64", "int32", "int64", "bool_", "as_dtype",
    "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "randn", "rand", "randint",
    "arange", "eye", "from_dlpack", "manual_seed", "cuda_available",
    "addmm", "cat", "stack", "split", "chunk", "unbind", "where", "matmul", "maximum", "minimum", "clamp",
    "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "sum", "mean", "amax", "amin",
    "argmax", "argmin",
    "sin", "cos", "sign", "floor", "ceil", "erf", "expm1", "softplus", "leaky_relu", "elu", "gelu", "flip",
    "cumsum", "tril", "triu", "var", "std",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "grad", "scope",
    "record_grads", "observe_backward", "detect_anomaly", "gradcheck", "max_grad_error", "GradcheckError",
    "TinygradRNNError", "ShapeError", "DeviceError", "DTypeError", "GraphFreedError", "GradError",
    "InplaceError", "AnomalyError", "CheckpointError", "backend", "optim", "save", "load",
]
