"""The runs the docs quote: record them, and regenerate the docs' numbers from the records.

Every number and time in README.md and docs/ that comes from an example is taken from a recorded
run: each example writes `results.json` into its output folder (metrics, wall time, and the machine:
CPU, cores, load average at start and end, BLAS threads, versions, device, seed, date), and the
runs listed in RUNS below are kept under docs/results/<run>.json. OTHER_RECORDS lists the other
records kept there (written by a figure script or a benchmark test) and the command of each.

In the docs, each such number sits between two HTML comments (invisible on the rendered page):

    recall accuracy <!--{quickstart.metrics.accuracy_last:.0%}-->100%<!--/-->

The comment holds a Python format field over the records (`run.key.key[index]:spec`, as in
str.format) and optional filters after `|`: `time` (seconds as "2.5 s" / "3 min 15 s"), `text`
(a fenced text block). `runs` is the table of all recorded runs with their machine and load.

    python examples/recorded_runs.py record            # run every example of RUNS for real, one at
    python examples/recorded_runs.py record char_rnn   #   a time (nice), keep docs/results/*.json
    python examples/recorded_runs.py docs              # rewrite the numbers in the docs
    python examples/recorded_runs.py check             # exit 1 if a doc disagrees with the records

tests/test_examples.py runs `check`'s test, so a doc that disagrees with its recorded run fails CI.
"""
from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common when imported from elsewhere
from _common import fmt_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DOCS = ["README.md", "docs/index.md", "docs/examples.md", "docs/seq2seq.md", "docs/tutorial.md",
        "docs/visualization.md"]

# run name -> the example and its arguments (the default run of each example is named after it)
RUNS: dict[str, list[str]] = {
    "quickstart": ["quickstart"],
    "vanishing_gradients": ["vanishing_gradients"],
    "sequence_classification": ["sequence_classification"],
    "sequence_classification_unidirectional": ["sequence_classification", "--unidirectional"],
    "sequence_classification_columns": ["sequence_classification", "--read", "columns"],
    "sequence_classification_unidirectional_columns": ["sequence_classification", "--unidirectional",
                                                        "--read", "columns"],
    "seq2seq_attention": ["seq2seq_attention"],
    "seq2seq_attention_seed1": ["seq2seq_attention", "--seed", "1"],
    "seq2seq_attention_seed2": ["seq2seq_attention", "--seed", "2"],
    "seq2seq_attention_lstm_general": ["seq2seq_attention", "--cell", "lstm", "--attention", "general"],
    "char_rnn": ["char_rnn"],
    "char_rnn_gru": ["char_rnn", "--cell", "gru"],
    "char_rnn_hidden192": ["char_rnn", "--hidden", "192"],
    "memory_tasks": ["memory_tasks"],
    "memory_tasks_no_clip": ["memory_tasks", "--no-clip"],
}
# Records written by code other than an example run (a figure script, a benchmark test): name ->
# the command that writes docs/results/<name>.json. The docs quote them with the same markers;
# `record` does not run them (the benchmark needs a browser), and the runs table leaves them out.
OTHER_RECORDS: dict[str, str] = {
    "gradient_flow": "python examples/make_figures.py",
    "explorer_bench": "python -m pytest -m bench tests/test_explorer.py",
}
MAX_LIST = 100  # longer lists of numbers (loss curves) stay in out/<run>/results.json only

MARK = re.compile(r"<!--\{(?P<expr>[^}]*)\}-->(?P<value>.*?)<!--/-->", re.S)


# =================================================================================== recording
def _slim(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _slim(x) for k, x in v.items()}
    if isinstance(v, list):
        if len(v) > MAX_LIST and all(isinstance(x, (int, float)) for x in v):
            return f"<{len(v)} numbers, left out: see the run's own results.json>"
        return [_slim(x) for x in v]
    return v


