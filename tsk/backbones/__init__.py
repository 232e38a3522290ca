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

# The family modules (lstm, mamba, pgn, s4, spacetime) register their backbones when the
# registry is first asked (`available`, `get_spec`, `create`), so this import costs no torch.

__all__ = ["BACKBONE_KINDS", "BackboneSpec", "available", "create", "get_spec", "is_causal", "make_config",
           "register_backbone"]
