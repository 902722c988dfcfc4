"""examples/bptt_tour.ipynb runs from top to bottom without errors (its own cells assert that
autodiff matches the hand-derived BPTT equations), executed by nbclient in a fresh kernel."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "bptt_tour.ipynb"


def _kernel_name() -> str:
    """The notebook's kernel (python3), registered for this interpreter if Jupyter lacks it."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = "python3"
    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        try:
            from ipykernel.kernelspec import install
        except ImportError:
            pytest.skip('no Jupyter kernel "python3" and ipykernel is not installed: '
                        'pip install "tinygrad-rnn[notebook]" (or ".[dev]")')
        install(user=True, kernel_name=name)
    return name


def test_bptt_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat", reason='pip install "tinygrad-rnn[notebook]"')
    nbclient = pytest.importorskip("nbclient", reason='pip install "tinygrad-rnn[notebook]"')
    # the kernel is a child process: make the package importable there even without pip install -e
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name=_kernel_name(),
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on an error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "RNN: max |autodiff - hand BPTT|" in text  # the comparison cells ran and printed
    assert "LSTM: max |autodiff - hand BPTT|" in text
    assert "the terms sum to W_hh.grad" in text
    drawn = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") in ("display_data", "execute_result")
             and ("image/svg+xml" in o.get("data", {}) or "text/plain" in o.get("data", {}))]
    assert len(drawn) >= 2  # the forward and backward graphs were displayed
