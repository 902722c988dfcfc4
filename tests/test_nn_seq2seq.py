"""Encoder-decoder model (tinygrad_rnn/nn/seq2seq.py): shapes with T_x != T_y for every cell,
direction and attention choice, padding independence, teacher forcing, greedy = beam search with
k=1, beam search = exhaustive search when the beam holds every hypothesis, a tiny model overfitting
a few pairs, gradient flow, errors, and the example script's --smoke run."""
import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.errors import DTypeError, ShapeError
from tinygrad_rnn.nn.attention import GeneralAttention
from tinygrad_rnn.nn.seq2seq import Seq2Seq

PAD, SOS, EOS = 0, 1, 2
SRC = np.array([[3, 4, 5, 6, 7], [5, 6, 7, 0, 0], [8, 0, 0, 0, 0]])   # T_x = 5, padded
TGT = np.array([[3, 4, 2], [5, 2, 0], [4, 4, 2]])                     # T_y = 3, ends with eos


def small(**kw):
    opts = dict(embed_size=6, hidden_size=5, max_len=6)
    opts.update(kw)
    return Seq2Seq(9, 7, **opts)


CONFIGS = [
    dict(encoder_cell="gru"),
    dict(encoder_cell="lstm", bidirectional=True, attention="general"),
    dict(encoder_cell="rnn", decoder_cell="lstm", bidirectional=True, num_layers=2),
    dict(encoder_cell="lstm", decoder_cell="gru", attention="dot"),
    dict(encoder_cell="gru", decoder_cell="rnn", attention=None, num_layers=2),
    dict(encoder_cell="lstm", attention="scaled_dot", num_layers=2),
]


def ids(c):
    return "-".join(f"{k}={v}" for k, v in c.items())


# ======================================================================================= shapes
@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
def test_shapes_with_different_input_and_output_lengths(cfg):
    model = small(**cfg)
    logits, alpha = model(SRC, TGT, return_attention=True)
    assert logits.shape == (3, 3, 7)                     # (B, T_y, tgt_vocab)
    if cfg.get("attention", "additive") is None:
        assert alpha is None
    else:
        assert alpha.shape == (3, 3, 5)                  # (B, T_y, T_x)
        np.testing.assert_allclose(alpha.numpy().sum(-1), 1.0, rtol=1e-5)
        assert (alpha.numpy()[1, :, 3:] == 0).all() and (alpha.numpy()[2, :, 1:] == 0).all()
    long_tgt = np.full((3, 8), 4)
    assert model(SRC[:, :2], long_tgt).shape == (3, 8, 7)  # T_x = 2 < T_y = 8


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=ids)
def test_padding_does_not_change_the_result(cfg):
    """A sequence gives the same logits alone and inside a padded batch (encoder lengths + mask)."""
    model = small(**cfg)
    alone = model(SRC[1:2, :3], TGT[1:2]).numpy()
    batch = model(SRC, TGT).numpy()[1:2]
    np.testing.assert_allclose(batch, alone, rtol=1e-5, atol=1e-6)
    more_pad = model(np.pad(SRC, ((0, 0), (0, 3))), TGT).numpy()[1:2]
    np.testing.assert_allclose(more_pad, alone, rtol=1e-5, atol=1e-6)
    explicit = model(np.pad(SRC, ((0, 0), (0, 3)), constant_values=8), TGT, src_lengths=[5, 3, 1])
    np.testing.assert_allclose(explicit.numpy()[1:2], alone, rtol=1e-5, atol=1e-6)


def test_parameter_names_and_gradients_reach_every_parameter():
    model = small(encoder_cell="lstm", bidirectional=True)
    names = [n for n, _ in model.named_parameters()]
    for n in ("src_embed.weight", "tgt_embed.weight", "encoder.weight_ih_l0_reverse", "bridge.weight",
              "bridge_c.weight", "attention.W.weight", "attention.U.weight", "attention.v.weight",
              "decoder.0.weight_ih", "out.weight"):
        assert n in names
    assert tuple(model.decoder[0].weight_ih.shape) == (4 * 5, 6 + 2 * 5)   # [E y; c_i] -> 4 gates
    model.loss(SRC, TGT, teacher_forcing_ratio=0.5).backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), n
        assert np.abs(p.grad.numpy()).sum() > 0, n


def test_loss_is_cross_entropy_without_padding():
    model = small()
    logits = model(SRC, TGT).numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    mask = TGT != PAD
    picked = np.take_along_axis(logp, TGT[..., None], -1)[..., 0]
    np.testing.assert_allclose(model.loss(SRC, TGT).item(), -picked[mask].mean(), rtol=1e-5)


