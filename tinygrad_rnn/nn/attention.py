"""Attention over encoder states: additive (Bahdanau) and multiplicative (Luong dot / general)
scores, masking of padded encoder steps, and the context vector c_i = sum_j alpha_ij h_j.

Imports: the public core (Tensor, ops, backend, errors) and nn.module / nn.layers / nn.functional.
Everything is a composition of Tensor ops: there is no backward code here.

Every module is called as `context, weights = attn(query, keys, values=None, mask=None)`:

    query   (B, Dq) one decoder state s_{i-1} per sequence, or (B, T_q, Dq) several at once
    keys    (B, T_x, Dk) the encoder states h_j
    values  (B, T_x, Dv), default keys: what the context averages
    mask    (B, T_x) bool, True where h_j is a real step (False: padding); or lengths=[...]
    weights (B, T_x) or (B, T_q, T_x): alpha_ij = softmax_j(e_ij), exactly 0 where masked
    context (B, Dv) or (B, T_q, Dv):   c_i = sum_j alpha_ij v_j

Unbatched inputs (keys (T_x, Dk), query (Dq,) or (T_q, Dq)) work too. The part of the score that
depends on the keys alone (U h_j, W_a h_j) is `project_keys(keys)`; a decoder computes it once per
source sequence and passes it as `projected_keys=` at every step.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from .. import backend, ops
from ..errors import DeviceError, DTypeError, ShapeError, fmt_shape
from ..tensor import Tensor
from . import functional as F
from .layers import Linear, _check_size
from .module import Module


def length_mask(lengths: Sequence[int] | Any, max_len: int, device: Any = "cpu") -> Any:
    """Bool array (B, max_len): mask[b, j] is True for j < lengths[b] (the real, unpadded steps)."""
    vals = lengths.tolist() if hasattr(lengths, "tolist") else list(lengths)
    if isinstance(vals, int):
        vals = [vals]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in vals):
        raise DTypeError(f"attention: lengths must be integers (one per sequence), got {vals!r}")
    bad = [(b, int(v)) for b, v in enumerate(vals) if not 1 <= v <= max_len]
    if bad:
        b, v = bad[0]
        raise ShapeError(f"attention: lengths[{b}] = {v} is outside 1..{max_len} (the keys have "
                         f"{max_len} steps); every sequence needs at least one step to attend to")
    xp = backend.xp_for(backend.normalize_device(device))
    return xp.arange(max_len)[None, :] < xp.asarray(vals)[:, None]


def _check_tensor(layer: str, x: Any, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {what} must be a Tensor, got {type(x).__name__}; wrap it with "
                        f"tinygrad_rnn.Tensor(...)")
    if x.dtype.kind != "f":
        raise DTypeError(f"{layer}: {what} has dtype {x.dtype}; attention needs floating-point "
                         f"inputs (convert with .float() or .double())")


class Attention(Module):
    """Base class: a score e_ij = score(s_i, h_j), softmax over j (masked steps excluded), and the
    weighted average of the values. Subclasses define `project_keys` and `score`."""

    query_size: int | None = None   # None: any (checked against the keys instead, e.g. dot)
    key_size: int | None = None

    def project_keys(self, keys: Tensor) -> Tensor:
        """The key-only part of the score, (B, T_x, ...); computed once per source sequence."""
        return keys

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """query (B, T_q, Dq), projected keys -> scores e (B, T_q, T_x)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ validation
    def _param_ref(self) -> Tensor | None:
        return next(iter(self.parameters()), None)

    def _check(self, query: Any, keys: Any, values: Any) -> None:
        name = type(self).__name__
        for what, x in (("query", query), ("keys", keys), ("values", values)):
            if x is not None:
                _check_tensor(name, x, what)
        ref = self._param_ref()
        for what, x in (("query", query), ("keys", keys), ("values", values)):
            if x is None:
                continue
            other = ref if ref is not None else keys
            if x.dtype != other.dtype:
                raise DTypeError(f"{name}: {what} has dtype {x.dtype} but "
                                 f"{'the parameters are' if ref is not None else 'keys are'} "
                                 f"{other.dtype}; convert one of them (.to(dtype=...)) so they match")
            if x.device != other.device:
                raise DeviceError(f"{name}: {what} is on {x.device} but "
                                  f"{'the parameters are' if ref is not None else 'keys are'} on "
                                  f"{other.device}; move it with .to({other.device!r})")
        if keys.ndim not in (2, 3):
            raise ShapeError(f"{name}: keys have shape {fmt_shape(keys.shape)}; expected (B, T_x, "
                             f"key_size) (or (T_x, key_size) unbatched)")
        batched = keys.ndim == 3
        want_q = "(B, query_size) or (B, T_q, query_size)" if batched else \
            "(query_size,) or (T_q, query_size)"
        if query.ndim not in ((2, 3) if batched else (1, 2)):
            raise ShapeError(f"{name}: query has shape {fmt_shape(query.shape)} but keys have shape "
                             f"{fmt_shape(keys.shape)}; expected a query of shape {want_q}")
        if batched and query.shape[0] != keys.shape[0]:
            raise ShapeError(f"{name}: query has batch size {query.shape[0]} (shape "
                             f"{fmt_shape(query.shape)}) but keys have {keys.shape[0]} (shape "
                             f"{fmt_shape(keys.shape)}); dim 0 of both is the batch")
        if self.key_size is not None and keys.shape[-1] != self.key_size:
            raise ShapeError(f"{name}: keys have shape {fmt_shape(keys.shape)}, expected last dim "
                             f"key_size={self.key_size}")
        q_size = self.query_size if self.query_size is not None else keys.shape[-1]
        if query.shape[-1] != q_size:
            what = f"query_size={q_size}" if self.query_size is not None else \
                f"the keys' size {q_size} (dot-product attention needs equal sizes; use " \
                f"GeneralAttention to compare vectors of different sizes)"
            raise ShapeError(f"{name}: query has shape {fmt_shape(query.shape)}, its last dim must "
                             f"be {what}; keys have shape {fmt_shape(keys.shape)}")
        if values is not None and (values.ndim != keys.ndim or values.shape[:-1] != keys.shape[:-1]):
            raise ShapeError(f"{name}: values have shape {fmt_shape(values.shape)} but keys have "
                             f"shape {fmt_shape(keys.shape)}; values need the same leading dims "
                             f"{fmt_shape(keys.shape[:-1])} + (value_size,)")

    def _mask(self, mask: Any, lengths: Any, keys: Tensor) -> Any:
        """-> bool array (B, T_x) on the keys' device, or None (nothing masked)."""
        name = type(self).__name__
        batch, steps = keys.shape[0], keys.shape[1]
        if mask is not None and lengths is not None:
            raise ValueError(f"{name}: give mask or lengths, not both")
        if lengths is not None:
            vals = lengths.tolist() if hasattr(lengths, "tolist") else lengths
            vals = [vals] if isinstance(vals, numbers.Integral) else list(vals)
            if len(vals) != batch:
                raise ShapeError(f"{name}: got {len(vals)} lengths for keys of shape "
                                 f"{fmt_shape(keys.shape)} (batch {batch}); give one length per "
                                 f"sequence")
            return length_mask(vals, steps, keys.device)
        if mask is None:
            return None
        m = mask.data if isinstance(mask, Tensor) else mask
        if not backend.is_array(m):
            m = backend.np.asarray(m)
        if m.dtype != bool:
            raise DTypeError(f"{name}: mask must be boolean (True = a real encoder step, False = "
                             f"padding), got dtype {m.dtype}; e.g. mask = src != pad_idx")
        if tuple(m.shape) != (batch, steps):
            raise ShapeError(f"{name}: mask has shape {fmt_shape(m.shape)} but keys have shape "
                             f"{fmt_shape(keys.shape)}; expected (B, T_x) = {fmt_shape((batch, steps))}")
        m = backend.to_device(m, keys.device)
        empty = ~m.any(axis=1)

        def error(later: str = "") -> ValueError:
            b = int(backend.to_numpy(empty).nonzero()[0][0])
            return ValueError(f"{name}: mask[{b}] is all False: sequence {b} has no encoder step to "
                              f"attend to (its weights would be 0/0){later}")
        if backend.is_cpu_array(m):
            if empty.any():
                raise error()
        else:  # a decoder calls this every step: check on the device, read it at the next sync
            backend.check_later(empty.any(), lambda: error(" (found at the next sync point: a mask "
                                                           "on a GPU is checked without a host sync)"))
        return m

    # ------------------------------------------------------------------------------- forward
    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask: Any = None,
                *, lengths: Any = None, projected_keys: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(query, keys, values)
        unbatched = keys.ndim == 2
        if unbatched:
            query, keys = query.unsqueeze(0), keys.unsqueeze(0)
            values = values.unsqueeze(0) if values is not None else None
            if mask is not None:
                m = mask.data if isinstance(mask, Tensor) else backend.np.asarray(mask)
                mask = m.reshape(1, -1) if m.ndim == 1 else m
            if projected_keys is not None:
                projected_keys = projected_keys.unsqueeze(0)
        single = query.ndim == 2               # one query per sequence: (B, Dq)
        q = query.unsqueeze(1) if single else query
        m = self._mask(mask, lengths, keys)
        proj = self.project_keys(keys) if projected_keys is None else projected_keys
        e = self.score(q, proj).named("e_ij")                      # (B, T_q, T_x)
        if m is not None:
            # exp(-inf - max) is exactly 0: masked steps get weight 0 and no gradient
            e = ops.where(m[:, None, :], e, -math.inf)
        alpha = F.softmax(e, -1).named("alpha_ij")
        context = (alpha @ (keys if values is None else values)).named("c_i")  # sum_j alpha_ij v_j
        if single:
            context, alpha = context.squeeze(1), alpha.squeeze(1)
        if unbatched:
            context, alpha = context.squeeze(0), alpha.squeeze(0)
        return context, alpha


