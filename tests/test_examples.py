"""The example scripts run: every examples/*.py (except the helper module _common.py, the figure
generator make_figures.py and recorded_runs.py) is imported from its file and its main(argv) is
called with --smoke in a temporary folder. New examples are picked up automatically; the ones the
docs promise but that do not exist yet are skipped. Each run must follow the examples' conventions
(header, "wrote" for every file, results.json, "done in", the progress bar off stdout). Plus checks
of the shared helpers and of char_rnn's exact resume.

Smoke runs only prove that the scripts work end to end; the numbers the examples are about (loss,
accuracy, the memory-task table, run times) come from their real runs, recorded in docs/results/
by examples/recorded_runs.py; the last tests check that README.md and docs/ quote those records.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional (scikit-learn brings it)
    threadpool_limits = None

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOT_EXAMPLES = {"_common.py", "make_figures.py", "recorded_runs.py"}
PROMISED = ["quickstart", "char_rnn", "memory_tasks", "vanishing_gradients", "sequence_classification",
            "seq2seq_attention"]   # the examples docs/examples.md describes
NAMES = sorted(set(PROMISED) | {p.stem for p in EXAMPLES.glob("*.py") if p.name not in NOT_EXAMPLES})


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Run BLAS on one thread, as the examples do when started from the command line (their
    _common module sets OPENBLAS_NUM_THREADS=1, but here NumPy was imported before it). On a busy
    2-core machine multi-threaded BLAS made the slow test below 15x slower (44 s instead of 3 s)."""
    with threadpool_limits(1) if threadpool_limits is not None else contextlib.nullcontext():
        yield


def load(name: str):
    """Import examples/<name>.py as a fresh module (examples/ on sys.path for _common)."""
    path = EXAMPLES / f"{name}.py"
    if not path.exists():
        pytest.skip(f"examples/{name}.py does not exist yet")
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, "main"), f"examples/{name}.py must define main(argv=None)"
    return module


def run_smoke(name: str, out: Path, *extra: str):
    module = load(name)
    try:
        return module.main(["--smoke", "--out", str(out), *extra])
    except SystemExit as e:   # an optional dependency that is not installed: say so, don't fail
        if e.code not in (0, None) and "pip install" in str(e.code):
            pytest.skip(str(e.code))
        raise


RECORD_KEYS = {"example", "command", "smoke", "device", "seed", "date", "seconds", "timings",
               "metrics", "files", "machine", "args"}
MACHINE_KEYS = {"cpu", "cores", "cores_usable", "blas_threads", "gpu", "python", "numpy", "load_start",
                "load_end"}


@pytest.mark.parametrize("name", NAMES)
def test_example_smoke_run(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)            # anything written to a relative path lands here
    out = tmp_path / "out"
    run_smoke(name, out)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written, f"examples/{name}.py --smoke wrote nothing to --out {out}"
    if name.endswith(("_figure", "_figures")):   # scripts that redraw the docs' pictures: no
        return                                     # training, no numbers, no results.json
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    assert lines[0] == f"{name}: device cpu, seed 0, output folder {out} (smoke run)", lines[0]
    assert re.fullmatch(r"done in \d+\.\d s", lines[-1]), lines[-1]
    announced = {Path(line[len("wrote "):]) for line in lines if line.startswith("wrote ")}
    assert set(written) <= announced, f"written but not announced: {set(written) - announced}"
    assert lines[-2] == f"wrote {out / 'results.json'}"
    assert "it/s" not in stdout and "%|" not in stdout, "the progress bar belongs on stderr"

    record = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(record) == RECORD_KEYS
    assert MACHINE_KEYS <= set(record["machine"])
    assert record["example"] == name and record["smoke"] is True
    assert (record["device"], record["seed"]) == ("cpu", 0)
    assert record["command"] == f"python examples/{name}.py --smoke --out {out}"
    assert 0 < record["seconds"] < 600 and record["metrics"]
    assert record["files"][-1] == str(out / "results.json")


