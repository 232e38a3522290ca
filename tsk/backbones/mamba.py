"""Mamba (Gu & Dao, 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"):
a gated block around a selective (input-dependent) diagonal SSM, run with the `selective_scan`
kernel op. `bidirectional=True` adds a second block over the reversed sequence (as S-Mamba and
Vision Mamba do); it is then not causal.

Two layouts (`layout`) put the blocks together:

- `"pre-norm"` (default), tsk's own: a pre-norm RMSNorm residual stack,
  `x <- x + dropout(block(rmsnorm(x)))`, with `d_ff > 0` adding a feed-forward sublayer (as its
  own residual block) after each Mamba block, and a final RMSNorm.
- `"s-mamba"`: the encoder layer of S-Mamba ("Is Mamba Effective for Time Series Forecasting?",
  Wang et al.), post-norm with LayerNorm: `x <- norm1(x + mamba(x) + flip(mamba_r(flip(x))))`
  then `x <- norm2(x + dropout(ffn(x)))`, and a final LayerNorm. With
  `Forecaster(tokens="variates", channel_independent=False, time_features=True)`,
  `bidirectional=True`, `d_conv=2`, `expand=1` and its scripts' sizes, that is S-Mamba.
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
    Dropout,
    ResidualStack,
    StackedBackbone,
    causal_depthwise_conv,
    optim_hint,
)
from tsk.backbones.registry import register_backbone
from tsk.kernels import selective_scan

MambaState = tuple[torch.Tensor, torch.Tensor]  # conv [B, E, d_conv], ssm [B, E, N] (fp32)
LAYOUTS = ("pre-norm", "s-mamba")


@dataclass
class MambaConfig:
    d_model: int = 64
    n_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | str = "auto"  # "auto": ceil(d_model / 16)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    dt_scale: float = 1.0
    dropout: float = 0.0
    bidirectional: bool = False
    # "pre-norm": tsk's RMSNorm pre-norm residual stack; "s-mamba": S-Mamba's post-norm
    # LayerNorm encoder layer (see the module docstring; the paper's needs bidirectional=True)
    layout: str = "pre-norm"
    # Width of the feed-forward sublayer (d_model -> d_ff -> d_model) after each Mamba block.
    # "pre-norm": 0 means none; "s-mamba" always has one, 0 means 4 * d_model (the authors' code)
    d_ff: int = 0

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution. Names that are not fields here
        (`lookback`, `learning_rate`) are the estimator's."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": IntDistribution(16, 128, log=True),
            "n_layers": IntDistribution(1, 4),
            "d_state": CategoricalDistribution([8, 16, 32]),
            "expand": CategoricalDistribution([1, 2]),
            "dropout": FloatDistribution(0.0, 0.3),
            "lookback": CategoricalDistribution([48, 96, 192, 336]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        }


def inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    """`y` with `softplus(y) == x` for `x > 0`, written to stay exact for small `x`."""
    return x + torch.log(-torch.expm1(-x))


def step_bias(width: int, low: float, high: float, floor: float = 1e-4) -> torch.Tensor:
    """A bias whose softplus (the step when the input term is 0) is log-uniform in
    [low, high], at least `floor`: Mamba's initialization of its step projection."""
    log_step = torch.rand(width) * (math.log(high) - math.log(low)) + math.log(low)
    return inverse_softplus(torch.exp(log_step).clamp(min=floor))


