"""SpaceTime's forecasting network (Zhang et al., ICLR 2023): preprocessing embedding ->
encoder (the `spacetime` backbone) -> closed-loop decoder -> output MLP, trained with the paper's
lag losses next to the forecast loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.spacetime import (
    ClosedLoopSSM,
    PreActivationMLP,
    PreprocessingEmbedding,
    SpaceTime,
)
from tsk.heads.distributions import masked_mse
from tsk.heads.forecast import ForecastLoss, InstanceNorm
from tsk.heads.registry import register_task_net


class SpaceTimeForecastNet(ForecastLoss, nn.Module):
    """The paper's forecaster: `[B, lookback, n_in]` (targets first) -> `[B, horizon, n_out]`.

    Optional RevIN (the paper subtracts each window's mean; RevIN also divides by its std) ->
    preprocessing embedding -> encoder (the `spacetime` backbone) -> closed-loop decoder ->
    output MLP. While training with gradients, the paper's lag losses are left in
    `auxiliary_loss` (weight `lag_loss_weight`), which the training step adds to the forecast
    loss: the open-loop outputs `y_t` against the next inputs `x_{t+1}`, and the decoder's
    next-input predictions against its real next inputs, both after a burn-in of `d_state - 1`
    steps. They are MSEs, like the forecast loss (the paper uses RMSE for all three); a missing
    input (NaN, `Forecaster(missing="mask")`) is left out of the first, as from the forecast loss.
    """

    def __init__(self, backbone: SpaceTime, lookback: int, horizon: int, n_in: int, n_out: int,
                 instance_norm: bool = True, n_calendar: int = 0) -> None:
        super().__init__()
        config = backbone.config
        self.horizon, self.n_out = horizon, n_out
        self.burn_in = config.d_state - 1
        self.lag_loss_weight = config.lag_loss_weight
        self.norm = InstanceNorm(instance_norm, keep_last=n_calendar)
        self.embed = PreprocessingEmbedding(n_in, lookback, config)
        self.backbone = backbone
        self.decoder = ClosedLoopSSM(config.d_model, config.d_state, config.ssm, config.norm_order,
                                     config.kernel_init)
        self.output = PreActivationMLP(config.d_model, n_out, config.dropout, skip=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.auxiliary_loss: torch.Tensor | None = None
        inputs = x
        x, window = self.norm(x)
        features = self.backbone(self.embed(x))  # [B, T, d_model]
        start = self.burn_in
        lag_losses = (self.training and torch.is_grad_enabled() and self.lag_loss_weight > 0
                      and start < x.shape[1] - 1)
        forecast, open_loop, next_inputs = self.decoder(features, self.horizon, lag_losses)
        y = window.restore(self.output(forecast))  # [B, horizon, n_out]
        if lag_losses:
            lag_forecast = window.restore(self.output(open_loop[:, start:-1]))
            lag_loss = masked_mse(lag_forecast, inputs[:, start + 1 :, : self.n_out])
            lag_loss = lag_loss + F.mse_loss(next_inputs[:, start:-1], features[:, start + 1 :])
            self.auxiliary_loss = self.lag_loss_weight * lag_loss
        return y


@register_task_net("forecast", "spacetime")
def spacetime_forecast_net(backbone: nn.Module, *, lookback: int, horizon: int, n_in: int,
                           n_out: int, n_calendar: int = 0,
                           instance_norm: bool = True) -> SpaceTimeForecastNet:
    """The forecasting network of backbone "spacetime" (the `Forecaster` builds it)."""
    if not isinstance(backbone, SpaceTime):
        raise TypeError(f"expected a SpaceTime backbone, got {type(backbone).__name__}.")
    return SpaceTimeForecastNet(backbone, lookback, horizon, n_in, n_out, instance_norm, n_calendar)
