"""The layers only call down (estimators -> heads -> backbones -> kernels), and no two modules of
tsk import each other, directly or in a circle (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tsk"
# what each layer may not import (any module under these prefixes)
FORBIDDEN = {
    "tsk.kernels": ("tsk.backbones", "tsk.heads", "tsk.estimators", "tsk.training", "tsk.tuning",
                    "tsk.cli", "tsk.datasets"),
    "tsk.backbones": ("tsk.heads", "tsk.estimators", "tsk.training", "tsk.tuning", "tsk.cli",
                      "tsk.datasets"),
    "tsk.heads": ("tsk.estimators", "tsk.training", "tsk.tuning", "tsk.cli"),
    "tsk.datasets": ("tsk.backbones", "tsk.heads", "tsk.estimators", "tsk.training", "tsk.tuning",
                     "tsk.cli"),
    "tsk.training": ("tsk.estimators", "tsk.tuning", "tsk.cli"),
    # what a loaded model predicts with: no estimator, and never Lightning (`tsk.training`)
    "tsk.inference": ("tsk.estimators", "tsk.training", "tsk.tuning", "tsk.cli"),
    # an exported forecaster runs without tsk's estimators, networks or training stack
    "tsk.exported": ("tsk.estimators", "tsk.heads", "tsk.backbones", "tsk.kernels", "tsk.training",
                     "tsk.tuning", "tsk.cli"),
    "tsk.estimators": ("tsk.tuning", "tsk.cli"),
    "tsk.io": ("tsk.estimators", "tsk.training", "tsk.tuning", "tsk.cli"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, source: str | None = None) -> set[str]:
    """The tsk modules `name` imports anywhere in its file, or in `source` (a `from package
    import submodule` counts as the submodule)."""
    tree = ast.parse(MODULES[name].read_text() if source is None else source)
    is_package = MODULES[name].name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name) for name in MODULES}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_only_call_down(layer):
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                   if module == layer or module.startswith(layer + ".")
                   for target in targets if target.startswith(FORBIDDEN[layer]))
    assert not wrong, wrong


def test_no_import_circles():
    """No module reaches itself through the modules it imports, except a package through its own
    `__init__` re-exports (a package importing its submodules, which import their siblings)."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in GRAPH[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    circles = sorted(name for name in MODULES
                     if MODULES[name].name != "__init__.py" and name in reach(name))
    assert not circles, {name: sorted(GRAPH[name]) for name in circles}


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    source = ("def f():\n    from tsk.heads import forecast\n    import tsk.estimators.base\n"
              "from ..kernels import fftconv\nfrom . import registry\n")
    assert _imports("tsk.backbones.s4", source) == {
        "tsk.heads.forecast", "tsk.estimators.base", "tsk.kernels.fftconv", "tsk.backbones.registry"}