class AdditiveAttention(Attention):
    """Bahdanau attention: e_ij = v^T tanh(W s_{i-1} + U h_j).

    W: Linear(query_size, hidden_size, bias=False), U: Linear(key_size, hidden_size) (its bias is
    the bias inside the tanh), v: Linear(hidden_size, 1, bias=False).
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        hidden_size = key_size if hidden_size is None else hidden_size
        self.query_size = _check_size("AdditiveAttention", "query_size", query_size)
        self.key_size = _check_size("AdditiveAttention", "key_size", key_size)
        self.hidden_size = _check_size("AdditiveAttention", "hidden_size", hidden_size)
        self.W = Linear(query_size, hidden_size, bias=False, device=device, dtype=dtype)
        self.U = Linear(key_size, hidden_size, device=device, dtype=dtype)
        self.v = Linear(hidden_size, 1, bias=False, device=device, dtype=dtype)

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.U(keys)                                         # U h_j: (B, T_x, A)

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        hidden = (self.W(query).unsqueeze(2) + projected_keys.unsqueeze(1)).tanh()  # (B, T_q, T_x, A)
        return (hidden @ self.v.weight.T).squeeze(-1)

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}, hidden_size={self.hidden_size}"


class DotAttention(Attention):
    """Luong dot attention: e_ij = s_i . h_j (divided by sqrt(size) when scaled=True). No parameters;
    query and keys must have the same size."""

    def __init__(self, scaled: bool = False) -> None:
        super().__init__()
        self.scaled = bool(scaled)

    def project_keys(self, keys: Tensor) -> Tensor:
        return keys.transpose(-1, -2)                               # (B, D, T_x)

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        e = query @ projected_keys
        return e * (1.0 / math.sqrt(query.shape[-1])) if self.scaled else e

    def extra_repr(self) -> str:
        return "scaled=True" if self.scaled else ""


class GeneralAttention(Attention):
    """Luong general attention: e_ij = s_i^T W_a h_j, W_a = weight of Linear(key_size, query_size,
    bias=False), shape (query_size, key_size)."""

    def __init__(self, query_size: int, key_size: int, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.query_size = _check_size("GeneralAttention", "query_size", query_size)
        self.key_size = _check_size("GeneralAttention", "key_size", key_size)
        self.W = Linear(key_size, query_size, bias=False, device=device, dtype=dtype)

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.W(keys).transpose(-1, -2)                       # (W_a h_j)^T: (B, Dq, T_x)

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        return query @ projected_keys

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}"


def make_attention(kind: str, query_size: int, key_size: int, hidden_size: int | None = None,
                   device: Any = None, dtype: Any = None) -> Attention:
    """An attention module by name: "additive" (Bahdanau), "dot", "scaled_dot" or "general" (Luong)."""
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, hidden_size, device=device, dtype=dtype)
    if kind in ("dot", "scaled_dot"):
        if query_size != key_size:
            raise ShapeError(f"attention='{kind}' compares decoder states (size {query_size}) with "
                             f"encoder states (size {key_size}) directly, so the sizes must be equal; "
                             f"use attention='general' or 'additive' instead")
        return DotAttention(scaled=kind == "scaled_dot")
    if kind == "general":
        return GeneralAttention(query_size, key_size, device=device, dtype=dtype)
    raise ValueError(f"attention kind must be 'additive', 'dot', 'scaled_dot' or 'general', got {kind!r}")


__all__ = ["Attention", "AdditiveAttention", "DotAttention", "GeneralAttention", "make_attention",
           "length_mask"]
