"""The docs cannot rot: every ```python block in README.md and docs/*.md runs as a standalone
script (its own process, a temporary working directory), and docs/api.md names every public name.

A block that truly cannot run here (it needs a GPU, say) is skipped by putting the HTML comment
`<!-- skip-test -->` (optionally `<!-- skip-test: reason -->`) on the line before its fence.
Blocks in other languages (```bash, ```text, plain ```) are not run.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim, viz

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
SKIP = re.compile(r"<!--\s*skip-test(?::\s*(.*?))?\s*-->")
BLOCK_TIMEOUT_S = 120  # generous: a block is a snippet, the slowest take a few seconds


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line of the opening fence, code, skip reason or None) for each ```python block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        start = i
        i += 1
        body = []
        while i < len(lines) and not re.match(rf"^{indent}```\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        if lang not in ("python", "py"):
            continue
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        skip = SKIP.search(lines[prev]) if prev >= 0 else None
        reason = (skip.group(1) or "marked <!-- skip-test --> in the page") if skip else None
        blocks.append((start + 1, "\n".join(body) + "\n", reason))
    return blocks


def _cases() -> list:
    cases = []
    for path in DOC_FILES:
        if not path.exists():
            continue
        for line, code, reason in python_blocks(path):
            rel = path.relative_to(ROOT).as_posix()
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(path, line, code, id=f"{rel}:{line}", marks=marks))
    return cases


@pytest.mark.parametrize("path,line,code", _cases())
def test_code_block_runs(path: Path, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MPLBACKEND"] = "Agg"  # plots go to files, never to a window
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=BLOCK_TIMEOUT_S)
    if res.returncode != 0:
        rel = path.relative_to(ROOT).as_posix()
        pytest.fail(f"the python block at {rel}:{line} failed (exit {res.returncode}).\n"
                    f"--- code ---\n{code}--- stdout ---\n{res.stdout[-3000:]}\n"
                    f"--- stderr ---\n{res.stderr[-3000:]}", pytrace=False)


def test_block_parser(tmp_path: Path) -> None:
    """The parser finds python blocks, honours skip markers and ignores other languages."""
    page = ("text\n```python\nprint(1)\n```\n<!-- skip-test: needs a GPU -->\n\n```python\n"
            "x = 1\n```\n```bash\nls\n```\n   ```python\n   y = 2\n   ```\n")
    p = tmp_path / "page.md"
    p.write_text(page, encoding="utf-8")
    blocks = python_blocks(p)
    assert [(b[0], b[1], b[2]) for b in blocks] == [
        (2, "print(1)\n", None), (7, "x = 1\n", "needs a GPU"), (13, "y = 2\n", None)]


def test_every_page_has_runnable_code() -> None:
    """Guard against a parser bug that silently finds nothing."""
    assert len(_cases()) >= 20


# ================================================================================ API coverage
def _defined_in(module: types.ModuleType) -> list[str]:
    """Public functions and classes defined in `module` itself (for modules without __all__)."""
    return sorted(n for n, o in vars(module).items()
                  if not n.startswith("_") and (inspect.isfunction(o) or inspect.isclass(o))
                  and getattr(o, "__module__", None) == module.__name__)


def public_names() -> dict[str, list[str]]:
    """Documentation prefix -> public names that docs/api.md must mention as `prefix.name`."""
    import tinygrad_rnn.nn.functional as functional
    import tinygrad_rnn.nn.init as init
    import tinygrad_rnn.nn.utils as utils

    names = {
        "tg.": list(tg.__all__),
        "nn.": list(nn.__all__),
        "F.": getattr(functional, "__all__", None) or _defined_in(functional),
        "nn.init.": getattr(init, "__all__", None) or _defined_in(init),
        "nn.utils.": list(getattr(utils, "__all__", None) or _defined_in(utils)),
        "optim.": list(optim.__all__),
        "viz.": list(viz.__all__),
        "Tensor.": sorted(n for n in dir(tg.Tensor) if not n.startswith("_")),
    }
    return names


def test_api_reference_covers_every_public_name() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [f"{prefix}{name}" for prefix, names in public_names().items() for name in names
               if not re.search(r"`" + re.escape(prefix + name) + r"(?![\w])", text)]
    assert not missing, (f"docs/api.md does not document these public names (write each as "
                         f"`prefix.name`, e.g. `tg.zeros(...)`): {missing}")


def test_api_reference_names_exist() -> None:
    """Every `tg.x`, `nn.x`, `F.x`, `optim.x`, `viz.x`, `Tensor.x` written in api.md exists."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    import tinygrad_rnn.nn.functional as functional

    roots = {"tg": tg, "nn": nn, "F": functional, "optim": optim, "viz": viz, "Tensor": tg.Tensor}
    wrong = []
    for m in re.finditer(r"`(tg|nn|F|optim|viz|Tensor)((?:\.\w+)+)", text):
        obj = roots[m.group(1)]
        for part in m.group(2).split(".")[1:]:
            if not hasattr(obj, part) and isinstance(obj, types.ModuleType):
                try:  # a submodule not imported yet (nn.attention, nn.seq2seq)
                    importlib.import_module(f"{obj.__name__}.{part}")
                except ImportError:
                    pass
            if not hasattr(obj, part):
                wrong.append(m.group(1) + m.group(2))
                break
            obj = getattr(obj, part)
    assert not wrong, f"docs/api.md mentions names that do not exist: {sorted(set(wrong))}"
