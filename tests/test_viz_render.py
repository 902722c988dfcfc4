"""viz.render: real SVG/PNG files from the system `dot` or the pip renderer (graphviz-pure), and a
clear error (with the DOT source written) when neither is installed."""
import importlib
import xml.etree.ElementTree as ET

import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, viz
R = importlib.import_module("tinygrad_rnn.viz.render")  # viz.render is the function

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RENDERERS = {"dot": R.system_dot(), "graphviz-pure": R.pip_renderer()}
ANY = next((k for k, v in RENDERERS.items() if v), None)
needs_renderer = pytest.mark.skipif(
    ANY is None, reason="no Graphviz renderer: apt-get install graphviz, or pip install graphviz-pure")


def small_graph(T=3):
    rnn = nn.RNN(2, 3)
    out, _ = rnn(tg.randn(T, 1, 2))
    loss = out.sum()
    return viz.draw_graph(loss, model={"rnn": rnn}), loss


@pytest.mark.parametrize("kind", sorted(RENDERERS))
def test_svg_and_png_are_valid_files(tmp_path, kind):
    if RENDERERS[kind] is None:
        pytest.skip(f"{kind} is not installed")
    g, _ = small_graph()
    svg = viz.render(g, tmp_path / "g.svg", renderer=kind)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "t = 0" in text and "t = 2" in text and "rnn.weight_hh_l0" in text
    png = viz.render(g, tmp_path / "g.png", renderer=kind)
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    # IHDR width/height are positive
    assert int.from_bytes(data[16:20], "big") > 50 and int.from_bytes(data[20:24], "big") > 20


@needs_renderer
def test_render_draws_tensors_and_infers_the_format(tmp_path):
    _, loss = small_graph()
    out = viz.render(loss, tmp_path / "sub" / "loss", format="png", cluster=None)
    assert out.suffix == ".png" and out.read_bytes()[:8] == PNG_MAGIC
    out = viz.render([loss], tmp_path / "loss.svg", collapse=1)
    assert ET.parse(out).getroot().tag.endswith("svg")
    with pytest.raises(TypeError, match="draw_graph"):
        viz.render(viz.draw_graph(loss), tmp_path / "x.svg", collapse=1)


@needs_renderer
def test_digraph_pipe_and_jupyter_display():
    g, _ = small_graph()
    svg = g.pipe(format="svg")
    assert b"<svg" in svg
    assert "<svg" in g._repr_mimebundle_()["image/svg+xml"]


def test_pip_renderer_fallback_when_system_dot_is_missing(tmp_path, monkeypatch):
    if RENDERERS["graphviz-pure"] is None:
        pytest.skip("graphviz-pure is not installed (pip install graphviz-pure)")
    monkeypatch.setattr(R, "system_dot", lambda: None)
    assert R.find_renderer()[0] == "graphviz-pure"
    g, _ = small_graph()
    assert b"<svg" in g.pipe(format="svg")
    out = g.render(str(tmp_path / "fallback"), format="png")
    assert open(out, "rb").read(8) == PNG_MAGIC
    with pytest.raises(viz.RenderError, match="PDF"):
        viz.render(g, tmp_path / "g.pdf")


def test_clear_error_and_dot_source_without_any_renderer(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "system_dot", lambda: None)
    monkeypatch.setattr(R, "pip_renderer", lambda: None)
    monkeypatch.delenv("TINYGRAD_RNN_RENDERER", raising=False)
    g, _ = small_graph()
    with pytest.raises(viz.RenderError) as err:
        viz.render(g, tmp_path / "graph.png")
    msg = str(err.value)
    assert "apt-get install graphviz" in msg and "tinygrad-rnn[render]" in msg
    gv = tmp_path / "graph.gv"
    assert gv.exists() and gv.read_text() == g.source and str(gv) in msg
    assert not (tmp_path / "graph.png").exists()


def test_bad_format_and_renderer(tmp_path):
    g, _ = small_graph()
    with pytest.raises(viz.RenderError, match="format"):
        viz.render(g, tmp_path / "g.jpg")
    with pytest.raises(viz.RenderError, match="not found"):
        viz.render(g, tmp_path / "g.svg", renderer="/no/such/dot")