def causal_conv_step(window: torch.Tensor, x: torch.Tensor, conv: nn.Conv1d
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a depthwise causal convolution: the last `kernel` inputs `window[..., E, W]`
    shifted to take `x[..., E]` -> (the new window, the convolution's output `[..., E]`)."""
    window = torch.cat([window[..., 1:], x.unsqueeze(-1)], dim=-1)
    return window, (window * conv.weight[:, 0]).sum(-1) + conv.bias


class MambaMixer(nn.Module):
    """One Mamba block, `[B, L, d_model] -> [B, L, d_model]`, causal.

    in_proj -> (x, z) each `[B, E, L]` with E = expand * d_model; x -> depthwise causal conv
    (d_conv taps) -> SiLU -> x_proj -> (dt, B, C); dt -> dt_proj (bias added inside the scan,
    softplus'd); selective scan with D skip and SiLU(z) gate; out_proj.
    """

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        d_model, d_state = config.d_model, config.d_state
        self.d_inner = config.expand * d_model
        self.d_state, self.d_conv = d_state, config.d_conv
        if config.dt_rank == "auto":
            self.dt_rank = math.ceil(d_model / 16)
        elif isinstance(config.dt_rank, int) and config.dt_rank > 0:
            self.dt_rank = config.dt_rank
        else:
            raise ValueError(f"dt_rank must be 'auto' or a positive int, got {config.dt_rank!r}.")
        self.scan_backend = "auto"  # a kernel-op backend; tests set "reference"

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, config.d_conv, groups=self.d_inner, padding=config.d_conv - 1
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # dt_proj keeps the variance of its input at init; its bias puts softplus(bias) (the
        # step size when the input term is 0) log-uniformly in [dt_min, dt_max]
        bound = self.dt_rank**-0.5 * config.dt_scale
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        with torch.no_grad():
            self.dt_proj.bias.copy_(step_bias(self.d_inner, config.dt_min, config.dt_max,
                                              config.dt_init_floor))
        optim_hint(self.dt_proj.bias, weight_decay=0.0)
        # S4D-Real: A = -[1, ..., N] for every channel, kept negative through its log
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # [E, N]
        self.A_log = optim_hint(nn.Parameter(torch.log(A)), weight_decay=0.0)
        self.D = optim_hint(nn.Parameter(torch.ones(self.d_inner)), weight_decay=0.0)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def A(self) -> torch.Tensor:
        """`[E, N]`, negative real."""
        return -torch.exp(self.A_log.float())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden[B, L, d_model]` -> `[B, L, d_model]`."""
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # [B, E, L] each
        x = F.silu(causal_depthwise_conv(x, self.conv1d))
        dt, B, C = self.x_proj(x.transpose(1, 2)).split(  # [B, L, R], [B, L, N], [B, L, N]
            [self.dt_rank, self.d_state, self.d_state], dim=-1
        )
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # [B, E, L], bias added in the scan
        y, _ = selective_scan(
            x, dt, self.A(), B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z=z,
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True, backend=self.scan_backend,
        )  # [B, E, L]
        return self.out_proj(y.transpose(1, 2))

    def initial_state(self, batch: int) -> MambaState:
        weight = self.conv1d.weight
        conv = weight.new_zeros(batch, self.d_inner, self.d_conv)  # last d_conv inputs of conv1d
        ssm = weight.new_zeros(batch, self.d_inner, self.d_state, dtype=torch.float32)
        return conv, ssm

    def step(self, hidden: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One time step: `hidden[B, d_model]` -> `(y[B, d_model], state)`; the state is not
        modified in place."""
        conv_state, ssm_state = state
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # [B, E] each
        conv_state, x = causal_conv_step(conv_state, x, self.conv1d)  # [B, E, W], [B, E]
        x = F.silu(x)
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt)).float()  # [B, E]
        decay = torch.exp(dt.unsqueeze(-1) * self.A())  # [B, E, N]
        drive = (dt * x.float()).unsqueeze(-1) * B.float().unsqueeze(1)  # [B, E, N]
        ssm_state = decay * ssm_state + drive
        y = (ssm_state * C.float().unsqueeze(1)).sum(-1) + self.D * x.float()  # [B, E]
        y = (y * F.silu(z.float())).to(hidden.dtype)
        return self.out_proj(y), (conv_state, ssm_state)


class FeedForward(nn.Module):
    """Position-wise `Linear(d_model, d_ff) -> GELU -> dropout -> Linear(d_ff, d_model)`: the
    feed-forward sublayer of S-Mamba's encoder layer (its two kernel-1 convolutions), GELU as its
    scripts run it; `step` applies it to one step (it keeps no state)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), Dropout(dropout),
                                 nn.Linear(d_ff, d_model))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden)

    def initial_state(self, batch: int) -> None:
        return None

    def step(self, hidden: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        return self.net(hidden), state


class BidirectionalMamba(nn.Module):
    """`forward(x) + flip(backward(flip(x)))`: two Mamba blocks, one per direction; not causal."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.forward_mixer = MambaMixer(config)
        self.backward_mixer = MambaMixer(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden[B, L, d_model]` -> `[B, L, d_model]`."""
        backward = self.backward_mixer(hidden.flip(1)).flip(1)
        return self.forward_mixer(hidden) + backward


class SMambaLayer(nn.Module):
    """S-Mamba's encoder layer, post-norm with LayerNorm (eps 1e-5):
    `x1 = norm1(x + mixer(x))`, `out = norm2(x1 + dropout(feed_forward(x1)))`.

    `mixer` is `BidirectionalMamba` (two blocks with their own weights, the reversed one's output
    flipped back and summed, as the paper) or, `bidirectional=False`, one causal block; the paper
    puts no dropout on the mixer's output. Norms and the feed-forward act per token, so the causal
    layer steps like its mixer.
    """

    def __init__(self, config: MambaConfig, d_ff: int) -> None:
        super().__init__()
        self.mixer = BidirectionalMamba(config) if config.bidirectional else MambaMixer(config)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.feed_forward = FeedForward(config.d_model, d_ff, config.dropout)
        self.dropout = Dropout(config.dropout)
        self.norm2 = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, d_model]` -> `[B, L, d_model]`."""
        x = self.norm1(x + self.mixer(x))
        return self.norm2(x + self.dropout(self.feed_forward(x)))

    def initial_state(self, batch: int) -> MambaState:
        return self.mixer.initial_state(batch)

    def step(self, x: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One step of the causal layer: `x[B, d_model]` -> `(y[B, d_model], state)`."""
        y, state = self.mixer.step(x, state)
        x = self.norm1(x + y)
        return self.norm2(x + self.dropout(self.feed_forward(x))), state


class SMambaEncoder(nn.Module):
    """S-Mamba's encoder: its layers, then a LayerNorm; the `ResidualStack` interface (forward,
    `initial_state`, `step`) so `StackedBackbone` drives it."""

    def __init__(self, layers: list[SMambaLayer], d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.final_norm(x)

    def initial_state(self, batch: int) -> list[MambaState]:
        return [layer.initial_state(batch) for layer in self.layers]

    def step(self, x: torch.Tensor, state: list[MambaState]
             ) -> tuple[torch.Tensor, list[MambaState]]:
        new_state = []
        for layer, layer_state in zip(self.layers, state, strict=True):
            x, layer_state = layer.step(x, layer_state)
            new_state.append(layer_state)
        return self.final_norm(x), new_state


@register_backbone(
    "mamba", MambaConfig,
    "selective state space model (S6) blocks; RMSNorm pre-norm residual stack or S-Mamba's "
    "post-norm encoder layer; optional bidirectional",
    paper="Gu & Dao 2023, Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
)
class Mamba(StackedBackbone):
    """Mamba blocks in tsk's pre-norm RMSNorm residual stack (`layout="pre-norm"`) or in
    S-Mamba's post-norm LayerNorm encoder (`layout="s-mamba"`); causal unless `bidirectional`;
    `step()` runs the causal model as a recurrence (conv and SSM state caches)."""

    stack: ResidualStack | SMambaEncoder

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.config = config
        if config.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(map(repr, LAYOUTS))}, "
                             f"got {config.layout!r}.")
        if config.d_ff < 0:
            raise ValueError(f"d_ff must be >= 0 (0: the layout's default), got {config.d_ff}.")
        if config.layout == "s-mamba":
            # The authors build plain `mamba_ssm.Mamba` blocks: no depth scaling of out_proj
            d_ff = config.d_ff or 4 * config.d_model
            self.stack = SMambaEncoder([SMambaLayer(config, d_ff) for _ in range(config.n_layers)],
                                       config.d_model)
            return
        block = BidirectionalMamba if config.bidirectional else MambaMixer
        blocks: list[nn.Module] = []
        for _ in range(config.n_layers):
            blocks.append(block(config))
            if config.d_ff:
                blocks.append(FeedForward(config.d_model, config.d_ff, config.dropout))
        # As the official initialisation (GPT-2 style): out_proj scaled by 1/sqrt(n_layers) so
        # the residual stream's variance does not grow with depth
        with torch.no_grad():
            for module in blocks:
                for mixer in module.modules():
                    if isinstance(mixer, MambaMixer):
                        mixer.out_proj.weight /= math.sqrt(config.n_layers)
        norm = functools.partial(nn.RMSNorm, eps=1e-5)
        self.stack = ResidualStack(blocks, config.d_model, config.dropout, norm=norm)