# ============================================================================ my examples' results
def test_char_rnn_smoke_learns_and_resumes_exactly(tmp_path, capsys):
    """A run stopped at step 13 and resumed gives the same model as an uninterrupted run: the
    checkpoint holds model, optimizer, RNG, data position and carried state."""
    full = run_smoke("char_rnn", tmp_path / "a", "--steps", "30")
    run_smoke("char_rnn", tmp_path / "b", "--steps", "30", "--stop-at", "13")
    resumed = run_smoke("char_rnn", tmp_path / "b", "--steps", "30", "--resume")
    assert resumed["step"] == full["step"] == 30
    assert resumed["val_loss"] == full["val_loss"]
    assert resumed["sample"] == full["sample"]
    assert full["val_loss"] < math.log(60)        # below the uniform guess over the vocabulary
    assert (tmp_path / "b" / "checkpoint.ckpt").exists()
    assert "resumed from" in capsys.readouterr().out


def test_char_rnn_gru_and_text_file(tmp_path):
    text = tmp_path / "abc.txt"
    text.write_text("abcabcabd " * 400)
    r = run_smoke("char_rnn", tmp_path / "o", "--cell", "gru", "--text", str(text),
                  "--temperature", "0")
    assert set(r["sample"]) <= set("abcd ")


def test_char_rnn_clear_errors(tmp_path):
    module = load("char_rnn")
    with pytest.raises(SystemExit, match="no checkpoint"):
        module.main(["--smoke", "--resume", "--out", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="cannot read --text"):
        module.main(["--smoke", "--text", str(tmp_path / "missing.txt"), "--out", str(tmp_path)])


def test_memory_tasks_smoke_table(tmp_path, capsys):
    r = run_smoke("memory_tasks", tmp_path, "--models", "rnn", "gru", "--lengths", "3", "5")
    assert len(r["results"]) == 2 * 2 * 2        # models x tasks x lengths
    text = capsys.readouterr().out
    assert "adding problem" in text and "cued recall" in text
    assert (tmp_path / "results.json").exists()


def test_memory_task_data():
    import numpy as np
    module = load("memory_tasks")
    rng = np.random.default_rng(0)
    x, y = module.adding_batch(rng, 16, 10)
    assert x.shape == (10, 16, 2) and y.shape == (16, 1)
    assert (x[:, :, 1].sum(0) == 2).all() and (x[:5, :, 1].sum(0) == 1).all()   # one mark per half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(0), rtol=1e-6)
    x, y = module.recall_batch(rng, 16, 10, 4, far=True)
    assert x.shape == (10, 16, 5) and (x[:, :, 4].sum(0) == 1).all()
    cue = x[:, :, 4].argmax(0)
    assert (cue < 5).all()                                                   # far: first half
    assert (x[cue, np.arange(16), :4].argmax(1) == y).all()


@pytest.mark.slow
def test_memory_tasks_gated_cell_beats_vanilla_rnn(tmp_path):
    """The lecture notes' claim, in small: at T=25 the GRU learns the cued recall, the RNN cannot."""
    module = load("memory_tasks")
    r = module.main(["--out", str(tmp_path), "--tasks", "recall", "--models", "rnn", "gru",
                     "--lengths", "25", "--steps", "400"])
    acc = {x["model"]: x["accuracy"] for x in r["results"]}
    assert acc["gru"] > 0.9 and acc["rnn"] < 0.3, acc


def test_sequence_classification_needs_sklearn_message(tmp_path, monkeypatch):
    module = load("sequence_classification")
    monkeypatch.setitem(sys.modules, "sklearn", None)          # makes `import sklearn...` fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(SystemExit, match=r'pip install "tinygrad-rnn\[sklearn\]"'):
        module.main(["--smoke", "--out", str(tmp_path)])


def test_sequence_classification_smoke(tmp_path):
    pytest.importorskip("sklearn")
    r = run_smoke("sequence_classification", tmp_path, "--unidirectional", "--read", "columns")
    assert 0.0 <= r["test_accuracy"] <= 1.0 and math.isfinite(r["test_loss"])
    assert (tmp_path / "model.ckpt").exists()


# ================================================================================ shared helpers
def test_common_parser_setup_and_fallback_bar(tmp_path, capsys, monkeypatch):
    load("char_rnn")                                           # puts examples/ on sys.path
    import _common
    args = _common.make_parser("demo", "doc").parse_args(["--out", str(tmp_path / "x"), "--seed", "3"])
    assert (args.device, args.seed, args.smoke) == ("cpu", 3, False)
    assert _common.make_parser("demo", None).parse_args([]).out == Path("out") / "demo"
    assert _common.setup(args, "demo") == tmp_path / "x" and (tmp_path / "x").is_dir()

    bad = _common.make_parser("demo", None).parse_args(["--device", "tpu", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="demo: device 'tpu' is not understood"):
        _common.setup(bad, "demo")

    monkeypatch.setitem(sys.modules, "tqdm", None)             # as if tqdm were not installed
    bar = _common.progress(total=20, desc="work")
    assert isinstance(bar, _common._Bar)
    for _ in range(20):
        bar.update()
        bar.set_postfix(loss="0.5")
    bar.write("a message")
    bar.close()
    assert list(_common.progress(range(3), desc="it")) == [0, 1, 2]
    captured = capsys.readouterr()
    assert "a message" in captured.out
    assert "work: 100%" in captured.err and "20/20" in captured.err and "loss=0.5" in captured.err


# ===================================================================== docs numbers = recorded runs
def recorded_runs():
    load("char_rnn")                                           # puts examples/ on sys.path
    import recorded_runs as rr
    return rr


def test_recorded_runs_are_real_runs_of_their_commands():
    """docs/results/ holds one full (not --smoke) run per entry of RUNS, made by its command, and
    the other records of OTHER_RECORDS (a figure script's numbers, a benchmark), each naming the
    command that wrote it."""
    rr = recorded_runs()
    kept = {p.stem for p in rr.RESULTS.glob("*.json")}
    known = set(rr.RUNS) | set(rr.OTHER_RECORDS)
    assert kept == known, f"missing: {known - kept}, unknown: {kept - known}"
    for name, command in rr.OTHER_RECORDS.items():
        assert json.loads((rr.RESULTS / f"{name}.json").read_text(encoding="utf-8"))["command"] == command
    for name, (example, *args) in rr.RUNS.items():
        record = json.loads((rr.RESULTS / f"{name}.json").read_text(encoding="utf-8"))
        assert set(record) == RECORD_KEYS and MACHINE_KEYS <= set(record["machine"]), name
        assert record["smoke"] is False and record["example"] == example, name
        assert record["command"] == " ".join(["python", f"examples/{example}.py", *args,
                                               "--out", f"out/{name}"]), name


def test_docs_numbers_agree_with_recorded_runs():
    """Every marked number in README.md and docs/ equals its recorded value: after re-recording,
    `python examples/recorded_runs.py docs` rewrites them."""
    rr = recorded_runs()
    assert rr.stale() == [], "docs disagree with docs/results/ (run examples/recorded_runs.py docs):\n" \
        + "\n".join(rr.stale())
    for doc in rr.DOCS:            # each of these pages quotes at least one recorded number
        assert rr.MARK.search((rr.ROOT / doc).read_text(encoding="utf-8")), doc


TIME = re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|min|seconds|minutes)\b")


def test_no_unrecorded_times_in_docs():
    """A run time in README.md or the docs that quote examples is a recorded one (a marker), never
    typed in by hand; code blocks (commands, program output of the doc's own snippets) aside."""
    rr = recorded_runs()
    for doc in rr.DOCS:
        text = rr.MARK.sub("", (rr.ROOT / doc).read_text(encoding="utf-8"))
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        hits = [line for line in text.splitlines() if TIME.search(line)]
        assert not hits, f"{doc}: times not taken from a recorded run: {hits}"


def test_recorded_runs_render_and_detect_stale_numbers():
    rr = recorded_runs()
    ns = {"a": rr.Record({"seconds": 135.2, "metrics": {"acc": 0.9876, "steps": {"200": 1.5},
                                                        "table": "| x |\n|---|"}}), "runs": "t"}
    doc = ("took <!--{a.seconds|time}-->old<!--/-->, acc <!--{a.metrics.acc:.1%}-->1%<!--/-->, "
           "<!--{a.metrics.steps[200]:.2f}-->?<!--/-->\n<!--{a.metrics.table}--><!--/-->\n")
    assert rr.render(doc, ns) == ("took <!--{a.seconds|time}-->2 min 15 s<!--/-->, acc "
                                  "<!--{a.metrics.acc:.1%}-->98.8%<!--/-->, "
                                  "<!--{a.metrics.steps[200]:.2f}-->1.50<!--/-->\n"
                                  "<!--{a.metrics.table}-->\n\n| x |\n|---|\n\n<!--/-->\n")
    assert rr.render(rr.render(doc, ns), ns) == rr.render(doc, ns)
    assert rr.value("a.seconds|text", ns) == "\n\n```text\n135.2\n```\n\n"
    with pytest.raises(KeyError, match="no such recorded value"):
        rr.value("a.metrics.missing", ns)