# ============================================================================ teacher forcing
def test_teacher_forcing_ratio_zero_feeds_back_the_predictions():
    model = small(encoder_cell="lstm")
    free = model(SRC, TGT, teacher_forcing_ratio=0.0).numpy()
    pred = free.argmax(-1)                        # what the model fed itself at steps 1 and 2
    forced = model(SRC, pred, teacher_forcing_ratio=1.0).numpy()
    np.testing.assert_allclose(forced, free, rtol=1e-5, atol=1e-6)
    teacher = model(SRC, TGT).numpy()
    assert not np.allclose(teacher[:, 1:], free[:, 1:])     # different inputs after step 0
    np.testing.assert_allclose(teacher[:, 0], free[:, 0], rtol=1e-6)   # step 0 is fed <sos>


def test_teacher_forcing_ratio_mixes_steps():
    model = small()
    tg.manual_seed(3)
    out = model(SRC, np.full((3, 12), 4), teacher_forcing_ratio=0.5).numpy()
    full = model(SRC, np.full((3, 12), 4)).numpy()
    same = [np.allclose(out[:, i], full[:, i]) for i in range(12)]
    assert same[0] and not all(same)


# =================================================================================== decoding
@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
def test_beam_search_with_k1_equals_greedy(cfg):
    model = small(**cfg)
    g, ga = model.greedy(SRC, return_attention=True)
    b, ba = model.beam_search(SRC, beam_size=1, return_attention=True)
    assert g == b
    if ga is None:
        assert ba is None
    else:
        for x, y in zip(ga, ba):
            np.testing.assert_allclose(x, y, rtol=1e-6)


def test_greedy_respects_eos_and_max_len():
    model = small(encoder_cell="gru")
    out, attn = model.greedy(SRC, max_len=4, return_attention=True)
    assert all(len(o) <= 4 and EOS not in o for o in out)
    for o, a in zip(out, attn):
        assert a.shape[0] in (len(o), len(o) + 1) and a.shape[1] == 5
    with tg.no_grad():
        model.out.bias.data[:] = -100.0
        model.out.bias.data[EOS] = 100.0
    assert model.greedy(SRC) == [[], [], []]
    assert model.beam_search(SRC, beam_size=3) == [[], [], []]
    with tg.no_grad():
        model.out.bias.data[EOS] = -100.0
        model.out.bias.data[5] = 100.0
    assert model.greedy(SRC, max_len=3) == [[5, 5, 5]] * 3
    assert model.beam_search(SRC, beam_size=2, max_len=3) == [[5, 5, 5]] * 3
    assert model.greedy(SRC[:1])[0] == [5] * 6                        # the model's default max_len


def _sequence_log_prob(model, src, seq):
    logits = model(src, np.array([seq])).numpy()[0]
    logp = logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
    return sum(logp[i, t] for i, t in enumerate(seq))


def test_beam_search_finds_the_most_probable_output_when_the_beam_holds_all():
    """Vocabulary {pad, sos, eos, 3, 4}, max_len 3: 85 outputs are possible and a beam of 85 keeps
    every hypothesis, so beam search must return argmax_y log p(y | x), found here by enumerating
    all of them and scoring each with the teacher-forced forward pass. Batched over 3 sources."""
    tg.manual_seed(5)
    model = Seq2Seq(9, 5, embed_size=4, hidden_size=4, max_len=3, encoder_cell="lstm")
    with tg.no_grad():
        for p in model.parameters():
            p.data *= 3.0                       # sharper distributions: a unique best output
        model.out.bias.data[EOS] -= 2.0         # ... that is not always the empty one
    toks = [0, 1, 3, 4]
    cands = [list(c) + [EOS] for n in range(3) for c in itertools.product(toks, repeat=n)]
    cands += [list(c) for c in itertools.product(toks, repeat=3)]
    assert len(cands) == 85
    best = []
    for b in range(len(SRC)):
        scores = {tuple(c): _sequence_log_prob(model, SRC[b:b + 1], c) for c in cands}
        best.append([t for t in max(scores, key=scores.get) if t != EOS])
    assert model.beam_search(SRC, beam_size=85) == best
    assert model.greedy(SRC) != best            # here greedy misses it: the search matters


def test_length_penalty_prefers_longer_outputs():
    model = small()
    a = model.beam_search(SRC, beam_size=4, max_len=5, length_penalty=0.0)
    b = model.beam_search(SRC, beam_size=4, max_len=5, length_penalty=2.0)
    assert all(len(y) >= len(x) for x, y in zip(a, b))


# =================================================================================== training
@pytest.mark.parametrize("cfg", [dict(encoder_cell="gru", bidirectional=True),
                                 dict(encoder_cell="lstm", attention="general")], ids=ids)
