"""TPGN's own forecasting network (Jia et al., NeurIPS 2024): a window folded by its period, two
branches (`tsk.backbones.pgn.TPGNCore`), and each column's fused vector mapped to that column's
future values, `ceil(horizon / period)` periods ahead.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tsk.backbones.pgn import TPGN, TPGNConfig, TPGNCore, fold_periods
from tsk.heads.forecast import ForecastLoss, InstanceNorm
from tsk.heads.registry import register_task_net


class TPGNForecastNet(ForecastLoss, nn.Module):
    """Input `[B, lookback, n_in]` (targets first, then exogenous) -> forecast `[B, horizon, n_out]`.

    Each target is one variate with its own weights (the authors' `groups=c_in`); its per-step
    features are its value and the exogenous columns, as the paper concatenates its time features
    to every variate. A lookback that is not a whole number of periods is zero-padded at the front;
    the forecast covers whole periods and keeps the first `horizon` steps (row r, column p of the
    output grid is step `r * period + p` ahead).
    """

    def __init__(
        self, config: TPGNConfig, lookback: int, horizon: int, n_in: int, n_out: int,
        instance_norm: bool = True, n_calendar: int = 0,
    ) -> None:
        super().__init__()
        if not 1 <= n_out <= n_in:
            raise ValueError(f"need 1 <= n_out <= n_in (targets come first), got n_in={n_in}, n_out={n_out}.")
        if config.period < 1:
            raise ValueError(f"period must be >= 1, got {config.period}.")
        self.period, self.horizon, self.n_out = config.period, horizon, n_out
        self.n_periods = math.ceil(lookback / config.period)
        self.future_periods = math.ceil(horizon / config.period)
        self.norm = InstanceNorm(instance_norm, keep_last=n_calendar)
        self.core = TPGNCore(
            n_in - n_out + 1, config.d_model, self.n_periods, config.period,
            out_per_column=self.future_periods, n_layers=config.n_layers, groups=n_out,
            dropout=config.dropout,
        )

    def _variate_features(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, n_in]` -> `[B, L, n_out * (1 + n_exogenous)]`, each target's value and the
        exogenous columns, grouped by target."""
        batch, length, _ = x.shape
        values, exogenous = x[..., : self.n_out, None], x[:, :, None, self.n_out :]
        exogenous = exogenous.expand(batch, length, self.n_out, exogenous.shape[-1])
        return torch.cat([values, exogenous], dim=-1).flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, window = self.norm(x)
        batch = x.shape[0]
        grid = fold_periods(self._variate_features(x), self.period, self.n_periods)  # [B, R, P, G * F]
        out = self.core(grid)  # [B, P, G, future_periods]
        y = out.permute(0, 3, 1, 2).reshape(batch, -1, self.n_out)[:, : self.horizon]  # [B, H, G]
        return window.restore(y)


@register_task_net("forecast", "tpgn", time_features=True)
def tpgn_forecast_net(
    backbone: nn.Module, *, lookback: int, horizon: int, n_in: int, n_out: int, n_calendar: int = 0,
    instance_norm: bool = True,
) -> TPGNForecastNet:
    """The forecasting network of backbone "tpgn" (its paper reads calendar features): built from the
    backbone's config (the backbone module itself, sized for `[B, L, d_model]` input, is unused).

    Window normalization (RevIN) is `Forecaster`'s choice: the authors use it on ETTh1 but not on
    ETTh2; on is the robust default (benchmarks/results/accuracy*.csv, README)."""
    if not isinstance(backbone, TPGN):
        raise TypeError(f"tpgn_forecast_net needs a TPGN backbone, got {type(backbone).__name__}.")
    return TPGNForecastNet(backbone.config, lookback, horizon, n_in, n_out, instance_norm, n_calendar)
