"""The registered backbones' names, summaries and papers, read from the family modules' source
without importing them (no torch): what `tsk backbones` lists at once. The registry itself
(`tsk.backbones.registry`) is the truth; a test keeps the two equal."""

from __future__ import annotations

import ast
from pathlib import Path

FAMILIES = ("chimera", "convs5", "lstm", "mamba", "pgn", "s4", "spacetime")
"""The modules that register backbones when imported (the registry imports each on first use)."""


def catalogue() -> dict[str, tuple[str, str]]:
    """name -> (summary, paper) of every `@register_backbone(...)` in the family modules."""
    entries = {}
    for family in FAMILIES:
        tree = ast.parse((Path(__file__).parent / f"{family}.py").read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name)
                        and decorator.func.id == "register_backbone"):
                    name, _, summary = (ast.literal_eval(arg) if i != 1 else None
                                        for i, arg in enumerate(decorator.args[:3]))
                    paper = next((ast.literal_eval(k.value) for k in decorator.keywords
                                  if k.arg == "paper"), "")
                    entries[name] = (summary, paper)
    return dict(sorted(entries.items()))
