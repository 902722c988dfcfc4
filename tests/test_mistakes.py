"""A catalogue of user mistakes, each checked for a clear error: the right exception type, raised on
purpose by tinygrad_rnn (never a bare NumPy traceback), with a message naming what went wrong, where
(layer/op, shapes, dtypes, devices) and how to fix it.

The same table generates docs/mistakes.md (the code of each mistake and the message it actually
gives); `test_doc_is_up_to_date` fails when the doc is stale. Regenerate it with

    python tests/test_mistakes.py

Each mistake's `code` is executed as written (in a fresh temporary directory, with tg, nn, F, optim,
np, Path and on_fake_gpu in scope), so the doc shows exactly what was run.
"""
from __future__ import annotations

import contextlib
import html
import os
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script: document this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import backend, nn, optim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "mistakes.md"
PKG = str(Path(tg.__file__).resolve().parent)


@contextlib.contextmanager
def on_fake_gpu(*tensors: tg.Tensor) -> Iterator[None]:
    """Pretend that these tensors live on 'cuda:0' (their arrays stay NumPy): lets the device
    checks of layers run on a machine without a GPU. On a GPU machine the real thing is
    `model.to("cuda")`; tests/test_reliability.py checks that too where CuPy is available."""
    ids = {id(t.data) for t in tensors}
    real = backend.device_of
    backend.device_of = lambda a: "cuda:0" if id(a) in ids else real(a)
    try:
        yield
    finally:
        backend.device_of = real


@dataclass(frozen=True)
class Mistake:
    id: str            # short slug: pytest id and doc anchor
    area: str
    what: str          # the mistake, in words
    code: str          # the code that makes it (executed)
    error: type        # the exact exception type expected
    needles: tuple     # fragments the message must contain (what / where / how to fix)


M = Mistake
RNN, LAY, DEV, LOSS, TEN, OPT, CKPT = ("Recurrent layers", "Other layers and modules", "Devices",
                                       "Losses", "Tensors and autograd", "Optimizers and clipping",
                                       "State dicts and checkpoints")

