"""LSTM (Hochreiter & Schmidhuber, 1997) on `torch.nn.LSTM` (cuDNN / oneDNN kernels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tsk.backbones.registry import register_backbone


@dataclass
class LSTMConfig:
    d_model: int = 64
    n_layers: int = 2
    dropout: float = 0.1

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution. Names that are not fields here
        (`lookback`, `learning_rate`) are the estimator's."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": IntDistribution(16, 128, log=True),
            "n_layers": IntDistribution(1, 3),
            "dropout": FloatDistribution(0.0, 0.3),
            "lookback": CategoricalDistribution([48, 96, 192, 336]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        }


@register_backbone("lstm", LSTMConfig, "stacked LSTM (torch.nn.LSTM)", paper="Hochreiter 1997")
class LSTM(nn.Module):
    """A stacked unidirectional LSTM, `[B, L, d_model] -> [B, L, d_model]`; causal."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            config.d_model, config.d_model, num_layers=config.n_layers, batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.lstm.weight_hh_l0
        zeros = weight.new_zeros(self.config.n_layers, batch, self.config.d_model)
        return zeros, zeros.clone()

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One time step: `x[B, d_model]`, `state` = (h, c) each `[n_layers, B, d_model]`."""
        y, state = self.lstm(x.unsqueeze(1), state)
        return y.squeeze(1), state
