"""Non-recurrent layers (PyTorch names and defaults): Linear, Embedding, Dropout, Sequential,
ModuleList, Identity, activation and loss wrappers.

Imports: the public core, nn.module, nn.init, nn.functional. Layers are compositions of Tensor ops:
no backward code here (Embedding's lookup is indexing, whose backward scatter-adds repeated rows).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Iterable, Iterator

from .. import backend, ops
from ..errors import DeviceError, DTypeError, ShapeError, fmt_shape
from ..tensor import Tensor, as_dtype
from . import functional as F
from . import init
from .module import Module, Parameter


def _check_size(layer: str, name: str, value: Any) -> int:
    """Sizes must be positive Python/NumPy ints (a float or 0 is almost always a typo)."""
    if isinstance(value, bool) or not isinstance(value, (int, backend.np.integer)):
        raise TypeError(f"{layer}: {name} must be a positive int, got {value!r} "
                        f"({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value}")
    return int(value)


def _empty(shape: tuple, dtype: Any) -> Parameter:
    """A parameter to be filled by an initialiser; created on the CPU so that init draws from the
    CPU generator and gives the same values whatever device the layer is later moved to."""
    dt = as_dtype(dtype) if dtype is not None else backend.np.dtype("float32")
    if dt.kind != "f":
        raise DTypeError(f"layer parameters must be floating point, got dtype {dt}")
    return Parameter(backend.np.zeros(shape, dtype=dt))


def _place(module: Module, device: Any) -> None:
    if device is not None and backend.normalize_device(device) != "cpu":
        module.to(device=device)


# ===================================================================================== Linear
class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), bias (out_features,).

    Init as PyTorch: weight ~ kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
    bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = _check_size("Linear", "in_features", in_features)
        self.out_features = _check_size("Linear", "out_features", out_features)
        self.weight = _empty((self.out_features, self.in_features), dtype)
        if bias:
            self.bias = _empty((self.out_features,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Linear: input must be a Tensor, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear({self.in_features}, {self.out_features}): input of shape "
                             f"{fmt_shape(x.shape)} must have in_features={self.in_features} as its "
                             f"last dimension, i.e. shape (..., {self.in_features})")
        if x.dtype.kind != "f":
            raise DTypeError(f"Linear: input has integer dtype {x.dtype}; a Linear layer needs "
                             f"float input ({self.weight.dtype}): convert with .float() (for token "
                             f"indices use nn.Embedding)")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


# ================================================================================== Embedding
class Embedding(Module):
    """A lookup table: out[...] = weight[indices[...]], weight (num_embeddings, embedding_dim) ~ N(0, 1).

    The lookup is indexing, so the backward scatter-adds: a row used k times gets the sum of its
    k gradients. With padding_idx, that row starts at zero and never receives a gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings = _check_size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _check_size("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, backend.np.integer)):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got {padding_idx!r}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx={padding_idx} is out of range for "
                                 f"num_embeddings={self.num_embeddings} (valid: "
                                 f"{-self.num_embeddings}..{self.num_embeddings - 1})")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = _empty((self.num_embeddings, self.embedding_dim), dtype)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,
                        padding_idx: int | None = None) -> "Embedding":
        """An Embedding whose weight is a copy of `embeddings` (2-D); frozen unless freeze=False."""
        arr = embeddings.data if isinstance(embeddings, Tensor) else backend.np.asarray(embeddings)
        if arr.ndim != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-D "
                             f"(num_embeddings, embedding_dim), got shape {fmt_shape(arr.shape)}")
        emb = cls(arr.shape[0], arr.shape[1], padding_idx=padding_idx,
                  dtype=arr.dtype if arr.dtype.kind == "f" else None)
        emb.weight.data = backend.array_module(arr).array(arr, dtype=emb.weight.dtype, copy=True)
        emb.weight.requires_grad = not freeze
        return emb

    def _indices(self, idx: Any) -> Any:
        """Validate the index array: integers in 0..num_embeddings-1, on the weight's device."""
        if isinstance(idx, Tensor):
            if idx.device != self.weight.device:
                raise DeviceError(f"Embedding: indices are on {idx.device} but the weight is on "
                                  f"{self.weight.device}; move them with .to({self.weight.device!r})")
            arr = idx.data
        elif backend.is_array(idx):
            arr = backend.to_device(idx, self.weight.device)
        else:
            arr = backend.to_device(backend.np.asarray(idx), self.weight.device)
        if arr.dtype.kind not in "iu":
            raise DTypeError(f"Embedding: indices must be integers (token ids), got dtype "
                             f"{arr.dtype} with shape {fmt_shape(arr.shape)}; convert with .long()")
        if not arr.size:
            return arr
        n = self.num_embeddings

        def error(later: bool) -> IndexError:
            lo, hi = int(arr.min()), int(arr.max())
            when = (" (found at the next sync point, not at the lookup: indices on a GPU are checked on "
                    "the device, without a host round trip per lookup; docs/gpu.md)") if later else ""
            return IndexError(f"Embedding({n}, {self.embedding_dim}): index {lo if lo < 0 else hi} is "
                              f"out of range; valid indices are 0..{n - 1} (is num_embeddings the "
                              f"vocabulary size?){when}")
        # on a GPU the check waits for the next sync and the indices are clamped meanwhile
        return backend.check_range(arr, 0, n - 1, error)

    def forward(self, indices: Any) -> Tensor:
        arr = self._indices(indices)
        out = ops.GetItem((arr,), checked=True)(self.weight)
        if self.padding_idx is not None and self.weight.requires_grad:
            # Same values, but the padding positions take the detached rows, so no gradient
            # reaches weight[padding_idx] (PyTorch's semantics).
            keep = (arr != self.padding_idx)[..., None]
            out = ops.where(Tensor._make(keep), out, out.detach())
        return out

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