CATALOGUE: list[Mistake] = [
    # ------------------------------------------------------------------------- recurrent layers
    M("rnn-input-1d", RNN, "A single feature vector given to a sequence layer (wrong rank)",
      "nn.RNN(4, 8)(tg.randn(4))",
      tg.ShapeError, ("RNN", "(4,)", "(T, B, input_size)", "(T, input_size) unbatched")),
    M("lstm-input-4d", RNN, "Input with an extra dimension (4-D instead of 3-D)",
      "nn.LSTM(4, 8)(tg.randn(2, 3, 5, 4))",
      tg.ShapeError, ("LSTM", "(2, 3, 5, 4)", "4 dims", "(T, B, input_size)")),
    M("gru-feature-size", RNN, "Last dimension is not input_size",
      "nn.GRU(4, 8)(tg.randn(5, 3, 6))",
      tg.ShapeError, ("GRU", "(5, 3, 6)", "input_size=4, got 6")),
    M("features-not-last", RNN, "Features in the middle, (B, D, T), instead of last",
      "nn.GRU(4, 8, batch_first=True)(tg.randn(3, 4, 5))",
      tg.ShapeError, ("GRU", "(3, 4, 5)", "dim 1 has size 4", "x.transpose(1, 2)")),
    M("batch-first-swapped-h0", RNN, "(B, T, D) data with batch_first=False, noticed through h0",
      "lstm = nn.LSTM(4, 8)\n"
      "x = tg.randn(3, 10, 4)  # 3 sequences of 10 steps, batch first\n"
      "h0 = c0 = tg.zeros(1, 3, 8)\n"
      "lstm(x, (h0, c0))",
      tg.ShapeError, ("LSTM", "h0", "(1, 3, 8)", "(1, 10, 8)", "batch_first=True")),
    M("batch-first-swapped-lengths", RNN, "(B, T, D) data with batch_first=False, noticed through lengths",
      "nn.RNN(4, 8)(tg.randn(3, 5, 4), lengths=[5, 2, 3])",
      tg.ShapeError, ("RNN", "3 lengths for a batch of 5", "batch_first=True")),
    M("h0-no-layer-dim", RNN, "h0 without its leading (num_layers * num_directions) dimension",
      "nn.RNN(4, 8)(tg.randn(5, 3, 4), tg.zeros(3, 8))",
      tg.ShapeError, ("RNN", "h0", "(3, 8)", "(1, 3, 8)", "num_layers * num_directions", "h0.unsqueeze(0)")),
    M("h0-num-layers", RNN, "h0 sized for one layer of a 2-layer GRU",
      "nn.GRU(4, 8, num_layers=2)(tg.randn(5, 3, 4), tg.zeros(1, 3, 8))",
      tg.ShapeError, ("GRU", "h0", "(2, 3, 8)")),
    M("h0-bidirectional", RNN, "State sized for one direction of a bidirectional LSTM",
      "h = tg.zeros(1, 3, 8)\n"
      "nn.LSTM(4, 8, bidirectional=True)(tg.randn(5, 3, 4), (h, h))",
      tg.ShapeError, ("LSTM", "h0", "(2, 3, 8)", "num_layers * num_directions=2")),
    M("c0-hidden-size", RNN, "Cell state c0 with the wrong hidden size",
      "nn.LSTM(4, 8)(tg.randn(5, 3, 4), (tg.zeros(1, 3, 8), tg.zeros(1, 3, 7)))",
      tg.ShapeError, ("LSTM", "c0", "(1, 3, 7)", "hidden_size=8")),
    M("unbatched-batched-h0", RNN, "Unbatched (T, D) input with a batched h0",
      "nn.GRU(4, 8)(tg.randn(5, 4), tg.zeros(1, 3, 8))",
      tg.ShapeError, ("GRU", "h0", "(1, 8)", "(5, 4)")),
    M("lstm-state-tensor", RNN, "A single tensor as LSTM state (it needs the pair (h0, c0))",
      "nn.LSTM(4, 8)(tg.randn(5, 3, 4), tg.zeros(1, 3, 8))",
      TypeError, ("LSTM", "(h0, c0)", "got a Tensor", "None for zeros")),
    M("gru-state-tuple", RNN, "An LSTM-style (h, c) tuple as GRU state",
      "h = tg.zeros(1, 3, 8)\n"
      "nn.GRU(4, 8)(tg.randn(5, 3, 4), (h, h))",
      TypeError, ("GRU", "single tensor h0", "tuple of 2", "only LSTM")),
    M("lstmcell-state-tensor", RNN, "A single tensor as LSTMCell state",
      "nn.LSTMCell(4, 8)(tg.randn(3, 4), tg.zeros(3, 8))",
      TypeError, ("LSTMCell", "(h, c)", "got a Tensor")),
    M("cell-given-sequence", RNN, "A whole sequence given to a cell (cells run one step)",
      "nn.RNNCell(4, 8)(tg.randn(5, 3, 4))",
      tg.ShapeError, ("RNNCell", "(5, 3, 4)", "ONE time step", "nn.RNN")),
    M("cell-hidden-shape", RNN, "A layer-shaped (1, B, H) state given to a cell",
      "nn.GRUCell(4, 8)(tg.randn(3, 4), tg.zeros(1, 3, 8))",
      tg.ShapeError, ("GRUCell", "hx", "(1, 3, 8)", "(3, 8)")),
    M("lengths-too-long", RNN, "A length longer than the sequence",
      "nn.LSTM(4, 8)(tg.randn(5, 3, 4), lengths=[5, 6, 2])",
      tg.ShapeError, ("LSTM", "lengths[1] = 6", "longer than the 5 time steps", "1..5")),
    M("lengths-zero", RNN, "A zero length (an empty sequence in the batch)",
      "nn.LSTM(4, 8)(tg.randn(5, 3, 4), lengths=[5, 0, 2])",
      tg.ShapeError, ("LSTM", "lengths[1] = 0", "at least 1")),
    M("lengths-negative", RNN, "A negative length",
      "nn.GRU(4, 8)(tg.randn(5, 3, 4), lengths=[5, -1, 2])",
      tg.ShapeError, ("GRU", "lengths[1] = -1", "1..5")),
    M("lengths-count", RNN, "Fewer lengths than sequences in the batch",
      "nn.RNN(4, 8)(tg.randn(5, 3, 4), lengths=[5, 2])",
      tg.ShapeError, ("RNN", "2 lengths for a batch of 3", "one length per sequence")),
    M("lengths-float", RNN, "Lengths as a float tensor",
      "nn.RNN(4, 8)(tg.randn(5, 3, 4), lengths=tg.Tensor([5.0, 2.0, 1.0]))",
      tg.DTypeError, ("RNN", "lengths", "integers", "float32")),
    M("lengths-nested", RNN, "Lengths as a 2-D tensor",
      "nn.RNN(4, 8)(tg.randn(5, 3, 4), lengths=tg.Tensor([[5, 2, 3]]))",
      tg.ShapeError, ("RNN", "lengths", "one int per sequence", "reshape(-1)")),
    M("rnn-integer-input", RNN, "Integer data (e.g. token ids) fed straight into an LSTM",
      "nn.LSTM(4, 8)(tg.randint(0, 5, (5, 3, 4)))",
      tg.DTypeError, ("LSTM", "int64", "float32", "input.to(dtype='float32')", "nn.Embedding")),
    M("rnn-float64-input", RNN, "float64 data into a float32 model",
      "nn.LSTM(4, 8)(tg.randn(5, 3, 4, dtype='float64'))",
      tg.DTypeError, ("LSTM", "float64", "float32", "model.to(dtype='float64')")),
    M("rnn-numpy-input", RNN, "A NumPy array instead of a Tensor",
      "nn.GRU(4, 8)(np.zeros((5, 3, 4), np.float32))",
      TypeError, ("GRU", "ndarray", "tinygrad_rnn.Tensor(")),
    M("carry-state-no-detach", RNN, "Carrying the hidden state across iterations without detaching it",
      "lstm = nn.LSTM(2, 4)\n"
      "state = None\n"
      "for chunk in tg.randn(2, 3, 1, 2).unbind(0):\n"
      "    out, state = lstm(chunk, state)\n"
      "    out.sum().backward()  # the 2nd backward reaches into the 1st chunk's freed graph",
      tg.GraphFreedError, ("second time", "module=LSTM", "step=", "retain_graph=True", "detach()")),
    M("rnn-dropout-one", RNN, "dropout=1.0 (it must be in [0, 1))",
      "nn.LSTM(4, 8, num_layers=2, dropout=1.0)",
      ValueError, ("LSTM", "dropout", "[0, 1)", "1.0")),
    M("rnn-hidden-zero", RNN, "hidden_size=0",
      "nn.GRU(4, 0)",
      ValueError, ("GRU", "hidden_size", "positive int", "0")),
    M("rnn-nonlinearity", RNN, "An unsupported nonlinearity",
      "nn.RNN(4, 8, nonlinearity='sigmoid')",
      ValueError, ("RNN", "'tanh' or 'relu'", "'sigmoid'")),
    # ------------------------------------------------------------------------------ other layers
    M("linear-integer-input", LAY, "Integer input to Linear",
      "nn.Linear(4, 2)(tg.Tensor([[1, 2, 3, 4]]))",
      tg.DTypeError, ("Linear", "int64", ".float()", "nn.Embedding")),
    M("linear-features", LAY, "Input whose last dimension is not in_features",
      "nn.Linear(4, 2)(tg.randn(3, 5))",
      tg.ShapeError, ("Linear(4, 2)", "(3, 5)", "in_features=4", "(..., 4)")),
    M("linear-negative-size", LAY, "A negative layer size",
      "nn.Linear(-3, 4)",
      ValueError, ("Linear", "in_features", "positive int", "-3")),
    M("embedding-float-size", LAY, "A float layer size (e.g. vocab_size / 2)",
      "nn.Embedding(10 / 1, 4)",
      TypeError, ("Embedding", "num_embeddings", "positive int", "10.0")),
    M("embedding-float-indices", LAY, "Float token ids",
      "nn.Embedding(10, 4)(tg.Tensor([1.0, 2.0]))",
      tg.DTypeError, ("Embedding", "integers", "float32", ".long()")),
    M("embedding-out-of-range", LAY, "A token id >= num_embeddings",
      "nn.Embedding(10, 4)(tg.Tensor([1, 10]))",
      IndexError, ("Embedding(10, 4)", "index 10", "0..9", "vocabulary size")),
    M("dropout-negative", LAY, "Dropout probability below 0",
      "nn.Dropout(-0.1)",
      ValueError, ("Dropout", "[0, 1)", "-0.1")),
    M("functional-dropout-one", LAY, "F.dropout with p=1",
      "F.dropout(tg.randn(3), p=1.0)",
      ValueError, ("dropout", "[0, 1)", "training=False")),
    M("sequential-function", LAY, "A plain function inside Sequential",
      "nn.Sequential(nn.Linear(2, 2), lambda x: x.tanh())",
      TypeError, ("Sequential", "element 1", "function", "nn.Module")),
    M("module-no-super-init", LAY, "Forgetting super().__init__() in a Module",
      "class Net(nn.Module):\n"
      "    def __init__(self):\n"
      "        self.fc = nn.Linear(2, 2)\n"
      "Net()",
      RuntimeError, ("Net", "super().__init__()")),
    M("module-to-integer", LAY, "Casting a model to an integer dtype",
      "nn.Linear(2, 2).to(dtype='int64')",
      tg.DTypeError, ("Module.to", "float type", "int64")),
    # ----------------------------------------------------------------------------------- devices
    M("device-input-vs-model", DEV, "CPU input to a model on the GPU",
      "lstm = nn.LSTM(4, 8)\n"
      "with on_fake_gpu(*lstm.parameters()):  # as after lstm.to('cuda')\n"
      "    lstm(tg.randn(5, 3, 4))",
      tg.DeviceError, ("LSTM", "input is on cpu", "cuda:0", ".to('cuda:0')")),
    M("device-h0-vs-model", DEV, "Initial state on another device than the model",
      "gru, h0 = nn.GRU(4, 8), tg.zeros(1, 3, 8)\n"
      "with on_fake_gpu(h0):  # as after h0 = h0.to('cuda')\n"
      "    gru(tg.randn(5, 3, 4), h0)",
      tg.DeviceError, ("GRU", "h0 is on cuda:0", "parameters are on cpu")),
    M("device-embedding-indices", DEV, "Token ids on the CPU, embedding table on the GPU",
      "emb = nn.Embedding(10, 4)\n"
      "with on_fake_gpu(emb.weight):  # as after emb.to('cuda')\n"
      "    emb(tg.Tensor([1, 2]))",
      tg.DeviceError, ("Embedding", "indices are on cpu", "cuda:0", ".to('cuda:0')")),
    # ------------------------------------------------------------------------------------ losses
    M("ce-target-too-large", LOSS, "A class index >= number of classes",
      "F.cross_entropy(tg.randn(3, 4), tg.Tensor([0, 4, 1]))",
      IndexError, ("cross_entropy", "target value 4", "4 classes", "0..3")),
    M("ce-padding-minus-one", LOSS, "Padding targets with -1 without ignore_index=-1",
      "F.cross_entropy(tg.randn(3, 4), tg.Tensor([0, -1, 1]))",
      IndexError, ("cross_entropy", "target value -1", "ignore_index")),
    M("ce-float-targets", LOSS, "Float (probability) targets",
      "F.cross_entropy(tg.randn(3, 4), tg.Tensor([0.0, 1.0, 1.0]))",
      tg.DTypeError, ("cross_entropy", "integer class indices", "float32", ".long()")),
    M("ce-one-hot-targets", LOSS, "One-hot targets instead of class indices",
      "F.cross_entropy(tg.randn(3, 4), tg.Tensor(np.eye(4, dtype=np.int64)[[0, 1, 2]]))",
      tg.ShapeError, ("cross_entropy", "(3, 4)", "target of shape (3,)")),
    M("ce-1d-logits", LOSS, "Logits of one sample with the targets of a batch",
      "F.cross_entropy(tg.randn(4), tg.Tensor([1, 2]))",
      tg.ShapeError, ("cross_entropy", "(4,)", "one class index", "(N, C)")),
    M("mse-shape", LOSS, "MSE between (N, 1) predictions and (N,) targets",
      "F.mse_loss(tg.randn(3, 1), tg.randn(3))",
      tg.ShapeError, ("mse_loss", "(3, 1)", "(3,)", "reshape")),
    M("loss-reduction", LOSS, "A misspelt reduction",
      "nn.MSELoss(reduction='avg')",
      ValueError, ("MSELoss", "'mean', 'sum' or 'none'", "'avg'")),
    # -------------------------------------------------------------------------- tensors, autograd
    M("matmul-shapes", TEN, "Matrix product of incompatible shapes",
      "tg.randn(3, 4) @ tg.randn(3, 4)",
      tg.ShapeError, ("matmul", "(3, 4) and (3, 4)", "must equal")),
    M("broadcast-shapes", TEN, "Adding shapes that do not broadcast",
      "tg.randn(3, 4) + tg.randn(3)",
      tg.ShapeError, ("add", "(3, 4) and (3,)", "broadcastable")),
    M("cat-shapes", TEN, "Concatenating tensors that differ outside the cat dimension",
      "tg.cat([tg.randn(3, 4), tg.randn(3, 5)], 0)",
      tg.ShapeError, ("cat", "(3, 5)", "(3, 4)", "except in dim 0")),
    M("reshape-count", TEN, "Reshape to a different number of elements",
      "tg.randn(3, 4).reshape(5, 3)",
      tg.ShapeError, ("reshape", "(3, 4)", "12 elements", "(5, 3)")),
    M("backward-non-scalar", TEN, "backward() on a non-scalar",
      "x = tg.randn(3, requires_grad=True)\n"
      "(x * 2).backward()",
      tg.GradError, ("backward", "scalar", "(3,)", "loss.sum()")),
    M("backward-twice", TEN, "A second backward through a freed graph",
      "x = tg.randn(3, requires_grad=True)\n"
      "loss = (x * x).sum()\n"
      "loss.backward()\n"
      "loss.backward()",
      tg.GraphFreedError, ("second time", "retain_graph=True")),
    M("backward-no-graph", TEN, "backward() when nothing requires grad",
      "tg.randn(3).sum().backward()",
      tg.GradError, ("does not require grad", "requires_grad=True", "no_grad()")),
    M("backward-grad-shape", TEN, "An explicit output gradient of the wrong shape",
      "x = tg.randn(3, requires_grad=True)\n"
      "(x * 2).backward(tg.ones(4))",
      tg.ShapeError, ("backward", "(4,)", "(3,)")),
    M("requires-grad-int", TEN, "requires_grad=True on integer data",
      "tg.Tensor([1, 2, 3], requires_grad=True)",
      tg.DTypeError, ("floating-point", "int64", ".float()")),
    M("index-out-of-range", TEN, "Indexing past the end",
      "tg.randn(3, 4)[3]",
      IndexError, ("getitem", "index 3", "size 3", "-3..2")),
    M("dim-out-of-range", TEN, "A reduction over a dimension that does not exist",
      "tg.randn(3, 4).sum(2)",
      IndexError, ("sum", "dim 2", "-2..1")),
    M("item-non-scalar", TEN, ".item() on a tensor with several elements",
      "tg.randn(3).item()",
      ValueError, ("item()", "one-element", "(3,)")),
    M("where-float-cond", TEN, "A float tensor as where() condition",
      "tg.where(tg.randn(3), tg.randn(3), tg.randn(3))",
      tg.DTypeError, ("where", "boolean", "float32", "x > 0")),
    # ---------------------------------------------------------------------------------- optimizers
    M("optim-consumed-iterator", OPT, "Building an optimizer from an already consumed parameters() iterator",
      "model = nn.Linear(2, 2)\n"
      "params = model.parameters()\n"
      "n = sum(p.numel() for p in params)  # consumes the iterator\n"
      "optim.Adam(params)",
      ValueError, ("Adam", "empty parameter list", "already consumed")),
    M("optim-module", OPT, "Passing the model instead of model.parameters()",
      "optim.SGD(nn.Linear(2, 2), lr=0.1)",
      TypeError, ("SGD", "Linear module", "model.parameters()")),
    M("optim-non-leaf", OPT, "Optimizing a computed (non-leaf) tensor",
      "w = tg.randn(3, requires_grad=True)\n"
      "optim.SGD([w * 2], lr=0.1)",
      ValueError, ("SGD", "not a leaf", "mul", "detach().requires_grad_()")),
    M("optim-no-requires-grad", OPT, "Optimizing a tensor that does not require grad",
      "optim.SGD([tg.randn(3)], lr=0.1)",
      ValueError, ("SGD", "does not require grad", "requires_grad=True")),
    M("optim-duplicate", OPT, "The same parameter in two param groups",
      "fc = nn.Linear(2, 2)\n"
      "optim.SGD([{'params': fc.parameters()}, {'params': [fc.weight], 'lr': 0.01}], lr=0.1)",
      ValueError, ("SGD", "param group 1", "more than once")),
    M("optim-negative-lr", OPT, "A negative learning rate",
      "optim.Adam(nn.Linear(2, 2).parameters(), lr=-1e-3)",
      ValueError, ("Adam", "lr", "-0.001", ">= 0")),
    M("optim-load-model-state", OPT, "Loading a model's state dict into the optimizer",
      "opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)\n"
      "opt.load_state_dict(nn.Linear(2, 2).state_dict())",
      ValueError, ("SGD.load_state_dict", "'state' and 'param_groups'", "model's state dict")),
    M("optim-state-other-model", OPT, "Optimizer state saved for a differently sized model",
      "a, b = nn.Linear(2, 3), nn.Linear(3, 3)\n"
      "opt_a = optim.Adam(a.parameters())\n"
      "a(tg.randn(1, 2)).sum().backward()\n"
      "opt_a.step()\n"
      "optim.Adam(b.parameters()).load_state_dict(opt_a.state_dict())",
      tg.ShapeError, ("Adam.load_state_dict", "exp_avg", "(3, 2)", "(3, 3)")),
    M("clip-given-model", OPT, "Passing the model to clip_grad_norm_",
      "nn.utils.clip_grad_norm_(nn.Linear(2, 2), 1.0)",
      TypeError, ("clip_grad_norm_", "model.parameters()", "Linear")),
    M("clip-non-finite", OPT, "Clipping gradients that are already Inf/NaN (error_if_nonfinite=True)",
      "w = tg.randn(3, requires_grad=True)\n"
      "(w * float('inf')).sum().backward()\n"
      "nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)",
      tg.GradError, ("clip_grad_norm_", "inf", "detect_anomaly()", "learning rate")),
    # --------------------------------------------------------------------------------- checkpoints
    M("state-dict-missing", CKPT, "Loading a 1-layer LSTM's weights into a 2-layer LSTM",
      "nn.LSTM(4, 8, num_layers=2).load_state_dict(nn.LSTM(4, 8).state_dict())",
      tg.ShapeError, ("LSTM", "missing keys", "weight_ih_l1", "strict=False")),
    M("state-dict-unexpected", CKPT, "Loading a 2-layer LSTM's weights into a 1-layer LSTM",
      "nn.LSTM(4, 8).load_state_dict(nn.LSTM(4, 8, num_layers=2).state_dict())",
      tg.ShapeError, ("LSTM", "unexpected keys", "weight_ih_l1", "same sizes")),
    M("state-dict-shapes", CKPT, "Loading weights saved with another hidden size",
      "nn.LSTM(4, 8).load_state_dict(nn.LSTM(4, 16).state_dict())",
      tg.ShapeError, ("LSTM", "weight_hh_l0: checkpoint (64, 16) vs model (32, 8)")),
    M("state-dict-whole-checkpoint", CKPT, "Passing the whole checkpoint dict instead of its 'model' entry",
      "fc = nn.Linear(2, 2)\n"
      "tg.save({'model': fc.state_dict(), 'epoch': 3}, 'run.ckpt')\n"
      "fc.load_state_dict(tg.load('run.ckpt'))",
      tg.ShapeError, ("Linear", "missing keys", "['weight', 'bias']", "['model', 'epoch']")),
    M("state-dict-module", CKPT, "Passing a module to load_state_dict",
      "nn.Linear(2, 2).load_state_dict(nn.Linear(2, 2))",
      TypeError, ("load_state_dict", "Linear", "state_dict()")),
    M("checkpoint-truncated", CKPT, "Loading a truncated checkpoint (e.g. disk full, copy cut short)",
      "tg.save(nn.Linear(2, 2).state_dict(), 'model.ckpt')\n"
      "p = Path('model.ckpt')\n"
      "p.write_bytes(p.read_bytes()[:200])\n"
      "tg.load('model.ckpt')",
      tg.CheckpointError, ("model.ckpt", "200 bytes", "truncated", "backup")),
    M("checkpoint-corrupted", CKPT, "Loading a checkpoint with damaged bytes",
      "tg.save(nn.Linear(20, 20).state_dict(), 'model.ckpt')\n"
      "data = bytearray(Path('model.ckpt').read_bytes())\n"
      "data[300:340] = bytes(40)\n"
      "Path('model.ckpt').write_bytes(data)\n"
      "tg.load('model.ckpt')",
      tg.CheckpointError, ("model.ckpt", "corrupted", "CRC")),
    M("checkpoint-not-a-checkpoint", CKPT, "Loading a file that is not a checkpoint",
      "Path('notes.txt').write_text('hello')\n"
      "tg.load('notes.txt')",
      tg.CheckpointError, ("notes.txt", "not a tinygrad_rnn checkpoint", "b'hell'")),
    M("checkpoint-empty", CKPT, "Loading an empty file",
      "Path('model.ckpt').write_bytes(b'')\n"
      "tg.load('model.ckpt')",
      tg.CheckpointError, ("model.ckpt", "empty (0 bytes)")),
    M("checkpoint-plain-npz", CKPT, "Loading a plain NumPy .npz as a checkpoint",
      "np.savez('weights.npz', w=np.ones(3))\n"
      "tg.load('weights.npz')",
      tg.CheckpointError, ("weights.npz", "no '__manifest__'", "['w']")),
    M("save-module-object", CKPT, "Saving the module object instead of its state dict",
      "tg.save(nn.Linear(2, 2), 'model.ckpt')",
      TypeError, ("save", "Linear", "module.state_dict()")),
    M("tensor-ragged-list", TEN, "A ragged nested list",
      "tg.Tensor([[1, 2], [3]])",
      tg.ShapeError, ("Tensor", "rectangular")),
    M("tensor-from-strings", TEN, "A Tensor made from strings",
      "tg.Tensor(['a', 'b'])",
      tg.DTypeError, ("Tensor", "numbers")),
    M("module-to-bad-device", DEV, "A misspelt device in Module.to",
      "nn.Linear(2, 2).to('gpu')",
      tg.DeviceError, ("'gpu'", "'cuda'")),
    # --------------------------------------------------------------- issue 12: unclear errors, now clear
    M("grad-assign-array", TEN, "Assigning a NumPy array as .grad",
      "w = tg.Tensor([1.0, 2.0], requires_grad=True)\n"
      "w.grad = np.ones(2)",
      TypeError, ("grad", "Tensor or None", "ndarray", "tinygrad_rnn.Tensor(array, dtype='float32')")),
    M("grad-assign-shape", TEN, "Presetting .grad with another shape (it would broadcast in backward)",
      "w = tg.Tensor([1.0, 2.0], requires_grad=True)\n"
      "w.grad = tg.zeros(1)",
      tg.ShapeError, ("grad", "(1,)", "(2,)", "the shape of its tensor")),
    M("hook-changes-shape", TEN, "A gradient hook that returns another shape",
      "w = tg.Tensor([1.0, 2.0], requires_grad=True)\n"
      "w.register_hook(lambda g: g.sum())  # meant: g / g.sum()\n"
      "(w * 2).sum().backward()",
      tg.ShapeError, ("hook", "<lambda>", "leaf tensor", "shape ()", "(2,)", "not the shape")),
    M("tensor-complex-array", TEN, "A complex NumPy array as tensor data",
      "tg.Tensor(np.fft.rfft(np.ones(4)))",
      tg.DTypeError, ("Tensor", "complex", "complex128", "a.real", "abs(a)")),
    M("tensor-object-array", TEN, "An object array (e.g. with a None in it) as tensor data",
      "tg.Tensor(np.array([1.0, None]))",
      tg.DTypeError, ("Tensor", "Python objects", "dtype object", "astype('float32')")),
    M("where-shapes", TEN, "where() with a condition of another shape",
      "x = tg.randn(2)\n"
      "tg.where(tg.randn(3) > 0, x, 0.0)",
      tg.ShapeError, ("where", "cond of shape (3,)", "a of shape (2,)", "a number", "broadcastable")),
    M("amax-empty", TEN, "The maximum of an empty tensor",
      "tg.zeros(0).amax()",
      tg.ShapeError, ("amax", "(0,)", "no elements", "numel()")),
    M("slice-step-zero", TEN, "A slice with step 0",
      "tg.randn(3)[::0]",
      ValueError, ("getitem", "step cannot be zero", "(3,)")),
    M("arange-step-zero", TEN, "arange with step 0",
      "tg.arange(0, 1, 0)",
      ValueError, ("arange", "step must be non-zero", "step=0")),
    M("cat-scalars", TEN, "Concatenating 0-d tensors (scalars)",
      "losses = [tg.Tensor(0.5), tg.Tensor(0.25)]\n"
      "tg.cat(losses)",
      tg.ShapeError, ("cat", "tensor 0 is 0-d", "tg.stack")),
    M("scalar-dim", TEN, "A reduction over dim 1 of a 0-d tensor",
      "tg.Tensor(2.0).sum(1)",
      IndexError, ("sum", "dim 1", "0 dimension", "0 or -1")),
    M("inplace-after-forward", TEN, "Editing a tensor in place between the forward and backward",
      "w = tg.Tensor([1., 2.], requires_grad=True)\n"
      "x = tg.Tensor([3., 4.])\n"
      "y = (w * x).sum()\n"
      "x[0] = 100.  # the product saved x for the gradient of w\n"
      "y.backward()",
      tg.InplaceError, ("modified in place", "'mul'", "shape (2,)", "clone()")),
    M("edit-weight-with-grad-on", TEN, "Editing a weight in place with grad mode on",
      "w = tg.Tensor([1., 2.], requires_grad=True)\n"
      "w[0] = 0.",
      tg.InplaceError, ("__setitem__", "requires grad", "tg.no_grad()")),
    M("write-grad-into-buffer", TEN, "Writing computed values into a preallocated buffer",
      "w = tg.Tensor([1., 2.], requires_grad=True)\n"
      "out = tg.zeros(3)\n"
      "for t in range(3):\n"
      "    out[t] = (w * t).sum()  # the buffer keeps only the values",
      tg.InplaceError, ("__setitem__", "gradient through this write would be lost", "tg.stack",
                        "value.detach()")),
    M("step-before-backward", OPT, "optimizer.step() between the forward and backward",
      "model = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 1))\n"
      "opt = optim.SGD(model.parameters(), lr=0.1)\n"
      "x = tg.randn(4, 3)\n"
      "model(x).tanh().sum().backward()  # a first step: the weights have grads\n"
      "loss = model(x).tanh().sum()\n"
      "opt.step()  # updates the weights the forward just used\n"
      "loss.backward()",
      tg.InplaceError, ("modified in place", "backward() before optimizer.step()")),
    M("optim-state-other-type", OPT, "Loading SGD's state into Adam",
      "w = tg.Tensor([1.0], requires_grad=True)\n"
      "sgd = optim.SGD([w], lr=0.1, momentum=0.9)\n"
      "optim.Adam([w]).load_state_dict(sgd.state_dict())",
      ValueError, ("Adam.load_state_dict", "'betas'", "momentum", "another optimizer type")),
    M("save-read-only", CKPT, "Saving over a read-only checkpoint",
      "tg.save({'v': 1}, 'final.ckpt')\n"
      "Path('final.ckpt').chmod(0o444)  # protected on purpose\n"
      "tg.save({'v': 2}, 'final.ckpt')",
      PermissionError, ("save", "final.ckpt is read-only", "chmod u+w")),
    M("save-missing-directory", CKPT, "Saving into a directory that does not exist",
      "tg.save({'v': 1}, 'runs/exp1/model.ckpt')",
      FileNotFoundError, ("save", "directory runs/exp1 does not exist", "os.makedirs")),
    M("save-self-reference", CKPT, "Saving a dict that contains itself",
      "ckpt = {'epoch': 3}\n"
      "ckpt['meta'] = {'parent': ckpt}\n"
      "tg.save(ckpt, 'x.ckpt')",
      ValueError, ("save", "obj['meta']['parent'] is obj itself", "self-reference")),
]



