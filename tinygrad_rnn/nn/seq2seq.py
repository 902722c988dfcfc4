"""Encoder-decoder (sequence-to-sequence) model with optional attention, assembled from the library's
own layers: Embedding, RNN/LSTM/GRU (encoder, optionally bidirectional), RNNCell/LSTMCell/GRUCell
(decoder), Linear and the attention modules. Training with teacher forcing (with a ratio), greedy
decoding and beam search with an end-of-sequence token and a maximum length.

Imports: the public core (Tensor, ops, creation, autograd, backend, errors) and nn.module /
nn.layers / nn.rnn / nn.attention / nn.functional. No backward code: the decoder's time loop is
ordinary Tensor ops.

The decoder step (Bahdanau et al. 2014; lecture notes 004):

    c_i      = sum_j alpha_ij h_j,   alpha_i = softmax_j(score(s_{i-1}, h_j))   (attention)
    s_i      = f(s_{i-1}, [E y_{i-1}; c_i])                                  (the decoder cell)
    logits_i = W_out [s_i; c_i] + b_out

Without attention (attention=None) the encoder's final state is the only link (lecture notes 000):
s_0 = h_T (merged by `bridge` when bidirectional), s_i = f(s_{i-1}, E y_{i-1}),
logits_i = W_out s_i + b_out.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .. import autograd, backend, creation, ops
from ..errors import DTypeError, ShapeError, fmt_shape
from ..tensor import Tensor
from . import functional as F
from .attention import Attention, make_attention
from .layers import Embedding, Linear, ModuleList, _check_size
from .module import Module
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell

_CELLS = {"rnn": (RNN, RNNCell), "lstm": (LSTM, LSTMCell), "gru": (GRU, GRUCell)}


@dataclass
class Encoded:
    """What the decoder needs from the encoder (one row per sequence, or per beam hypothesis)."""
    outputs: Tensor          # h_j: (B, T_x, num_directions * hidden_size)
    mask: Any                # bool array (B, T_x), True on real steps; None when nothing is padded
    keys: Tensor | None      # attention.project_keys(outputs), computed once; None without attention
    state: list              # decoder initial state: per layer a tuple (h,) or (h, c), each (B, H)

    def select(self, index: Any) -> "Encoded":
        """Rows `index` (an int array) of everything, e.g. to repeat each sequence per beam."""
        return Encoded(self.outputs[index], None if self.mask is None else self.mask[index],
                       None if self.keys is None else self.keys[index], _select_state(self.state, index))


def _sync_every(sync_every: Any) -> int:
    if isinstance(sync_every, bool) or not isinstance(sync_every, numbers.Integral) or sync_every < 1:
        raise ValueError(f"Seq2Seq: sync_every must be a positive int (decoding steps between two "
                         f"device->host reads of the stop flag), got {sync_every!r}")
    return int(sync_every)


def _select_state(state: list, index: Any) -> list:
    return [tuple(t[index] for t in layer) for layer in state]


class Seq2Seq(Module):
    """Encoder-decoder RNN with attention over the encoder states.

        model = Seq2Seq(src_vocab_size, tgt_vocab_size, embed_size=32, hidden_size=64,
                        encoder_cell="gru", decoder_cell="lstm", bidirectional=True,
                        attention="additive")
        logits = model(src, tgt, teacher_forcing_ratio=1.0)      # (B, T_y, tgt_vocab_size)
        loss = model.loss(src, tgt)                              # cross-entropy, padding ignored
        outputs = model.greedy(src)                              # list of token lists, EOS removed
        outputs = model.beam_search(src, beam_size=5)

    src (B, T_x) and tgt (B, T_y) hold token ids (ints), padded at the end with pad_idx; T_x and
    T_y are independent. tgt is the target *including* its final eos_idx; the decoder is fed sos_idx
    and then tgt[:, :-1] (teacher forcing) or its own previous prediction (with probability
    1 - teacher_forcing_ratio per step). src_lengths (one int per sequence) defaults to the
    number of non-pad tokens in each row.

    encoder_cell / decoder_cell: "rnn", "lstm" or "gru" (decoder_cell defaults to encoder_cell).
    bidirectional: the encoder reads both ways; its states are (B, T_x, 2H) and its final forward
    and backward states are mapped to the decoder's initial state by `bridge` (Linear + tanh).
    attention: "additive" (Bahdanau), "dot", "scaled_dot", "general" (Luong), an `Attention`
    module, or None (plain encoder-decoder). attention_size: the hidden size of additive attention.
    num_layers: encoder and decoder depth; dropout: between stacked layers.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_size: int = 32,
                 hidden_size: int = 64, num_layers: int = 1, encoder_cell: str = "gru",
                 decoder_cell: str | None = None, bidirectional: bool = False,
                 attention: str | Attention | None = "additive", attention_size: int | None = None,
                 dropout: float = 0.0, pad_idx: int = 0, sos_idx: int = 1, eos_idx: int = 2,
                 max_len: int = 50, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = "Seq2Seq"
        src_vocab_size = _check_size(name, "src_vocab_size", src_vocab_size)
        tgt_vocab_size = _check_size(name, "tgt_vocab_size", tgt_vocab_size)
        embed_size = _check_size(name, "embed_size", embed_size)
        hidden_size = _check_size(name, "hidden_size", hidden_size)
        num_layers = _check_size(name, "num_layers", num_layers)
        self.max_len = _check_size(name, "max_len", max_len)
        decoder_cell = encoder_cell if decoder_cell is None else decoder_cell
        for what, cell in (("encoder_cell", encoder_cell), ("decoder_cell", decoder_cell)):
            if cell not in _CELLS:
                raise ValueError(f"{name}: {what} must be one of {sorted(_CELLS)}, got {cell!r}")
        for what, idx in (("pad_idx", pad_idx), ("sos_idx", sos_idx), ("eos_idx", eos_idx)):
            if isinstance(idx, bool) or not isinstance(idx, numbers.Integral) \
                    or not 0 <= idx < tgt_vocab_size:
                raise ValueError(f"{name}: {what} = {idx!r} must be a token id in "
                                 f"0..{tgt_vocab_size - 1} (tgt_vocab_size={tgt_vocab_size})")
        if len({pad_idx, sos_idx, eos_idx}) != 3:
            raise ValueError(f"{name}: pad_idx={pad_idx}, sos_idx={sos_idx} and eos_idx={eos_idx} "
                             f"must be three different token ids")
        if not 0 <= pad_idx < src_vocab_size:
            raise ValueError(f"{name}: pad_idx={pad_idx} must also be a source token id "
                             f"(0..{src_vocab_size - 1})")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.embed_size, self.hidden_size, self.num_layers = embed_size, hidden_size, num_layers
        self.encoder_cell, self.decoder_cell = encoder_cell, decoder_cell
        self.bidirectional, self.dropout = bool(bidirectional), float(dropout)
        self.pad_idx, self.sos_idx, self.eos_idx = int(pad_idx), int(sos_idx), int(eos_idx)
        kw = dict(device=device, dtype=dtype)
        dirs = 2 if bidirectional else 1
        enc_size = dirs * hidden_size

        self.src_embed = Embedding(src_vocab_size, embed_size, padding_idx=pad_idx, **kw)
        self.tgt_embed = Embedding(tgt_vocab_size, embed_size, padding_idx=pad_idx, **kw)
        layer_cls, _ = _CELLS[encoder_cell]
        self.encoder = layer_cls(embed_size, hidden_size, num_layers, batch_first=True,
                                 dropout=dropout, bidirectional=bidirectional, **kw)
        # The decoder starts from the encoder's final state; two directions are merged by a layer.
        self.bridge = Linear(enc_size, hidden_size, **kw) if bidirectional else None
        self.bridge_c = Linear(enc_size, hidden_size, **kw) \
            if bidirectional and encoder_cell == decoder_cell == "lstm" else None

        if isinstance(attention, Attention):
            self.attention = attention
        elif attention is None:
            self.attention = None
        elif isinstance(attention, str):
            self.attention = make_attention(attention, hidden_size, enc_size,
                                            attention_size or hidden_size, **kw)
        else:
            raise TypeError(f"{name}: attention must be 'additive', 'dot', 'scaled_dot', 'general', "
                            f"an nn.attention.Attention module or None, got {type(attention).__name__}")
        ctx = enc_size if self.attention is not None else 0
        _, cell_cls = _CELLS[decoder_cell]
        self.decoder = ModuleList([cell_cls(embed_size + ctx if layer == 0 else hidden_size,
                                            hidden_size, **kw) for layer in range(num_layers)])
        self.out = Linear(hidden_size + ctx, tgt_vocab_size, **kw)

    # ------------------------------------------------------------------------------ inputs
    def _ids(self, x: Any, what: str) -> Any:
        """Token ids as an integer backend array (B, T) on the model's device."""
        dev = self.out.weight.device
        if isinstance(x, Tensor):
            arr = x.data
        elif backend.is_array(x):
            arr = x
        else:
            try:
                arr = backend.np.asarray(x)
            except ValueError:
                raise ShapeError(f"Seq2Seq: {what} must be a rectangular (B, T) array of token ids; "
                                 f"pad shorter sequences with pad_idx={self.pad_idx}") from None
        if arr.dtype.kind not in "iu":
            raise DTypeError(f"Seq2Seq: {what} must hold integer token ids, got dtype {arr.dtype} "
                             f"(shape {fmt_shape(arr.shape)})")
        if arr.ndim != 2 or 0 in arr.shape:
            hint = f"; for one sequence use {what}[None] (shape (1, T))" if arr.ndim == 1 else ""
            raise ShapeError(f"Seq2Seq: {what} has shape {fmt_shape(arr.shape)}, expected (B, T) "
                             f"token ids, batch first{hint}")
        return backend.to_device(arr, dev)

    def _lengths(self, src: Any, src_lengths: Any) -> list[int]:
        batch, steps = src.shape
        if src_lengths is None:
            vals = backend.to_numpy((src != self.pad_idx).sum(1)).tolist()
        else:
            vals = src_lengths.tolist() if hasattr(src_lengths, "tolist") else list(src_lengths)
            if len(vals) != batch:
                raise ShapeError(f"Seq2Seq: got {len(vals)} src_lengths for src of shape "
                                 f"{fmt_shape(src.shape)}; give one length per sequence (batch {batch})")
        bad = [(b, v) for b, v in enumerate(vals) if not 1 <= v <= steps]
        if bad:
            b, v = bad[0]
            raise ShapeError(f"Seq2Seq: source sequence {b} has length {v}; lengths must be in "
                             f"1..{steps} (src shape {fmt_shape(src.shape)}, padded with "
                             f"pad_idx={self.pad_idx})")
        return [int(v) for v in vals]

    # ------------------------------------------------------------------------------ encoder
    def encode(self, src: Any, src_lengths: Any = None) -> Encoded:
        """Run the encoder: states h_j, the padding mask, projected keys, decoder initial state."""
        raw = src.data if isinstance(src, Tensor) else src
        src = self._ids(src, "src")
        if src_lengths is None and (backend.is_cpu_array(raw) or not backend.is_array(raw)):
            src_lengths = (backend.np.asarray(raw) != self.pad_idx).sum(1)  # host data: no sync
        lengths = self._lengths(src, src_lengths)
        steps = src.shape[1]
        padded = any(v < steps for v in lengths)
        outputs, final = self.encoder(self.src_embed(src), lengths=lengths if padded else None)
        mask = None
        if padded:
            xp = backend.array_module(src)
            mask = xp.arange(steps)[None, :] < xp.asarray(lengths)[:, None]
        keys = self.attention.project_keys(outputs) if self.attention is not None else None
        return Encoded(outputs, mask, keys, self._bridge(final))

    def _bridge(self, final: Any) -> list:
        """Encoder final state (h_n or (h_n, c_n), each (L * dirs, B, H)) -> decoder initial state."""
        h_n, c_n = final if isinstance(final, tuple) else (final, None)
        dirs = 2 if self.bidirectional else 1

        def per_layer(s: Tensor, bridge: Linear | None, squash: bool) -> list:
            parts = s.unbind(0)
            if dirs == 1:
                return list(parts)
            merged = [bridge(ops.cat([parts[2 * k], parts[2 * k + 1]], -1)) for k in range(self.num_layers)]
            return [m.tanh() for m in merged] if squash else merged

        hs = per_layer(h_n, self.bridge, True)
        if self.decoder_cell != "lstm":
            return [(h,) for h in hs]
        # An LSTM decoder also needs a cell state: the encoder's when it has one, else zeros.
        cs = per_layer(c_n, self.bridge_c, False) if c_n is not None else [creation.zeros_like(h) for h in hs]
        return [(h, c) for h, c in zip(hs, cs)]

    # ------------------------------------------------------------------------------ decoder
    def decode_step(self, emb: Tensor, state: list, enc: Encoded) -> tuple[Tensor, list, Tensor | None]:
        """One decoder step: embedded previous token (B, E), state -> (features [s_i; c_i],
        new state, attention weights alpha_i (B, T_x) or None). logits_i = self.out(features)."""
        alpha = None
        x = emb
        if self.attention is not None:
            ctx, alpha = self.attention(state[-1][0], enc.outputs, mask=enc.mask,
                                        projected_keys=enc.keys)
            x = ops.cat([emb, ctx], -1)
        new_state = []
        with autograd.scope("module", "decoder"):   # a ModuleList is iterated, never called
            for layer, cell in enumerate(self.decoder):
                if layer and self.dropout:
                    x = F.dropout(x, self.dropout, self.training)
                s = cell(x, state[layer] if self.decoder_cell == "lstm" else state[layer][0])
                s = s if isinstance(s, tuple) else (s,)
                new_state.append(s)
                x = s[0].named("s_i")
        feats = ops.cat([x, ctx], -1).named("[s_i; c_i]") if self.attention is not None else x
        return feats, new_state, alpha

    def forward(self, src: Any, tgt: Any, src_lengths: Any = None, teacher_forcing_ratio: float = 1.0,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """Logits (B, T_y, tgt_vocab_size) for every target position (and, with return_attention,
        the weights (B, T_y, T_x)). With teacher_forcing_ratio < 1 each step is fed, with that
        probability, the true previous token, else the model's own argmax prediction."""
        if isinstance(teacher_forcing_ratio, bool) or not isinstance(teacher_forcing_ratio, numbers.Real) \
                or not 0.0 <= teacher_forcing_ratio <= 1.0:
            raise ValueError(f"Seq2Seq: teacher_forcing_ratio must be a number in [0, 1], got "
                             f"{teacher_forcing_ratio!r}")
        tgt = self._ids(tgt, "tgt")
        enc = self.encode(src, src_lengths)
        batch, steps = tgt.shape
        if batch != enc.outputs.shape[0]:
            raise ShapeError(f"Seq2Seq: src has batch size {enc.outputs.shape[0]} but tgt has shape "
                             f"{fmt_shape(tgt.shape)} (batch {batch}); both are (B, T), batch first")
        xp = backend.array_module(tgt)
        dec_in = xp.concatenate([xp.full((batch, 1), self.sos_idx, dtype=tgt.dtype), tgt[:, :-1]], 1)
        teacher = self.tgt_embed(dec_in).unbind(1)     # one lookup for every teacher-forced input
        if teacher_forcing_ratio >= 1.0:
            use_teacher = [True] * steps
        else:
            use_teacher = (backend.rng("cpu").random(steps) < teacher_forcing_ratio).tolist()
        use_teacher[0] = True                          # step 0 is always fed sos_idx
        state, feats, alphas, pred = enc.state, [], [], None
        with autograd.gc_paused():
            for i in range(steps):
                with autograd.scope("step", i):
                    emb = teacher[i] if use_teacher[i] else self.tgt_embed(pred)
                    feat, state, alpha = self.decode_step(emb, state, enc)
                    feats.append(feat)
                    alphas.append(alpha)
                    if i + 1 < steps and not use_teacher[i + 1]:
                        with autograd.no_grad():    # the prediction is a token: no gradient
                            pred = ops.argmax(self.out(feat.detach()), -1).data
        logits = self.out(ops.stack(feats, 1))         # one matmul for all steps
        if not return_attention:
            return logits
        return logits, (ops.stack(alphas, 1) if self.attention is not None else None)

    def loss(self, src: Any, tgt: Any, src_lengths: Any = None, teacher_forcing_ratio: float = 1.0) -> Tensor:
        """Mean cross-entropy over the non-pad target tokens."""
        logits = self(src, tgt, src_lengths, teacher_forcing_ratio)
        tgt = self._ids(tgt, "tgt")
        return F.cross_entropy(logits.reshape(-1, self.tgt_vocab_size), tgt.reshape(-1),
                               ignore_index=self.pad_idx)

    # ----------------------------------------------------------------------------- inference
    def _max_len(self, max_len: int | None) -> int:
        return self.max_len if max_len is None else _check_size("Seq2Seq", "max_len", max_len)

    def _log_probs(self, tokens: Any, state: list, enc: Encoded) -> tuple[Any, list, Any]:
        feat, state, alpha = self.decode_step(self.tgt_embed(tokens), state, enc)
        logp = F.log_softmax(self.out(feat), -1).data
        return logp, state, (alpha.data if alpha is not None else None)

    def greedy(self, src: Any, src_lengths: Any = None, max_len: int | None = None,
               return_attention: bool = False, sync_every: int = 8) -> list | tuple[list, list]:
        """Greedy decoding: at each step feed back the most probable token, until eos_idx or max_len.

        sync_every: on a GPU, whether every sequence has finished is read back (a device->host
        sync) once every sync_every steps, not every step; up to sync_every - 1 extra steps may
        run after the last eos, which changes no result. On the CPU it is tested every step.

        Returns one list of token ids per sequence (eos removed). With return_attention also a list
        of arrays (n_steps, T_x): row i is the attention while emitting token i; when the sequence
        ended with eos the last row is the eos step (so n_steps = len(tokens) + 1)."""
        max_len, every = self._max_len(max_len), _sync_every(sync_every)
        was_training = self.training
        self.eval()
        try:
            with autograd.no_grad():
                enc = self.encode(src, src_lengths)
                batch = enc.outputs.shape[0]
                xp = backend.array_module(enc.outputs.data)
                tokens = xp.full((batch,), self.sos_idx, dtype=xp.int64)
                state, done = enc.state, xp.zeros(batch, dtype=bool)
                out_tokens, out_alpha = [], []
                every = 1 if xp is backend.np else every  # on the CPU the test is free
                for step in range(max_len):
                    logp, state, alpha = self._log_probs(tokens, state, enc)
                    tokens = xp.argmax(logp, -1)
                    out_tokens.append(tokens)
                    out_alpha.append(alpha)
                    done = done | (tokens == self.eos_idx)
                    if (step + 1) % every == 0 and backend.sync_flags(done.all())[0]:
                        break
        finally:
            self.train(was_training)
        return self._results(xp, out_tokens, out_alpha, return_attention)

    def beam_search(self, src: Any, src_lengths: Any = None, beam_size: int = 5,
                    max_len: int | None = None, length_penalty: float = 0.0,
                    return_attention: bool = False, sync_every: int = 8) -> list | tuple[list, list]:
        """Beam search: keep the beam_size most probable partial outputs per sequence.

        All B * beam_size hypotheses run as one batch. A hypothesis that emitted eos_idx is finished:
        it stays in the beam with its score (only eos can follow, at no cost). The result per
        sequence is the hypothesis with the best score / length**length_penalty (0: the plain sum of
        log-probabilities; beam_size=1 is then exactly greedy decoding). Returns the same as greedy;
        sync_every as in greedy (extra steps after every beam finished change nothing: a finished
        hypothesis only extends by eos at no cost)."""
        if isinstance(beam_size, bool) or not isinstance(beam_size, numbers.Integral) or beam_size < 1:
            raise ValueError(f"Seq2Seq.beam_search: beam_size must be a positive int, got {beam_size!r}")
        max_len, k, every = self._max_len(max_len), int(beam_size), _sync_every(sync_every)
        was_training = self.training
        self.eval()
        try:
            with autograd.no_grad():
                enc0 = self.encode(src, src_lengths)
                batch = enc0.outputs.shape[0]
                xp = backend.array_module(enc0.outputs.data)
                enc = enc0.select(xp.repeat(xp.arange(batch), k))       # (B * k) rows
                scores = xp.full((batch, k), -math.inf)
                scores[:, 0] = 0.0   # all beams start equal: expand only the first at step 0
                tokens = xp.full((batch * k,), self.sos_idx, dtype=xp.int64)
                done = xp.zeros(batch * k, dtype=bool)
                length = xp.zeros(batch * k, dtype=xp.int64)
                state, history = enc.state, []
                # a stable sort keeps the lowest token id among ties, as argmax does (so k=1 is
                # greedy); CuPy's argsort is always stable and older versions reject `kind`
                stable = {"kind": "stable"} if xp is backend.np else {}
                every = 1 if xp is backend.np else every  # on the CPU the test is free
                finished = xp.full(self.tgt_vocab_size, -math.inf)
                finished[self.eos_idx] = 0.0
                for step in range(max_len):
                    logp, state, alpha = self._log_probs(tokens, state, enc)
                    vocab = logp.shape[1]
                    # a finished hypothesis continues only with eos, at no cost. A where, not
                    # logp[done] = ...: CuPy's boolean-mask indexing reads the mask's count back to
                    # the host (a sync per step that the CuPy stand-in does not count)
                    logp = xp.where(done[:, None], finished, logp.astype(xp.float64))
                    cand = (scores.reshape(-1, 1) + logp).reshape(batch, k * vocab)
                    best = xp.argsort(-cand, axis=1, **stable)[:, :k]             # (B, k)
                    scores = xp.take_along_axis(cand, best, 1)
                    origin = (xp.arange(batch)[:, None] * k + best // vocab).reshape(-1)
                    tokens = (best % vocab).reshape(-1)
                    length = length[origin] + (~done[origin])
                    done = done[origin] | (tokens == self.eos_idx)
                    state = _select_state(state, origin)
                    history.append((origin, tokens, None if alpha is None else alpha[origin]))
                    if (step + 1) % every == 0 and backend.sync_flags(done.all())[0]:
                        break
        finally:
            self.train(was_training)
        final = scores.reshape(-1) / (length.astype(xp.float64) ** length_penalty
                                      if length_penalty else 1.0)
        pick = xp.argmax(final.reshape(batch, k), 1) + xp.arange(batch) * k
        # follow the back-pointers from the last step to the first
        idx = pick
        toks, alphas = [], []
        for origin, tok, alpha in reversed(history):
            toks.append(tok[idx])
            alphas.append(alpha[idx] if alpha is not None else None)
            idx = origin[idx]
        return self._results(xp, toks[::-1], alphas[::-1], return_attention)

    def _results(self, xp: Any, tokens: list, alphas: list, return_attention: bool) -> Any:
        """Per-step token arrays (B,) -> one token list per sequence, cut at EOS; with
        return_attention, also each sequence's attention rows (up to and including EOS)."""
        seqs = backend.to_numpy(xp.stack(tokens, 1)).tolist()
        results, attn = [], []
        for b, seq in enumerate(seqs):
            n = seq.index(self.eos_idx) if self.eos_idx in seq else len(seq)
            results.append(seq[:n])
            if return_attention and self.attention is not None:
                rows = min(n + 1, len(seq))
                attn.append(backend.to_numpy(xp.stack([a[b] for a in alphas[:rows]], 0)))
        return (results, attn if self.attention is not None else None) if return_attention else results

    def extra_repr(self) -> str:
        return (f"src_vocab_size={self.src_vocab_size}, tgt_vocab_size={self.tgt_vocab_size}, "
                f"encoder_cell='{self.encoder_cell}', decoder_cell='{self.decoder_cell}', "
                f"bidirectional={self.bidirectional}, pad_idx={self.pad_idx}, sos_idx={self.sos_idx}, "
                f"eos_idx={self.eos_idx}")


__all__ = ["Seq2Seq", "Encoded"]