def test_tiny_model_overfits_a_few_pairs(cfg):
    tg.manual_seed(0)
    src = np.array([[3, 4, 5, 0], [6, 7, 0, 0], [8, 3, 6, 7]])
    tgt = np.array([[5, 4, 3, 2, 0], [6, 6, 6, 6, 2], [4, 2, 0, 0, 0]])   # T_y != T_x
    model = Seq2Seq(9, 7, embed_size=8, hidden_size=12, max_len=6, **cfg)
    opt = tg.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    expect = [[5, 4, 3], [6, 6, 6, 6], [4]]
    assert model.greedy(src) == expect
    assert model.beam_search(src, beam_size=3) == expect


def test_state_dict_round_trip(tmp_path):
    model = small(encoder_cell="lstm", bidirectional=True)
    tg.save(model.state_dict(), tmp_path / "m.npz")
    other = small(encoder_cell="lstm", bidirectional=True)
    other.load_state_dict(tg.load(tmp_path / "m.npz"))
    assert other.greedy(SRC) == model.greedy(SRC)


def test_custom_attention_module_and_double():
    model = small(attention=GeneralAttention(5, 5)).double()
    logits = model(SRC, TGT)
    assert logits.dtype == np.float64


def test_device(device):
    model = small(encoder_cell="lstm", bidirectional=True).to(device=device)
    loss = model.loss(SRC, TGT)
    loss.backward()
    dev = tg.backend.normalize_device(device)  # the canonical form: "cuda" -> "cuda:0"
    assert loss.device == dev and model.out.weight.grad.device == dev
    assert model.greedy(SRC) == model.beam_search(SRC, beam_size=1)


# ===================================================================================== errors
def test_errors_are_clear():
    model = small()
    with pytest.raises(ShapeError, match=r"src has batch size 3 but tgt has shape \(2, 3\)"):
        model(SRC, TGT[:2])
    with pytest.raises(ShapeError, match=r"src has shape \(5,\), expected \(B, T\).*src\[None\]"):
        model(SRC[0], TGT)
    with pytest.raises(DTypeError, match="integer token ids"):
        model(SRC.astype(float), TGT)
    with pytest.raises(ShapeError, match="rectangular"):
        model.greedy([[3, 4], [5]])
    with pytest.raises(ShapeError, match=r"source sequence 1 has length 0"):
        model(np.array([[3, 4], [0, 0]]), TGT[:2])
    with pytest.raises(ShapeError, match="got 2 src_lengths for src of shape"):
        model(SRC, TGT, src_lengths=[1, 2])
    with pytest.raises(ValueError, match="teacher_forcing_ratio must be a number in"):
        model(SRC, TGT, teacher_forcing_ratio=1.5)
    with pytest.raises(ValueError, match="beam_size must be a positive int"):
        model.beam_search(SRC, beam_size=0)
    with pytest.raises(IndexError, match="out of range"):
        model(SRC + 10, TGT)
    with pytest.raises(ShapeError, match="use attention='general' or 'additive'"):
        small(bidirectional=True, attention="dot")
    with pytest.raises(ValueError, match="encoder_cell must be one of"):
        small(encoder_cell="transformer")
    with pytest.raises(ValueError, match=r"eos_idx = 9 must be a token id in 0..6"):
        small(eos_idx=9)
    with pytest.raises(ValueError, match="three different token ids"):
        small(sos_idx=0)
    with pytest.raises(TypeError, match="attention must be"):
        small(attention=3)


# ==================================================================================== example
def test_example_smoke(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / "examples" / "seq2seq_attention.py"
    spec = importlib.util.spec_from_file_location("seq2seq_attention_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--smoke", "--out", str(tmp_path), "--seed", "1"])
    assert 0.0 <= res["greedy_accuracy"] <= 1.0 and 0.0 <= res["beam_accuracy"] <= 1.0
    if res["heatmap"] is not None:                       # None only without matplotlib
        assert (tmp_path / "attention_heatmap.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["metrics"]["steps"] == res["steps"]
    if res["decoder_step"] is None:
        assert (tmp_path / "decoder_step.gv").exists()
    else:
        assert Path(res["decoder_step"]).stat().st_size > 1000
    out = capsys.readouterr().out
    assert "greedy" in out and "beam search" in out


# ====================================================== detect_anomaly (issue 12: no false alarm)
@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
def test_padded_training_step_and_decoding_run_under_detect_anomaly(cfg):
    tg.manual_seed(0)
    model = small(**cfg)
    opt = tg.optim.Adam(model.parameters(), lr=0.01)
    with tg.detect_anomaly():
        for _ in range(2):
            loss = model.loss(SRC, TGT)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert np.isfinite(loss.item())
        assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters())
        model.greedy(SRC)
        model.beam_search(SRC, beam_size=2)