# ==================================================================================== Dropout
class Dropout(Module):
    """Inverted dropout in training mode (zero with probability p, scale the rest by 1/(1-p));
    the identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, backend.np.floating)):
            raise TypeError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}; p is the probability of "
                             f"zeroing an element (p=1 would zero everything)")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ================================================================================ containers
class Sequential(Module):
    """Runs its modules in order: Sequential(a, b, c)(x) == c(b(a(x))). Children are named
    "0", "1", ... (or by the keys of an OrderedDict), indexable, sliceable, iterable."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self._add(str(name), m)
        else:
            for i, m in enumerate(modules):
                self._add(str(i), m)

    def _add(self, name: str, m: Any) -> None:
        if not isinstance(m, Module):
            raise TypeError(f"{type(self).__name__}: element {name} is a {type(m).__name__}, "
                            f"expected an nn.Module (did you pass a function? wrap it in a Module)")
        self.add_module(name, m)

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if isinstance(idx, bool) or not isinstance(idx, (int, backend.np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be ints or slices, got {type(idx).__name__}")
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for {n} modules")
        return int(idx) % n

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return type(self)(OrderedDict(items[idx]))
        return items[self._index(idx)][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        self._add(list(self._modules)[self._index(idx)], module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)
        for k in (keys[idx] if isinstance(idx, slice) else [keys[self._index(idx)]]):
            del self._modules[k]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> "Sequential":
        self._add(str(len(self._modules)), module)
        return self

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain Python list would hide them)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    _add = Sequential._add
    _index = Sequential._index
    __len__ = Sequential.__len__
    __iter__ = Sequential.__iter__

    def __getitem__(self, idx: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self._add(list(self._modules)[self._index(idx)], module)

    def _renumber(self, mods: list) -> None:
        self._modules.clear()
        for i, m in enumerate(mods):
            self._add(str(i), m)

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._modules.values())
        del mods[idx if isinstance(idx, slice) else self._index(idx)]
        self._renumber(mods)

    def append(self, module: Module) -> "ModuleList":
        self._add(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(): iterate over it and call each module")


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to switch a layer off)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


# ================================================================================ activations
class Tanh(Module):
    """tanh(x), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


# ===================================================================================== losses
def _check_reduction(layer: str, reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{layer}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """cross_entropy(logits, target): logits (N, C) or (N, C, d...), integer targets (N,) / (N, d...)."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(Module):
    """mean((input - target)^2); input and target shapes must be equal."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


__all__ = ["Linear", "Embedding", "Dropout", "Sequential", "ModuleList", "Identity", "Tanh", "ReLU",
           "Sigmoid", "CrossEntropyLoss", "MSELoss"]
