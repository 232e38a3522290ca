"""Pieces several backbones share: the pre-norm residual stack and its recurrent `step`, and
per-parameter optimizer hints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def optim_hint(param: nn.Parameter, **hint: float) -> nn.Parameter:
    """Attach optimizer settings (e.g. `lr`, `weight_decay`) that the training loop honours.

    SSM parameters (A, dt, ...) want no weight decay and often a smaller learning rate; the
    hint travels with the tensor so the backbone, not the trainer, decides.
    """
    param._optim = hint  # type: ignore[attr-defined]
    return param


class ResidualStack(nn.Module):
    """`x <- x + dropout(block(norm(x)))` for each block, then a final norm.

    Blocks map `[B, L, d_model] -> [B, L, d_model]`; for `step` they also offer
    `initial_state(batch)` and `step(x_t[B, d_model], state) -> (y_t, state)`. `norm` builds
    the normalisation layer from `d_model`: LayerNorm by default (S4, S4D), `nn.RMSNorm` for
    Mamba.
    """

    def __init__(
        self, blocks: Sequence[nn.Module], d_model: int, dropout: float = 0.0,
        norm: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.norms = nn.ModuleList(norm(d_model) for _ in blocks)
        self.dropout = nn.Dropout(dropout)
        self.final_norm = norm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, block in zip(self.norms, self.blocks, strict=True):
            x = x + self.dropout(block(norm(x)))
        return self.final_norm(x)

    def initial_state(self, batch: int) -> list[Any]:
        return [block.initial_state(batch) for block in self.blocks]

    def step(self, x: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        new_state = []
        for norm, block, block_state in zip(self.norms, self.blocks, state, strict=True):
            y, block_state = block.step(norm(x), block_state)
            x = x + self.dropout(y)
            new_state.append(block_state)
        return self.final_norm(x), new_state
