"""Pictures a learner reads at page width: a 6-step LSTM with a cross-entropy loss drawn with the
defaults fits the page, every committed picture fits it too, and every committed graph picture is
what its script draws today (docs/images/figures.json records the DOT each one was rendered from).

The page rule: a picture is at most 2,400 pt wide and tall; a PNG drawn by Graphviz (at its
96 dpi) is therefore at most 3,200 px wide, and no committed PNG is wider. For the LSTM case the
text must also be at least 7 px tall when the picture is scaled to 1,200 px wide.
"""
import hashlib
import importlib.util
import json
import re
import struct
import sys
from pathlib import Path

import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, viz
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.viz.render import find_renderer, run_renderer

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
MAX_PT = 2400
MAX_PNG_PX = MAX_PT * 96 // 72   # Graphviz renders PNG at 96 dpi
needs_renderer = pytest.mark.skipif(find_renderer() is None, reason="no Graphviz renderer")


def svg_size(svg: str) -> tuple[float, float]:
    w, h = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    return float(w), float(h)


def lstm_cross_entropy(steps: int = 6):
    tg.manual_seed(0)
    lstm, head = nn.LSTM(3, 4), nn.Linear(4, 5)
    out, _ = lstm(tg.randn(steps, 2, 3))
    loss = F.cross_entropy(head(out[-1]), [1, 3])
    return {"lstm": lstm, "head": head}, loss


@needs_renderer
@pytest.mark.parametrize("options", [{}, {"show_grads": True, "backward_order": True}])
def test_six_step_lstm_with_cross_entropy_fits_the_page(options):
    model, loss = lstm_cross_entropy(6)
    if options:
        with tg.record_grads():
            loss.backward(retain_graph=True)
    g = viz.draw_graph(loss, model=model, **options)
    svg = run_renderer(g.source, "svg").decode()
    w, h = svg_size(svg)
    assert w <= MAX_PT and h <= MAX_PT, (w, h)
    smallest = min(float(s) for s in re.findall(r'font-size="([\d.]+)"', svg))
    assert smallest * 1200 / w >= 7, (smallest, w)
    # 36 nodes instead of 96 (docs/visualization.md); the inside of a cell is still there: the
    # last step op by op, the others as boxes
    from tinygrad_rnn.viz.draw import _levels
    from tinygrad_rnn.viz.graph import trace
    full = trace(loss, model=model)
    assert (len(full.nodes), len(_levels(full, None, "auto", False).nodes)) == (96, 36)
    assert "f_5⊙c_4" in svg and "i_5⊙g_5" in svg and svg.count("one step: 11 ops") == 5
    assert "cross_entropy</text>" in svg and ">exp</text>" not in svg  # the loss is one box


def committed_pictures() -> list:
    refs = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found = re.findall(r"\(([^)\s]+\.(?:png|svg))\)", doc.read_text())
        refs |= {(doc.parent / m).resolve() for m in found}
    return sorted(refs | set(IMAGES.glob("*.png")) | set(IMAGES.glob("*.svg")))


def test_no_committed_picture_is_wider_than_the_page():
    pics = committed_pictures()
    assert len(pics) >= 15
    for p in pics:
        assert p.exists(), f"{p} is referenced by the docs but missing"
        data = p.read_bytes()
        if p.suffix == ".svg":
            w, h = svg_size(data.decode())
            assert w <= MAX_PT and h <= MAX_PT, f"{p.name}: {w} x {h} pt"
        else:
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            w, h = struct.unpack(">II", data[16:24])
            assert w <= MAX_PNG_PX and h <= MAX_PNG_PX, f"{p.name}: {w} x {h} px"


def load(name: str):
    sys.path.insert(0, str(ROOT / "examples"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_committed_graph_pictures_are_what_their_scripts_draw():
    manifest = json.loads((IMAGES / "figures.json").read_text())
    figs, tut = load("make_figures"), load("tutorial_figures")
    drawn = {**figs.graphs("cpu"), **figs.decoder_step("cpu"), **tut.graphs("cpu")}
    assert len(drawn) == 10
    drawn = {f"{name}.png": graph for name, graph in drawn.items()}
    bidi = load("deep_bidi_figure").deep_bidi_graph()   # a schematic, drawn as PNG and SVG
    drawn.update({"deep_bidi_unroll.png": bidi, "deep_bidi_unroll.svg": bidi})
    for file, graph in drawn.items():
        entry = manifest.get(file)
        assert entry is not None, f"{file} was never drawn into docs/images by its script"
        assert sha256(graph.source.encode()) == entry["dot_sha256"], (
            f"docs/images/{file} is stale: {entry['script']} now draws something else; rerun it")
    for file, entry in manifest.items():
        # the committed picture is the one the script rendered (not an older or hand-made file)
        assert sha256((IMAGES / file).read_bytes()) == entry["png_sha256"], \
            f"{file} differs from its last render"


def test_recorded_gradient_flow_numbers_are_what_make_figures_measures():
    """docs/visualization.md quotes docs/results/gradient_flow.json (through markers that
    tests/test_examples.py checks); the record is what make_figures.py measures today."""
    rec = json.loads((ROOT / "docs" / "results" / "gradient_flow.json").read_text())
    figs = load("make_figures")
    figs.graphs("cpu")       # the flow figure draws from the random stream the graphs leave
    flows, x = figs.flow_models(rec["steps"], rec["hidden"], "cpu")
    nums = figs.flow_numbers(flows, figs.exploding_flow(x, rec["hidden"], "cpu"))
    assert nums.keys() == rec["models"].keys()
    for key, entry in nums.items():
        assert entry.keys() == rec["models"][key].keys(), key
        for q, v in entry.items():
            want = rec["models"][key][q]
            assert v == want if q == "label" else v == pytest.approx(want, rel=1e-3), (key, q, v, want)


@needs_renderer
def test_a_two_layer_bidirectional_lstm_renders_and_fits():
    # (with newrank=true, dot failed on this graph with "trouble in init_rank")
    tg.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    out, _ = lstm(tg.randn(4, 2, 3))
    loss = out.sum()
    with tg.record_grads():
        loss.backward(retain_graph=True)
    g = viz.draw_graph(loss, model={"lstm": lstm}, show_grads=True)
    w, h = svg_size(run_renderer(g.source, "svg").decode())
    assert w <= MAX_PT and h <= MAX_PT, (w, h)
    assert g.source.count("one step: 11 ops") == 15  # 4 loops of 4 steps, one step drawn inside