def record(names: list[str]) -> None:
    """Run each named run for real (one at a time, at lower priority) and keep its results.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    nice = ["nice", "-n", "5"] if shutil.which("nice") else []
    for name in names:
        example, *args = RUNS[name]
        out = Path("out") / name
        cmd = [*nice, sys.executable, f"examples/{example}.py", *args, "--out", str(out)]
        print(f"=== {name}: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        rec = json.loads((ROOT / out / "results.json").read_text(encoding="utf-8"))
        (RESULTS / f"{name}.json").write_text(
            json.dumps(_slim(rec), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"kept {RESULTS.relative_to(ROOT) / (name + '.json')}", flush=True)


# ================================================================================== rendering
class Record(dict):
    """A results.json dict whose keys also read as attributes (quickstart.metrics.loss_last);
    integer indices also find string keys (validations[200])."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: Any) -> Any:
        if not dict.__contains__(self, key) and dict.__contains__(self, str(key)):
            key = str(key)
        return _wrap(dict.__getitem__(self, key))


def _wrap(v: Any) -> Any:
    if isinstance(v, dict) and not isinstance(v, Record):
        return Record(v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def runs_table(records: dict[str, Record]) -> str:
    """One row per recorded run: what ran, when, how long, on what machine under what load."""
    rows = ["| run | command | date | wall time | CPU, cores | load average (1 min) at start → end "
            "| BLAS threads | Python, NumPy |", "|---|---|---|---|---|---|---|---|"]
    for name, r in records.items():
        if name not in RUNS:
            continue
        m = r["machine"]
        load = (f"{m['load_start'][0]:.1f} → {m['load_end'][0]:.1f}" if m["load_start"] and m["load_end"]
                else "-")
        blas = ", ".join(f"{k} {v}" for k, v in m["blas_threads"].items()) or "-"
        command = r["command"].replace(f" --out out/{name}", "")
        rows.append(f"| {name} | `{command}` | {r['date']} | {fmt_seconds(r['seconds'])} | "
                    f"{m['cpu']}, {m['cores']} | {load} | {blas} | {m['python']}, {m['numpy']} |")
    return "\n".join(rows)


def load_records() -> dict[str, Any]:
    """The format namespace: every docs/results/<run>.json as a Record, plus `runs` (the table)."""
    records = {p.stem: Record(json.loads(p.read_text(encoding="utf-8")))
               for p in sorted(RESULTS.glob("*.json"), key=lambda p: list(RUNS).index(p.stem)
                               if p.stem in RUNS else len(RUNS))}
    return {**records, "runs": runs_table(records)}


def value(expr: str, ns: dict[str, Any]) -> str:
    """The text of one marker: a format field over the records, then the filters."""
    field, *filters = [s.strip() for s in expr.split("|")]
    name, _, spec = field.partition(":")
    try:
        obj = string.Formatter().get_field(name, (), ns)[0]
    except (KeyError, AttributeError, IndexError, TypeError) as e:
        raise KeyError(f"{{{expr}}}: no such recorded value ({type(e).__name__}: {e})") from None
    text = fmt_seconds(obj) if "time" in filters else format(obj, spec)
    if "text" in filters:
        text = f"```text\n{text}\n```"
    return f"\n\n{text}\n\n" if "\n" in text else text


def render(text: str, ns: dict[str, Any]) -> str:
    """`text` with every marked number replaced by its value from the records."""
    return MARK.sub(lambda m: f"<!--{{{m['expr']}}}-->{value(m['expr'], ns)}<!--/-->", text)


def stale(ns: dict[str, Any] | None = None) -> list[str]:
    """The docs whose marked numbers differ from the records (with the first difference)."""
    ns = load_records() if ns is None else ns
    bad = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for m in MARK.finditer(text):
            want = value(m["expr"], ns)
            if m["value"] != want:
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{doc}:{line}: {{{m['expr']}}} says {m['value'].strip()[:60]!r}, "
                           f"the recorded run {want.strip()[:60]!r}")
    return bad


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("record", "docs", "check"):
        print(__doc__)
        return 2
    if argv[0] == "record":
        unknown = [n for n in argv[1:] if n not in RUNS]
        if unknown:
            raise SystemExit(f"recorded_runs: unknown run(s) {unknown}; known: {', '.join(RUNS)}")
        record(argv[1:] or list(RUNS))
        return 0
    if argv[0] == "docs":
        ns = load_records()
        for doc in DOCS:
            path = ROOT / doc
            old = path.read_text(encoding="utf-8")
            new = render(old, ns)
            if new != old:
                path.write_text(new, encoding="utf-8")
                print(f"updated {doc}")
        return 0
    bad = stale()
    print("\n".join(bad) if bad else "every marked number agrees with docs/results/")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
