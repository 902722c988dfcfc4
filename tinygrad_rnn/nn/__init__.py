"""Neural-network layer: modules, recurrent cells and layers, initialisers, utilities.

`from tinygrad_rnn import nn` gives nn.Module, nn.Parameter, nn.Linear, nn.LSTM, nn.init,
nn.functional (also as nn.F), nn.utils ...
"""
from __future__ import annotations

import importlib
from typing import Any

from . import functional, init
from . import functional as F  # noqa: N812 - the conventional alias
from .module import Module, Parameter

# Public names defined in submodules, imported on first use (so each submodule stays optional
# while it is being written, and `import tinygrad_rnn.nn` stays cheap).
_LAZY = {
    "Linear": "layers", "Embedding": "layers", "Dropout": "layers", "Sequential": "layers",
    "Identity": "layers", "ModuleList": "layers", "Tanh": "layers", "ReLU": "layers",
    "Sigmoid": "layers", "CrossEntropyLoss": "layers", "MSELoss": "layers",
    "RNNCell": "rnn", "LSTMCell": "rnn", "GRUCell": "rnn", "RNN": "rnn", "LSTM": "rnn", "GRU": "rnn",
    "detach_state": "rnn",
    "Attention": "attention", "AdditiveAttention": "attention", "DotAttention": "attention",
    "GeneralAttention": "attention", "make_attention": "attention", "length_mask": "attention",
    "Seq2Seq": "seq2seq",
    "utils": None,
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        sub = _LAZY[name]
        if sub is None:
            return importlib.import_module(f".{name}", __name__)
        return getattr(importlib.import_module(f".{sub}", __name__), name)
    raise AttributeError(f"module 'tinygrad_rnn.nn' has no attribute {name!r}")


__all__ = ["Module", "Parameter", "functional", "F", "init", *_LAZY]
