"""Neural-network layer: modules, recurrent cells and layers, initialisers, utilities.

`from tinygrad_rnn import nn` gives nn.Module, nn.Parameter, nn.Linear, nn.LSTM, nn.init,
nn.functional (also as nn.F), nn.utils ... Every name is imported here explicitly, so dir(nn),
tab completion and static tools see them all.
"""
from __future__ import annotations

from . import functional, init, utils
from . import functional as F  # noqa: N812 - the conventional alias
from .attention import (AdditiveAttention, Attention, DotAttention, GeneralAttention, length_mask,
                        make_attention)
from .layers import (CrossEntropyLoss, Dropout, Embedding, Identity, Linear, ModuleList, MSELoss, ReLU,
                     Sequential, Sigmoid, Tanh)
from .module import Module, Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, detach_state
from .seq2seq import Seq2Seq

__all__ = [
    "Module", "Parameter", "functional", "F", "init", "utils",
    "Linear", "Embedding", "Dropout", "Sequential", "Identity", "ModuleList", "Tanh", "ReLU",
    "Sigmoid", "CrossEntropyLoss", "MSELoss",
    "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "detach_state",
    "Attention", "AdditiveAttention", "DotAttention", "GeneralAttention", "make_attention", "length_mask",
    "Seq2Seq",
]
