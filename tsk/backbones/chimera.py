"""Chimera (Behrouz, Santacatterina & Zabih, NeurIPS 2024, "Chimera: Effectively Modeling
Multivariate Time Series with 2-Dimensional State Space Models"): a grid backbone
`[B, V, T, d_model] -> [B, V, T, d_model]` over variates x time, run with the `scan2d` op.

Each cell carries a state along time and one along variates (`scan2d`'s recurrence); B, C and
both steps are functions of the input (selective), the transitions are not. A block has two
2-D SSM heads that differ in their time discretization: the trend head's time step starts small
(long-term progression), the seasonal head's large (patterns that repeat within a short span),
each read forwards and backwards along the variates (which have no order), then a
data-dependent gate, Mamba's layout around them. The choices the paper leaves open, and why, are
in docs/backbones/chimera.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import (
    ResidualStack,
    StackedBackbone,
    causal_depthwise_conv,
    optim_hint,
)
from tsk.backbones.mamba import causal_conv_step, step_bias
from tsk.backbones.registry import register_backbone
from tsk.kernels import scan2d

GridState = tuple[torch.Tensor, torch.Tensor]  # (h1, h2) of one column, each [B, E, V, N]


@dataclass
class ChimeraConfig:
    d_model: int = 64
    n_layers: int = 2
    d_state: int = 8
    d_conv: int = 4
    expand: int = 1
    dt_rank: int | str = "auto"  # "auto": ceil(d_model / 16)
    # the trend head's time steps start log-uniform in [dt_min, dt_max], the seasonal head's in
    # [seasonal_dt_min, seasonal_dt_max], both heads' variate steps in [dv_min, dv_max]
    dt_min: float = 0.001
    dt_max: float = 0.1
    seasonal_dt_min: float = 0.1
    seasonal_dt_max: float = 1.0
    dv_min: float = 0.001
    dv_max: float = 0.1
    dropout: float = 0.0
    # read the variates in both directions (a second pair of heads on the reversed variate axis)
    bidirectional: bool = True

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution (`lookback`, `learning_rate` are
        the estimator's)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": IntDistribution(16, 128, log=True),
            "n_layers": IntDistribution(1, 3),
            "d_state": CategoricalDistribution([4, 8, 16]),
            "dropout": FloatDistribution(0.0, 0.3),
            "lookback": CategoricalDistribution([48, 96, 192, 336]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        }


class Selective2D(nn.Module):
    """One selective 2-D SSM head on `[B, V, T, E]` (Mamba's selection, two axes).

    From each cell's features: the time step and the variate step (a rank-`dt_rank` projection
    per channel, softplus'd), B1, B2, C1, C2 (shared by the channels). A1, A4 (the decays along
    time and variates) are negative through their logs, S4D-Real at start; the couplings are
    A2 = |A1| tanh(w2) and A3 = |A4| tanh(w3), so |A2| < |A1| and |A3| < |A4|: with `scan2d`'s
    exact ZOH coupling that keeps the grid stable for any step.
    """

    def __init__(self, width: int, config: ChimeraConfig, dt_range: tuple[float, float]) -> None:
        super().__init__()
        self.d_state = config.d_state
        self.dt_rank = (math.ceil(config.d_model / 16) if config.dt_rank == "auto"
                        else config.dt_rank)
        if not isinstance(self.dt_rank, int) or self.dt_rank < 1:
            raise ValueError(f"dt_rank must be 'auto' or a positive int, got {config.dt_rank!r}.")
        self.scan_backend = "auto"  # a kernel-op backend; tests set "reference"
        self.x_proj = nn.Linear(width, 2 * self.dt_rank + 4 * config.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, width)  # time step
        self.dv_proj = nn.Linear(self.dt_rank, width)  # variate step
        bound = self.dt_rank**-0.5
        for proj, (low, high) in ((self.dt_proj, dt_range),
                                  (self.dv_proj, (config.dv_min, config.dv_max))):
            nn.init.uniform_(proj.weight, -bound, bound)
            with torch.no_grad():
                proj.bias.copy_(step_bias(width, low, high))
            optim_hint(proj.bias, weight_decay=0.0)
        real = torch.arange(1, config.d_state + 1, dtype=torch.float32).repeat(width, 1)  # [E, N]
        self.A1_log = optim_hint(nn.Parameter(torch.log(real)), weight_decay=0.0)
        self.A4_log = optim_hint(nn.Parameter(torch.log(real.clone())), weight_decay=0.0)
        self.A2_raw = optim_hint(nn.Parameter(torch.empty(width, config.d_state).uniform_(-0.5, 0.5)),
                                 weight_decay=0.0)
        self.A3_raw = optim_hint(nn.Parameter(torch.empty(width, config.d_state).uniform_(-0.5, 0.5)),
                                 weight_decay=0.0)

    def transitions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A1, A2, A3, A4, each `[E, N]` fp32."""
        decay_t, decay_v = torch.exp(self.A1_log.float()), torch.exp(self.A4_log.float())
        return (-decay_t, decay_t * torch.tanh(self.A2_raw.float()),
                decay_v * torch.tanh(self.A3_raw.float()), -decay_v)

    def forward(self, x: torch.Tensor, state: GridState | None = None,
                with_state: bool = False) -> tuple[torch.Tensor, GridState | None]:
        """`x[B, V, T, E]` -> (`y[B, V, T, E]` without a skip, the last column's state when
        `with_state`); `state`: the column before the first (zeros when None)."""
        rank, n = self.dt_rank, self.d_state
        dt, dv, B1, B2, C1, C2 = self.x_proj(x).split([rank, rank, n, n, n, n], dim=-1)
        delta_t = F.softplus(self.dt_proj(dt)).permute(0, 3, 1, 2)  # [B, E, V, T]
        delta_v = F.softplus(self.dv_proj(dv)).permute(0, 3, 1, 2)
        B1, B2, C1, C2 = (m.permute(0, 3, 1, 2) for m in (B1, B2, C1, C2))  # [B, N, V, T]
        y, last = scan2d(x.permute(0, 3, 1, 2), delta_t, delta_v, *self.transitions(),
                         B1, B2, C1, C2, initial_state=state, output_final_state=with_state,
                         backend=self.scan_backend)
        return y.permute(0, 2, 3, 1), last


