"""PGN and TPGN (Jia et al., NeurIPS 2024, "PGN: The RNN's New Successor is Effective for
Long-Range Time Series Forecasting"; the authors' code is github.com/Water2sea/TPGN).

PGN (Parallel Gated Network) keeps an RNN's "hidden state from the past, gated with the present"
but computes every step's hidden state in parallel:

- HIE (Historical Information Extraction): step t gets a learned linear map of its previous
  inputs, `H_t = b + sum_{k=1..K} A_k x_{t-k}` (zeros before the start). As in the authors' code
  this is zero padding in front plus one convolution whose kernel spans the history window, so any
  past input reaches step t through one linear map (an O(1) path, not an RNN's O(t) chain).
- one gate that both selects and fuses, on `z_t = [x_t, H_t]`:
  `G_t = sigmoid(W_g z_t + b_g)`, `Hhat_t = tanh(W_h z_t + b_h)`, `out_t = G_t * H_t + (1 - G_t) * Hhat_t`.

TPGN (Temporal PGN) reshapes a window by its period into a grid `[n_periods, period]` (the
front is zero-padded to whole periods) and runs two branches: the long-term one runs PGN down each
column (the same phase across periods) and folds its outputs with a linear map over the periods;
the short-term one embeds each row (one period, a patch) linearly and folds the rows into one
summary shared by all columns. The concatenated branches map, column by column, to the forecast
(see `tsk.heads.tpgn`). The paper forecasts ETT univariate OT with lookback 168, period 24 and
horizons 168/336/720/1440 (d_model 32 in the authors' defaults, lr 1e-3, batch 32); the
authors' code feeds calendar features (hour of day, day of week, day of month, day of year,
TSLib's `timeF`) next to each value, so `Forecaster(backbone="tpgn")` does too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import Dropout, ResidualStack, StackedBackbone
from tsk.backbones.registry import register_backbone
from tsk.kernels.common import fft_size


class HistoricalInformationExtraction(nn.Module):
    """The HIE layer: `H_t = b + sum_{k=1..history} A_k x_{t-k}`, for all t at once.

    A grouped `Conv1d` holds the weights (each of `groups` variates has its own, as the authors'
    `groups=c_in`): `conv.weight[:, :, history - k]` is `A_k`, the map of the input k steps back.
    Plain-PyTorch equivalent of `forward`: left-pad `x` with `history` zeros, drop its last step,
    convolve with `conv` (kernel `history`). Lags past the start of a shorter sequence only see
    zeros, so the kernel is trimmed to `L - 1` lags there (same result, less work). From
    `FFT_MIN_LAGS` lags on, the same convolution runs through FFTs (one [d_out, d_in] product per
    frequency instead of one per lag and step): O(L log L) instead of O(L^2) per channel pair,
    2.6x faster forward+backward at 149 lags and 7x at 314 (B=16, d=64, 2 CPU threads).
    """

    FFT_MIN_LAGS = 64

    def __init__(self, d_in: int, d_out: int, history: int, groups: int = 1) -> None:
        super().__init__()
        if history < 1:
            raise ValueError(f"history must be >= 1 (past steps HIE reads), got {history}.")
        self.history, self.groups = history, groups
        self.conv = nn.Conv1d(groups * d_in, groups * d_out, history, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, G * d_in, L]` -> `H[B, G * d_out, L]`, H_t from x_{<t} only."""
        lags = min(self.history, x.shape[-1] - 1)
        if lags == 0:  # a single step has no past: H is the bias
            return self.conv.bias[None, :, None].expand(x.shape[0], -1, x.shape[-1])
        weight = self.conv.weight[..., self.history - lags :]  # [G * d_out, d_in, lags]
        if lags >= self.FFT_MIN_LAGS:
            return self._fft_conv(x, weight)
        padded = F.pad(x[..., :-1], (lags, 0))  # [B, G * d_in, lags + L - 1]
        return F.conv1d(padded, weight, self.conv.bias, groups=self.groups)

    def _fft_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The causal convolution of `forward` through FFTs: taps `h_k = A_k` at lags k >= 1
        (none at lag 0), so `H_t = b + sum_k h_k x_{t-k}`."""
        batch, channels, length = x.shape
        groups, lags = self.groups, weight.shape[-1]
        d_out, d_in = weight.shape[0] // groups, weight.shape[1]
        n = fft_size(length + lags)  # no wrap-around reaches the first `length` outputs
        taps = F.pad(weight.flip(-1), (1, 0)).view(groups, d_out, d_in, lags + 1)
        spectrum = torch.einsum("goif,bgif->bgof", torch.fft.rfft(taps, n=n),
                                torch.fft.rfft(x.view(batch, groups, d_in, length), n=n))
        hidden = torch.fft.irfft(spectrum, n=n)[..., :length].reshape(batch, groups * d_out, length)
        return hidden + self.conv.bias[None, :, None]

    def from_history(self, past: torch.Tensor) -> torch.Tensor:
        """`past[B, G * d_in, history]`, the last inputs oldest first -> `H[B, G * d_out]`."""
        return F.conv1d(past, self.conv.weight, self.conv.bias, groups=self.groups).squeeze(-1)


class PGNLayer(nn.Module):
    """One PGN layer: HIE, then the gate that selects from and fuses `H_t` with `x_t`.

    `[B, L, G * d_in] -> [B, L, G * d_hidden]` (features grouped by variate, G = `groups`); causal.
    The gate is one per-step map (the authors' kernel-1 grouped conv) whose first `d_hidden`
    outputs are the sigmoid gate and last `d_hidden` the tanh candidate. `step()` keeps the last
    `history` inputs, which is all HIE reads, so it equals `forward` exactly.
    """

    def __init__(self, d_in: int, d_hidden: int, history: int, groups: int = 1) -> None:
        super().__init__()
        self.d_in, self.d_hidden, self.groups = d_in, d_hidden, groups
        self.hie = HistoricalInformationExtraction(d_in, d_hidden, history, groups)
        self.gate = nn.Conv1d(groups * (d_in + d_hidden), groups * 2 * d_hidden, 1, groups=groups)

    def _gated_fusion(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """`x[B, G * d_in, L]`, `hidden[B, G * d_hidden, L]` -> `[B, G * d_hidden, L]`."""
        batch, length = x.shape[0], x.shape[-1]
        groups, d_hidden = self.groups, self.d_hidden
        joint = torch.cat(  # [B, G, d_in + d_hidden, L]: each variate's [x_t, H_t]
            [x.reshape(batch, groups, self.d_in, length), hidden.reshape(batch, groups, d_hidden, length)],
            dim=2,
        )
        gates = self.gate(joint.flatten(1, 2)).view(batch, groups, 2, d_hidden, length)
        select = torch.sigmoid(gates[:, :, 0])  # [B, G, d_hidden, L]
        candidate = torch.tanh(gates[:, :, 1])
        out = select * hidden.reshape_as(candidate) + (1 - select) * candidate
        return out.flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, G * d_in]` -> `[B, L, G * d_hidden]`."""
        x = x.transpose(1, 2)  # [B, G * d_in, L]
        return self._gated_fusion(x, self.hie(x)).transpose(1, 2)

    def initial_state(self, batch: int) -> torch.Tensor:
        """The zero padding HIE starts from: `[B, G * d_in, history]`."""
        weight = self.hie.conv.weight
        return weight.new_zeros(batch, self.groups * self.d_in, self.hie.history)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x[B, G * d_in]`, `state[B, G * d_in, history]` (past inputs) -> `(y[B, G * d_hidden], state)`."""
        hidden = self.hie.from_history(state)  # [B, G * d_hidden], from x_{<t}
        y = self._gated_fusion(x.unsqueeze(-1), hidden.unsqueeze(-1)).squeeze(-1)
        return y, torch.cat([state[..., 1:], x.unsqueeze(-1)], dim=-1)


@dataclass
class PGNConfig:
    d_model: int = 64
    n_layers: int = 2
    dropout: float = 0.05  # the authors' run default
    # past steps HIE reads; >= L - 1 gives every step all of its past (the paper's HIE);
    # longer inputs see a sliding window of the last `history` steps. `Forecaster` sets it to
    # L - 1 for the tokens it feeds (the registry's `length_option`)
    history: int = 336

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution. Names that are not fields here
        (`lookback`, `learning_rate`) are the estimator's."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": IntDistribution(16, 128, log=True),
            "n_layers": IntDistribution(1, 3),
            "dropout": FloatDistribution(0.0, 0.3),
            "lookback": CategoricalDistribution([48, 96, 168, 336]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        }


@register_backbone(
    "pgn", PGNConfig, "Parallel Gated Network: HIE (linear map of all past inputs) + one gate; causal",
    paper="Jia et al. 2024 (NeurIPS), PGN: The RNN's New Successor is Effective for Long-Range TSF",
    length_option="history",
)
class PGN(StackedBackbone):
    """PGN layers (`d_model -> d_model`) in the project's pre-norm residual stack; causal, with
    `step()`. The paper uses a single PGN layer inside TPGN and does not stack them; the stack
    (LayerNorm, residual, dropout) is how every backbone here goes deeper."""

    def __init__(self, config: PGNConfig) -> None:
        super().__init__()
        self.config = config
        self.stack = ResidualStack(
            [PGNLayer(config.d_model, config.d_model, config.history) for _ in range(config.n_layers)],
            config.d_model, config.dropout,
        )


# ---- TPGN ---------------------------------------------------------------------------------------


def fold_periods(x: torch.Tensor, period: int, n_periods: int) -> torch.Tensor:
    """`x[B, L, F]` -> grid `[B, n_periods, period, F]`, zero-padded at the front so the last step
    lands in the last column (row r, column p holds step `r * period + p` of the padded series)."""
    batch, length, features = x.shape
    pad = n_periods * period - length
    if pad < 0:
        raise ValueError(
            f"TPGN was built for at most {n_periods * period} steps ({n_periods} periods of "
            f"{period}), got {length}; build it for a longer input (max_length / lookback)."
        )
    return F.pad(x, (0, 0, pad, 0)).view(batch, n_periods, period, features)


class TPGNCore(nn.Module):
    """TPGN's two branches and their fusion on a period grid, per variate group.

    Grid `[B, n_periods, period, G * n_features]` -> `[B, period, G, out_per_column]`: each column
    (phase of the period) gets its own output vector, as the paper's per-column output layer.
    - long-term: PGN (history = all earlier periods) down each column, `n_layers` layers (the
      paper: 1; later ones residual), then a linear map over the `n_periods` outputs.
    - short-term: a linear map of each row (one period as a patch) to `d_model`, then a linear
      map over the rows to one summary, repeated for every column.
    - fusion: `[short, long]` -> dropout -> a linear map to `out_per_column`.
    All maps are per variate group (the authors' grouped convolutions).
    """

    def __init__(
        self, n_features: int, d_model: int, n_periods: int, period: int, out_per_column: int,
        n_layers: int = 1, groups: int = 1, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1 (PGN layers in the long-term branch), got {n_layers}.")
        self.n_periods, self.period, self.groups, self.d_model = n_periods, period, groups, d_model
        history = max(n_periods - 1, 1)  # every earlier period (the authors' windows_size)
        width = groups * d_model
        self.long_pgn = nn.ModuleList(
            [PGNLayer(n_features, d_model, history, groups)]
            + [PGNLayer(d_model, d_model, history, groups) for _ in range(n_layers - 1)]
        )
        self.long_fold = nn.Conv1d(width, width, n_periods, groups=groups)
        self.patch_embed = nn.Conv1d(groups * n_features, width, period, groups=groups)
        self.short_fold = nn.Conv1d(width, width, n_periods, groups=groups)
        self.dropout = Dropout(dropout)
        self.project = nn.Conv1d(2 * width, groups * out_per_column, 1, groups=groups)

    def _check(self, grid: torch.Tensor) -> None:
        if grid.shape[1:3] != (self.n_periods, self.period):
            raise ValueError(
                f"expected a grid of {self.n_periods} periods x {self.period} steps, got "
                f"{tuple(grid.shape[1:3])}; fold the series with fold_periods()."
            )

    def long_term(self, grid: torch.Tensor) -> torch.Tensor:
        """`grid[B, R, P, G * F]` -> `[B, P, G, d_model]`: PGN along the periods of each column."""
        self._check(grid)
        batch, n_periods, period, features = grid.shape
        hidden = grid.transpose(1, 2).reshape(batch * period, n_periods, features)  # one column each
        hidden = self.long_pgn[0](hidden)  # [B * P, R, G * d_model]
        for layer in self.long_pgn[1:]:
            hidden = hidden + layer(hidden)
        folded = self.long_fold(hidden.transpose(1, 2))  # [B * P, G * d_model, 1]
        return folded.view(batch, period, self.groups, self.d_model)

    def short_term(self, grid: torch.Tensor) -> torch.Tensor:
        """`grid[B, R, P, G * F]` -> `[B, P, G, d_model]`: period patches, folded, per column."""
        self._check(grid)
        batch, n_periods, period, features = grid.shape
        rows = grid.reshape(batch * n_periods, period, features).transpose(1, 2)  # [B * R, G * F, P]
        patches = self.patch_embed(rows).view(batch, n_periods, -1).transpose(1, 2)  # [B, G * d, R]
        summary = self.short_fold(patches).view(batch, 1, self.groups, self.d_model)
        return summary.expand(batch, period, self.groups, self.d_model)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """`grid[B, R, P, G * F]` -> `[B, P, G, out_per_column]`."""
        batch, period = grid.shape[0], grid.shape[2]
        fused = torch.cat([self.short_term(grid), self.long_term(grid)], dim=-1)  # [B, P, G, 2d]
        fused = self.dropout(fused).reshape(batch * period, -1, 1)
        return self.project(fused).view(batch, period, self.groups, -1)


@dataclass
class TPGNConfig:
    # the authors' table of per-task settings uses 2-8 on ETT, 4 on Weather, 32 on ECL and
    # 128-256 on Traffic. On ETTh1 and ETTh2 (their protocol, calendar inputs, 3 seeds) 8 is
    # 1.01-1.07x the paper up to horizon 720, where their code's default of 32 was up to 1.19x
    d_model: int = 8
    n_layers: int = 1  # PGN layers in the long-term branch (the paper: 1)
    dropout: float = 0.0  # the paper's TPGN uses none
    period: int = 24  # steps per period (24 for hourly data, as the paper)
    # the longest input of the `[B, L, d_model]` backbone; inputs are zero-padded at the front to
    # it (TPGN's maps over periods have fixed sizes). The forecasting network uses `lookback`.
    max_length: int = 336

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution. Names that are not fields here
        (`lookback`, `learning_rate`, `instance_norm`, `time_features`, `ridge_init`) are the
        estimator's; the period is the data's, not tuned. The widths span the authors'
        per-dataset choices (2 for ETTh1 up to 256 for Traffic); they switch RevIN per dataset too.
        Calendar inputs help on the paper's protocol and hurt on TSLib's multivariate ETT, the
        ridge start the other way round (README), so all three are tuned."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": CategoricalDistribution([2, 4, 8, 16, 32, 64, 128, 256]),
            "n_layers": IntDistribution(1, 2),
            "dropout": FloatDistribution(0.0, 0.3),
            "lookback": CategoricalDistribution([96, 168, 336]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
            "instance_norm": CategoricalDistribution([True, False]),
            "time_features": CategoricalDistribution([True, False]),
            "ridge_init": CategoricalDistribution([False, True]),
        }


@register_backbone(
    "tpgn", TPGNConfig, "Temporal PGN: period grid, PGN across periods + period patches, fused",
    paper="Jia et al. 2024 (NeurIPS), PGN: The RNN's New Successor is Effective for Long-Range TSF",
)
class TPGN(nn.Module):
    """TPGN as a `[B, L, d_model] -> [B, L, d_model]` backbone (not causal).

    The window (front-padded to `max_length`, whole periods) is one variate whose steps carry
    `d_model` features; each column's fused vector maps to that column's `d_model` features in
    every row, the paper's per-column output layer with the input grid as its horizon. With
    `Forecaster` the paper's own network (`tsk.heads.tpgn.TPGNForecastNet`) is used instead.
    """

    causal = False

    def __init__(self, config: TPGNConfig) -> None:
        super().__init__()
        if config.period < 1 or config.max_length < 1:
            raise ValueError(f"period and max_length must be >= 1, got {config.period}, {config.max_length}.")
        self.config = config
        self.n_periods = math.ceil(config.max_length / config.period)
        self.core = TPGNCore(
            config.d_model, config.d_model, self.n_periods, config.period,
            out_per_column=self.n_periods * config.d_model, n_layers=config.n_layers,
            dropout=config.dropout,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, d_model]` -> `[B, L, d_model]`, L <= `max_length` rounded up to whole periods."""
        batch, length, d_model = x.shape
        grid = fold_periods(x, self.config.period, self.n_periods)  # [B, R, P, D]
        out = self.core(grid).view(batch, self.config.period, self.n_periods, d_model)  # [B, P, R, D]
        return out.transpose(1, 2).reshape(batch, -1, d_model)[:, -length:]
