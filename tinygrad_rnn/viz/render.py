"""Turn DOT text into SVG/PNG/PDF files with whatever Graphviz renderer this machine has.

Order: the system Graphviz `dot` (on PATH), then the pip package `graphviz-pure` (its
`graphviz-pure` command, a dot-compatible binary: `pip install "tinygrad-rnn[render]"`), else a
`RenderError` that says what to install, after writing the DOT source next to the requested file.
`GraphDigraph` is the `graphviz.Digraph` that viz.draw_graph returns: its `pipe`, `render` and
Jupyter display use the same fallback. This module renders DOT text only; drawing tensors is
viz.draw's job (viz.render, the public function, draws them first when given tensors).
Imports: graphviz, errors, the standard library.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import graphviz

from ..errors import TinygradRNNError

FORMATS = ("svg", "png", "pdf")
_INSTALL = ('install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install '
            'graphviz; conda: conda install graphviz) or the pip renderer: '
            'pip install "tinygrad-rnn[render]" (the graphviz-pure package)')


class RenderError(TinygradRNNError, RuntimeError):
    """No renderer, an unsupported format, or the renderer failed."""


def system_dot() -> str | None:
    """Path of the system Graphviz `dot`, or None."""
    return shutil.which("dot")


def pip_renderer() -> str | None:
    """Path of the `graphviz-pure` command (pip package graphviz-pure), or None. pip may put it in
    this interpreter's scripts folder without that folder being on PATH, so look there too."""
    found = shutil.which("graphviz-pure")
    if found:
        return found
    exe = "graphviz-pure.exe" if os.name == "nt" else "graphviz-pure"
    dirs = {sysconfig.get_path("scripts"), os.path.dirname(sys.executable)}
    try:
        dirs.add(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for d in sorted(x for x in dirs if x):
        cand = os.path.join(d, exe)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def find_renderer(prefer: str = "auto") -> tuple[str, str] | None:
    """(kind, executable) of the renderer to use: kind is "dot" or "graphviz-pure".

    prefer: "auto" (system dot first), "dot" or "graphviz-pure" (only that one), or a path to a
    dot-compatible executable. The environment variable TINYGRAD_RNN_RENDERER sets the default."""
    prefer = os.environ.get("TINYGRAD_RNN_RENDERER", prefer) if prefer == "auto" else prefer
    if prefer not in ("auto", "dot", "graphviz-pure"):
        path = shutil.which(prefer) or (prefer if os.path.isfile(prefer) else None)
        if path is None:
            raise RenderError(f"render: renderer {prefer!r} was not found; pass 'auto', 'dot', "
                              f"'graphviz-pure' or the path of a dot-compatible program")
        return ("graphviz-pure" if "graphviz-pure" in os.path.basename(path) else "dot", path)
    if prefer in ("auto", "dot"):
        d = system_dot()
        if d:
            return ("dot", d)
    if prefer in ("auto", "graphviz-pure"):
        p = pip_renderer()
        if p:
            return ("graphviz-pure", p)
    return None


def _check_format(fmt: str, kind: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise RenderError(f"render: format {fmt!r} is not supported; use one of {FORMATS}")
    if fmt == "pdf" and kind == "graphviz-pure":
        raise RenderError("render: the graphviz-pure renderer cannot write PDF yet; write 'svg' or "
                          "'png', or install the system Graphviz (apt-get install graphviz) for PDF")
    return fmt


def run_renderer(source: str, fmt: str = "svg", prefer: str = "auto", timeout: float = 120) -> bytes:
    """Render DOT text to bytes in `fmt`."""
    found = find_renderer(prefer)
    if found is None:
        raise RenderError(f"render: no Graphviz renderer found. To draw graphs, {_INSTALL}. "
                          f"The DOT text is available as graph.source")
    kind, exe = found
    fmt = _check_format(fmt, kind)
    try:
        res = subprocess.run([exe, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RenderError(f"render: running {exe} failed: {e}") from None
    if res.returncode != 0 or not res.stdout:
        err = res.stderr.decode("utf-8", "replace").strip()
        raise RenderError(f"render: {kind} ({exe}) failed with exit code {res.returncode}: {err}")
    return res.stdout


def write(graph: Any, path: str | os.PathLike, format: str | None = None,  # noqa: A002
          renderer: str = "auto") -> Path:
    """Render `graph` (a `graphviz.Digraph`/`Source`, or DOT text) to `path` and return the path.
    format: "svg", "png" or "pdf"; by default taken from the file suffix, else "svg". When no
    renderer is installed, the DOT source is written to `path` with suffix ".gv" and a RenderError
    says what to install."""
    source = graph if isinstance(graph, str) else graph.source
    out = Path(path)
    fmt = format or (out.suffix.lstrip(".") if out.suffix else "svg")
    if not out.suffix:
        out = out.with_suffix(f".{fmt}")
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise RenderError(f"render: format {fmt!r} is not supported; use one of {FORMATS}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = run_renderer(source, fmt, renderer)
    except RenderError as e:
        gv = out.with_suffix(".gv")
        gv.write_text(source, encoding="utf-8")
        raise RenderError(f"{e}. The DOT source was written to {gv}") from None
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


class GraphDigraph(graphviz.Digraph):
    """A `graphviz.Digraph` whose rendering (`pipe`, `render`, Jupyter display) falls back to the
    pip-installable renderer when the system Graphviz `dot` is missing."""

    def pipe(self, format: str | None = None, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        if system_dot() is not None or args:
            return super().pipe(format, *args, **kwargs)
        data = run_renderer(self.source, format or self.format or "svg")
        enc = kwargs.get("encoding")
        return data.decode(enc) if enc else data

    def render(self, filename: Any = None, directory: Any = None, view: bool = False,
               cleanup: bool = False, format: str | None = None, *args: Any, **kwargs: Any) -> str:  # noqa: A002
        if system_dot() is not None or args or view:
            return super().render(filename, directory, view, cleanup, format, *args, **kwargs)
        fmt = format or self.format or "pdf"
        src = self.save(filename, directory=directory)
        out = kwargs.get("outfile") or f"{src}.{fmt}"
        write(self, out, format=fmt)
        if cleanup:
            os.remove(src)
        return os.fspath(out)
