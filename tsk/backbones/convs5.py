"""ConvS5 (Smith, De Mello, Kautz, Linderman & Byeon, NeurIPS 2023, "Convolutional State Space
Models for Long-Range Spatiotemporal Modeling"): a frames backbone `[B, T, d_model, H, W] ->
[B, T, d_model, H, W]` whose state is a tensor `[B, P, H, W]`.

    x_t = Lambda_bar * x_{t-1} + B_bar * u_t        (* on the left: per state channel; B_bar * u:
    y_t = 2 Re(C * x_t)                              a 3x3 convolution; C * x: another)

The transition is diagonal (one complex eigenvalue per state channel, the same at every pixel),
so training runs a parallel scan over time (`tsk.kernels.linear_scan`, the state tensor flattened
into its channel axis: the Triton path applies on a GPU) and generation a cheap step per frame.
As in S5 and the authors' code (NVlabs/ConvSSM): Lambda from the diagonalized HiPPO-LegS (its
normal part's eigenvalues, one of each conjugate pair, `blocks` copies of a smaller one if asked);
B and C complex convolution kernels initialized as He-normal real kernels mapped through the
eigenvectors (V^-1 B, C V); per-state steps log-uniform in [dt_min, dt_max]; zero-order hold
(Lambda_bar = exp(Lambda dt), B_bar = (Lambda_bar - 1) / Lambda B); Re(Lambda) clipped to at most
-1e-4 when used (clip_eigs). D is replaced by the authors' convolutional residual block on y
(their Moving-MNIST configs' "resnet"); each layer adds its input and normalizes the channels
(`FrameStack`). The complex convolutions run as real ones: the input map on real frames is two
real kernels, and Re(C * x) = C_re * x_re - C_im * x_im is one real kernel on [x_re, x_im].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import FrameStack, group_count, he_normal, init_like_flax, optim_hint
from tsk.backbones.registry import register_backbone
from tsk.backbones.s4 import nplr_legs
from tsk.kernels import linear_scan

MAX_REAL_PART = -1e-4  # clip_eigs: Re(Lambda) at most this, so every state decays


@dataclass
class ConvS5Config:
    d_model: int = 64  # channels of the frames the layers read and write (U)
    n_layers: int = 2
    d_state: int = 64  # state channels P of the full real system; P / 2 complex ones are kept
    blocks: int = 1  # Lambda: `blocks` copies of the HiPPO-LegS of size d_state / blocks
    kernel_size: int = 3  # the B and C convolutions (k_B = k_C)
    resnet_kernel_size: int = 3  # the residual block's convolutions (k_D)
    dt_min: float = 0.001
    dt_max: float = 0.1
    clip_eigs: bool = True
    num_groups: int | None = None  # the residual block's GroupNorm; None: gcd(d_model, 32)
    dropout: float = 0.0
    backend: str = "auto"  # linear_scan backend

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution (`learning_rate` is the
        estimator's)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": CategoricalDistribution([32, 64, 128]),
            "n_layers": IntDistribution(1, 4),
            "d_state": CategoricalDistribution([32, 64, 128]),
            "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        }


def hippo_diagonal(d_state: int, blocks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """S5's initialization: `Lambda[P/2]` and eigenvectors `V[P, P/2]` (complex128), block
    diagonal over `blocks` copies of the diagonalized HiPPO-LegS of size `d_state / blocks`."""
    if d_state % blocks or (d_state // blocks) % 2:
        raise ValueError(f"d_state={d_state} must split into {blocks} blocks of an even size "
                         "(conjugate pairs); pick d_state a multiple of 2 * blocks.")
    Lambda, _, _, V = nplr_legs(d_state // blocks)
    return Lambda.repeat(blocks), torch.block_diag(*[V] * blocks)


class ResnetBlock(nn.Module):
    """The authors' residual block on the SSM output (in place of D): `act(y + conv(act(GN(conv(
    act(GN(y)))))))` with two k x k convolutions, channels kept."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(y), approximate="tanh"))  # Flax's gelu is the tanh form
        h = self.conv2(F.gelu(self.norm2(h), approximate="tanh"))
        return F.gelu(y + h, approximate="tanh")


class ConvS5SSM(nn.Module):
    """One convolutional S5 layer: `u[B, T, U, H, W] -> [B, T, U, H, W]` (module docstring)."""

    def __init__(self, config: ConvS5Config) -> None:
        super().__init__()
        U, P, k = config.d_model, config.d_state, config.kernel_size  # noqa: N806
        half = P // 2
        self.config = config
        Lambda, V = hippo_diagonal(P, config.blocks)  # noqa: N806
        self.Lambda_re = optim_hint(nn.Parameter(Lambda.real.float()), weight_decay=0.0)
        self.Lambda_im = optim_hint(nn.Parameter(Lambda.imag.float()), weight_decay=0.0)
        # B~ = V^-1 B with B a real He-normal kernel from U input channels to P states
        B = V.conj().T @ he_normal(P, U * k * k, fan_in=U * k * k, dtype=torch.float64).to(V.dtype)  # noqa: N806
        self.B = nn.Parameter(torch.view_as_real(B.reshape(half, U, k, k)).float().contiguous())
        # C~ = C V with C a real He-normal kernel from P states to U output channels
        C = he_normal(U * k * k, P, fan_in=P * k * k, dtype=torch.float64).to(V.dtype) @ V  # noqa: N806
        C = C.reshape(U, k, k, half).permute(0, 3, 1, 2)  # noqa: N806  [U, P/2, k, k]
        self.C = nn.Parameter(torch.view_as_real(C).float().contiguous())
        log_dt = torch.empty(half).uniform_(math.log(config.dt_min), math.log(config.dt_max))
        self.log_step = optim_hint(nn.Parameter(log_dt), weight_decay=0.0)
        self.resnet = init_like_flax(ResnetBlock(U, config.resnet_kernel_size,
                                                 group_count(U, config.num_groups)))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ZOH: `Lambda_bar[P/2]` and `B_bar[P/2, U, k, k]`, both complex."""
        real = self.Lambda_re.clamp(max=MAX_REAL_PART) if self.config.clip_eigs else self.Lambda_re
        Lambda = torch.complex(real, self.Lambda_im)  # noqa: N806
        Lambda_bar = torch.exp(Lambda * self.log_step.exp())  # noqa: N806
        B_bar = torch.view_as_complex(self.B) * ((Lambda_bar - 1) / Lambda)[:, None, None, None]  # noqa: N806
        return Lambda_bar, B_bar

    def _input(self, u: torch.Tensor, B_bar: torch.Tensor) -> torch.Tensor:  # noqa: N803
        """`B_bar * u` for real frames `u[N, U, H, W]` -> complex `[N, P/2, H, W]`."""
        weight = torch.cat([B_bar.real, B_bar.imag]).to(u.dtype)
        both = F.conv2d(u, weight, padding=self.config.kernel_size // 2)
        both = both.to(torch.promote_types(both.dtype, torch.float32))  # no complex half
        return torch.complex(*both.chunk(2, dim=1))

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """`2 Re(C * x)` for complex states `x[N, P/2, H, W]` -> real `[N, U, H, W]`."""
        C = torch.view_as_complex(self.C)  # noqa: N806
        weight = 2 * torch.cat([C.real, -C.imag], dim=1)
        return F.conv2d(torch.cat([x.real, x.imag], dim=1), weight,
                        padding=self.config.kernel_size // 2)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch, length, _, height, width = u.shape
        Lambda_bar, B_bar = self.discrete()  # noqa: N806
        bu = self._input(u.reshape(batch * length, *u.shape[2:]), B_bar)  # [B T, P/2, H, W]
        a = Lambda_bar[:, None].expand(-1, height * width).reshape(1, -1)  # [1, P/2 H W]
        x, _ = linear_scan(a, bu.reshape(batch, length, -1), backend=self.config.backend)
        y = self._output(x.reshape(bu.shape)).to(u.dtype)
        return self.resnet(y).reshape(u.shape)

    def initial_state(self, batch: int, height: int, width: int) -> torch.Tensor:
        dtype = torch.view_as_complex(self.B).dtype
        return torch.zeros(batch, self.config.d_state // 2, height, width, dtype=dtype,
                           device=self.B.device)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: `u[B, U, H, W]`, `state[B, P/2, H, W]` (complex) -> (y, state)."""
        Lambda_bar, B_bar = self.discrete()  # noqa: N806
        state = Lambda_bar[:, None, None] * state + self._input(u, B_bar)
        return self.resnet(self._output(state).to(u.dtype)), state


@register_backbone(
    "convs5", ConvS5Config,
    "ConvS5: convolutional S5, a tensor state [P, H, W] per frame, parallel scan in time",
    paper="Smith et al. 2023 (ConvSSM)", kind="frames",
)
class ConvS5(nn.Module):
    """Stacked ConvS5 layers over video frames, `[B, T, d_model, H, W]`; causal in time, with
    `step()` for frame-by-frame generation."""

    causal = True

    def __init__(self, config: ConvS5Config) -> None:
        super().__init__()
        for name in ("kernel_size", "resnet_kernel_size"):
            if getattr(config, name) < 1 or getattr(config, name) % 2 == 0:
                raise ValueError(f"{name} must be a positive odd number ('same' padding), got "
                                 f"{getattr(config, name)}.")
        if not 0 < config.dt_min <= config.dt_max:
            raise ValueError(f"Need 0 < dt_min <= dt_max, got {config.dt_min}, {config.dt_max}.")
        self.config = config
        self.stack = FrameStack([ConvS5SSM(config) for _ in range(config.n_layers)],
                                config.d_model, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, T, d_model, H, W]` -> `[B, T, d_model, H, W]`."""
        return self.stack(x)

    def initial_state(self, batch: int, height: int, width: int) -> list[torch.Tensor]:
        return self.stack.initial_state(batch, height, width)

    def step(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One frame `x[B, d_model, H, W]`, one state per layer -> `(y[B, d_model, H, W], state)`."""
        return self.stack.step(x, state)
