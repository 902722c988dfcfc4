"""Layering of the package (architecture.md §2.2): a module imports only from layers below it;
CuPy is imported by backend.py alone; op and engine code never imports NumPy."""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "tinygrad_rnn"

LAYER = {
    "errors": 0, "backend": 0,
    "tensor": 1, "autograd": 1,
    "ops": 2, "creation": 2,
    "gradcheck": 3, "serialization": 3, "nn.functional": 3,
    "nn.module": 4, "nn.init": 4, "nn.layers": 4, "nn.rnn": 4, "nn.utils": 4, "optim": 4,
    "nn.attention": 4, "nn.seq2seq": 4,
    "viz": 5, "bench": 5, "demo": 5,
}
NUMPY_FORBIDDEN = {"autograd", "ops", "creation", "nn.functional", "nn.rnn", "nn.layers"}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        name = ".".join(parts)
        yield name, path


def _layer(name):
    for key in sorted(LAYER, key=len, reverse=True):
        if name == key or name.startswith(key + "."):
            return LAYER[key]
    return None


def _imports(path, name):
    tree = ast.parse(path.read_text())
    pkg_parts = name.split(".")[:-1] if not path.name == "__init__.py" else name.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1] if node.level > 1 else pkg_parts
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    for a in node.names:
                        yield "tinygrad_rnn." + ".".join(base + [a.name]).strip("."), node.lineno
                    continue
                yield "tinygrad_rnn." + mod.strip("."), node.lineno
            else:
                yield node.module, node.lineno


MODULES = [(n, p) for n, p in _modules() if n and _layer(n) is not None and not p.name == "__init__.py"]


@pytest.mark.parametrize("name,path", MODULES, ids=[m[0] for m in MODULES])
def test_no_upward_imports(name, path):
    own = _layer(name)
    for mod, line in _imports(path, name):
        if mod.startswith("tinygrad_rnn."):
            target = mod[len("tinygrad_rnn."):]
            lt = _layer(target)
            if lt is not None and target != name:
                assert lt <= own, f"{path.name}:{line} imports {target} (layer {lt}) from layer {own}"


@pytest.mark.parametrize("name,path", MODULES, ids=[m[0] for m in MODULES])
def test_backend_libraries_stay_in_their_place(name, path):
    for mod, line in _imports(path, name):
        if mod.split(".")[0] in ("cupy", "cupyx"):
            assert name == "backend", f"{path.name}:{line} imports {mod}: only backend.py may import CuPy"
        if mod.split(".")[0] == "numpy":
            assert name not in NUMPY_FORBIDDEN, (
                f"{path.name}:{line} imports numpy: op/layer code takes its array module from the data "
                f"(self.xp / backend.array_module) so it runs on CuPy too")


def test_core_never_imports_nn_optim_viz():
    for name, path in MODULES:
        if _layer(name) <= 2:
            for mod, line in _imports(path, name):
                assert not mod.startswith(("tinygrad_rnn.nn", "tinygrad_rnn.optim", "tinygrad_rnn.viz")), \
                    f"{path.name}:{line} imports {mod}"
