"""Backbones: sequence models `[B, L, d_model] -> [B, L, d_model]` (and grid and frame kinds), one
registry.

`create("s4d", d_model=64)` builds one; `available()` lists the names.
"""

from tsk.backbones.registry import (
    BACKBONE_KINDS,
    BackboneSpec,
    available,
    create,
    get_spec,
    is_causal,
    make_config,
    register_backbone,
)

# Importing a family's module registers its backbones.
from tsk.backbones import lstm, mamba, pgn, s4, spacetime  # noqa: E402,F401  isort: skip

__all__ = ["BACKBONE_KINDS", "BackboneSpec", "available", "create", "get_spec", "is_causal", "make_config",
           "register_backbone"]