class ChimeraMixer(nn.Module):
    """One Chimera block, `[B, V, T, d_model] -> [B, V, T, d_model]`, causal along time.

    in_proj -> (x, z); x -> depthwise causal convolution along time -> SiLU; the trend and the
    seasonal 2-D SSM heads (and, `bidirectional`, both again on the reversed variates) summed,
    plus a D skip; times SiLU(z), the data-dependent gate; out_proj.
    """

    def __init__(self, config: ChimeraConfig) -> None:
        super().__init__()
        width = config.expand * config.d_model
        self.width, self.d_conv = width, config.d_conv
        self.in_proj = nn.Linear(config.d_model, 2 * width, bias=False)
        self.conv1d = nn.Conv1d(width, width, config.d_conv, groups=width,
                                padding=config.d_conv - 1)
        ranges = {"trend": (config.dt_min, config.dt_max),
                  "seasonal": (config.seasonal_dt_min, config.seasonal_dt_max)}
        directions = ("forward", "backward") if config.bidirectional else ("forward",)
        self.heads = nn.ModuleDict({f"{name}_{direction}": Selective2D(width, config, dt_range)
                                    for name, dt_range in ranges.items() for direction in directions})
        self.D = optim_hint(nn.Parameter(torch.ones(width)), weight_decay=0.0)
        self.out_proj = nn.Linear(width, config.d_model, bias=False)

    def _heads(self, x: torch.Tensor, states: dict[str, GridState] | None, with_state: bool
               ) -> tuple[torch.Tensor, dict[str, GridState]]:
        """The heads' summed outputs on `x[B, V, T, E]` and their last columns' states; the
        backward heads see (and keep their states in) the reversed variate order."""
        total, last = x * self.D, {}
        for key, head in self.heads.items():
            backward = key.endswith("backward")
            inputs = x.flip(1) if backward else x
            y, last[key] = head(inputs, None if states is None else states[key], with_state)
            total = total + (y.flip(1) if backward else y)
        return total, last

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden[B, V, T, d_model]` -> `[B, V, T, d_model]`."""
        batch, n_var, length, _ = hidden.shape
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # [B, V, T, E] each
        rows = x.reshape(batch * n_var, length, self.width).transpose(1, 2)  # [B * V, E, T]
        x = F.silu(causal_depthwise_conv(rows, self.conv1d)).transpose(1, 2).reshape(x.shape)
        y, _ = self._heads(x, None, with_state=False)
        return self.out_proj(y * F.silu(z))

    def initial_state(self, batch: int) -> dict[str, Any]:
        """Empty: the state's size needs the variate count, so the first `step` builds it."""
        return {}

    def step(self, hidden: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict]:
        """One time step of every variate: `hidden[B, V, d_model]` -> `(y[B, V, d_model], state)`;
        the state (the conv's last inputs, each head's column state) is not modified in place."""
        batch, n_var, _ = hidden.shape
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # [B, V, E]
        conv = state.get("conv")
        if conv is None:
            conv = x.new_zeros(batch, n_var, self.width, self.d_conv)
        conv, x = causal_conv_step(conv, x, self.conv1d)  # [B, V, E, W], [B, V, E]
        y, heads = self._heads(F.silu(x).unsqueeze(2), state.get("heads"), with_state=True)
        y = self.out_proj(y.squeeze(2) * F.silu(z))
        return y, {"conv": conv, "heads": heads}


@register_backbone(
    "chimera", ChimeraConfig,
    "2-D selective SSM over variates x time: trend and seasonal heads, bidirectional over variates",
    paper="Behrouz, Santacatterina & Zabih 2024, Chimera: Effectively Modeling Multivariate "
          "Time Series with 2-Dimensional State Space Models",
    kind="grid",
)
class Chimera(StackedBackbone):
    """A pre-norm (RMSNorm) residual stack of Chimera blocks on `[B, V, T, d_model]`; causal
    along time (`bidirectional` reads the variates both ways, which have no order), so `step()`
    runs it one time step at a time: `x[B, V, d_model]` (every variate), one state per layer."""

    causal = True

    def __init__(self, config: ChimeraConfig) -> None:
        super().__init__()
        self.config = config
        blocks = [ChimeraMixer(config) for _ in range(config.n_layers)]
        with torch.no_grad():  # as Mamba: the residual stream's variance does not grow with depth
            for block in blocks:
                block.out_proj.weight /= math.sqrt(config.n_layers)
        norm = functools.partial(nn.RMSNorm, eps=1e-5)
        self.stack = ResidualStack(blocks, config.d_model, config.dropout, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, V, T, d_model]` -> `[B, V, T, d_model]`."""
        if x.dim() != 4:
            raise ValueError(f"chimera is a grid backbone: it takes [B, V, T, d_model] (variates x "
                             f"time), got shape {list(x.shape)}.")
        return self.stack(x)
