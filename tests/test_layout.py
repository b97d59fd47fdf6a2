"""The shape of the package: imports point one way, the healthy library names no fault, and the
few imports made inside functions are the ones that must be (optional or GPU-only code)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tensorlite import faults

PKG = Path(__file__).resolve().parents[1] / "tensorlite"

# Lower layers first; a module may import from its own layer or a lower one. The layers follow
# DESIGN.md, with what the code adds: functional sits below tensor (Tensor's operators are
# one-liners into functional, which reaches the Tensor class through a binding tensor.py sets),
# and the small leaf modules sit where their imports put them.
LAYERS = [
    {"_version", "_docs", "backend", "options"},
    {"autograd", "random", "kernels", "amp", "cuda"},
    {"functional", "ops"},
    {"tensor"},
    {"creation", "gradcheck", "checkpoint", "runlog", "generate", "decode", "reference"},
    {"nn", "optim", "data", "utils"},
    {"faults"},
    {"train"},
    {"debug"},
    {"cli", "benchmarks", "__init__", "__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}

# debug modules a hand-written (PyTorch) loop uses: nothing of tensorlite's own training in them
TRAIN_FREE = {"metrics", "probes", "recorder", "attention_maps", "diagnose", "dashboard"}

# The healthy library: no fault may be named in it.
HEALTHY = ["functional.py", "nn", "optim", "data", "train"]


def modules():
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path):
    """``(imported module, line, inside a function)`` for every tensorlite import of a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import functional` imports the submodule; `from .tensor import Tensor` the module
            targets = {f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names}
        elif isinstance(node, ast.Import):
            targets = {a.name for a in node.names}
        else:
            continue
        for t in sorted(targets):
            if t in MODULES:
                yield t, node.lineno, id(node) in in_function


MODULES = modules()


def component(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_component_has_a_layer():
    assert {component(m) for m in MODULES} <= set(LAYER)


def test_imports_point_one_way():
    wrong = []
    for name, path in MODULES.items():
        for target, line, _ in imports(name, path):
            if LAYER[component(target)] > LAYER[component(name)]:
                wrong.append(f"{path.relative_to(PKG.parent)}:{line} {name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_tools_for_any_training_loop_import_nothing_of_ours():
    def reach(name, seen):
        for target, _, _ in imports(name, MODULES[name]):
            if target not in seen:
                seen.add(target)
                if target.startswith("tensorlite.debug."):
                    reach(target, seen)
        return seen

    for leaf in TRAIN_FREE:
        reached = reach(f"tensorlite.debug.{leaf}", set())
        bad = sorted(t for t in reached if component(t) in ("train", "faults", "cli"))
        assert not bad, f"tensorlite.debug.{leaf} reaches {bad}"


def test_no_late_import_of_our_own_modules():
    # Imports inside functions are for optional or GPU-only code (CuPy kernels) and for the
    # lazy top-level namespace; never to dodge an import cycle.
    allowed = {("tensorlite.kernels.matmul", "tensorlite.kernels.cuda")}
    late = [f"{MODULES[n].relative_to(PKG.parent)}:{line} imports {t}"
            for n, p in MODULES.items() if n != "tensorlite"
            for t, line, inside in imports(n, p) if inside and (n, t) not in allowed]
    assert not late, "\n".join(late)


@pytest.mark.parametrize("where", HEALTHY)
def test_the_healthy_library_names_no_fault(where):
    names = "|".join(map(re.escape, faults.names()))
    found = []
    for path in sorted((PKG / where).rglob("*.py") if (PKG / where).is_dir() else [PKG / where]):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(rf"\b({names})\b", line):
                found.append(f"{path.relative_to(PKG.parent)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_layout_test_sees_imports():
    # the walker resolves relative imports (a test that finds nothing would pass on anything)
    got = {t for t, _, _ in imports("tensorlite.train.build", MODULES["tensorlite.train.build"])}
    assert {"tensorlite.faults", "tensorlite.nn", "tensorlite.train.config"} <= got



@pytest.mark.parametrize("name", ["nn", "optim", "data", "debug", "train", "generate", "utils", "faults",
                                  "runlog", "checkpoint", "ops", "amp", "cuda", "kernels", "random"])
def test_subpackages_are_reachable_from_the_top_level(name):
    # `tl.faults.inject(...)` works after a bare `import tensorlite as tl`, as `torch.nn` does;
    # a fresh interpreter, so that no earlier test's import hides a missing entry
    code = f"import tensorlite as tl; assert tl.{name}.__name__ == 'tensorlite.{name}'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