# ========================================================================================= running
@contextlib.contextmanager
def _fresh_dir() -> Iterator[None]:
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            yield
        finally:
            os.chdir(old)


def commit(m: Mistake) -> BaseException:
    """Run the mistake's code; return the exception it raised."""
    ns = {"tg": tg, "nn": nn, "F": nn.F, "optim": optim, "np": np, "Path": Path,
          "on_fake_gpu": on_fake_gpu, "__name__": "mistake"}
    tg.manual_seed(0)
    with _fresh_dir(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "dropout does nothing with num_layers=1"
        try:
            exec(compile(m.code, f"<mistake {m.id}>", "exec"), ns)
        except Exception as e:  # noqa: BLE001 - the point is to catch it
            return e
    raise AssertionError(f"{m.id}: the mistake raised no error")


def _raised_by_library(e: BaseException) -> bool:
    """The innermost frame is tinygrad_rnn code: the error was raised on purpose, not by NumPy."""
    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(PKG)


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 30
    assert len({m.id for m in CATALOGUE}) == len(CATALOGUE)
    assert len({m.code for m in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("m", CATALOGUE, ids=[m.id for m in CATALOGUE])
def test_mistake_gives_clear_error(m):
    e = commit(m)
    msg = str(e)
    assert type(e) is m.error, f"{m.id}: expected {m.error.__name__}, got {type(e).__name__}: {msg}"
    assert _raised_by_library(e), f"{m.id}: raised outside tinygrad_rnn: {type(e).__name__}: {msg}"
    for needle in m.needles:
        assert needle in msg, f"{m.id}: {needle!r} not in message: {msg}"
    assert len(msg) >= 40 and "\n" not in msg


# ============================================================================================= doc
def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return html.escape(text, quote=False).replace("|", "&#124;").replace("*", "\\*")


def render_doc() -> str:
    lines = [
        "# User mistakes and the errors they give",
        "",
        "<!-- Generated by `python tests/test_mistakes.py` from the table in tests/test_mistakes.py; "
        "do not edit by hand (tests/test_mistakes.py::test_doc_is_up_to_date checks it). -->",
        "",
        f"{len(CATALOGUE)} mistakes that users of a deep-learning library make, what tinygrad_rnn "
        "answers to each, and the code that makes it. Every row is a test: the code is run as "
        "written and the message below is the one it produced. Each message names what is wrong, "
        "where (layer or op, shapes, dtypes, devices) and how to fix it.",
        "",
        "Names in scope for the code: `tg` (tinygrad_rnn), `nn`, `F` (nn.functional), `optim`, `np`, "
        "`Path` (pathlib), and `on_fake_gpu(*tensors)`, a test helper that makes tensors report "
        "device `cuda:0` so the device checks can be shown on a machine without a GPU (on a real "
        "GPU, `model.to('cuda')` produces the same messages).",
        "",
        "NaN/Inf during training are not a mistake in the API; for those see "
        "[anomaly.md](anomaly.md) (`tg.detect_anomaly()`).",
        "",
    ]
    areas: list[str] = []
    for m in CATALOGUE:
        if m.area not in areas:
            areas.append(m.area)
    n = 0
    for area in areas:
        lines += [f"## {area}", "", "| # | Mistake | Code | Error | Message |", "|---|---|---|---|---|"]
        for m in CATALOGUE:
            if m.area != area:
                continue
            n += 1
            e = commit(m)
            code = "<br>".join(_cell(line).replace("  ", "&nbsp; ") for line in m.code.split("\n"))
            lines.append(f"| {n} | {_cell(m.what)} | <code>{code}</code> | `{type(e).__name__}` | "
                         f"{_cell(str(e))} |")
        lines.append("")
    return "\n".join(lines)


def test_doc_is_up_to_date():
    assert DOC.exists(), "docs/mistakes.md is missing: run python tests/test_mistakes.py"
    assert DOC.read_text(encoding="utf-8") == render_doc(), \
        "docs/mistakes.md is out of date: run python tests/test_mistakes.py"


if __name__ == "__main__":
    DOC.write_text(render_doc(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} ({len(CATALOGUE)} mistakes)", file=sys.stderr)
