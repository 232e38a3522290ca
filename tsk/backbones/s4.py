"""S4D (Gu et al., 2022, "On the Parameterization and Initialization of Diagonal State Space
Models"): a diagonal complex SSM per channel, discretized (ZOH or bilinear), turned into a long
convolution kernel by a Vandermonde product and applied with an FFT convolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import ResidualStack
from tsk.backbones.registry import register_backbone
from tsk.kernels import fftconv, s4d_kernel


def s4d_init(d_state: int, init: str) -> torch.Tensor:
    """Diagonal A `[d_state // 2]` (one of each conjugate pair): S4D-Lin or S4D-Inv."""
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":  # -1/2 + i pi n
        imag = math.pi * n
    elif init == "inv":  # -1/2 + i N/pi (N/(2n+1) - 1)
        imag = d_state / math.pi * (d_state / (2 * n + 1) - 1)
    else:
        raise ValueError(f"Unknown S4D init {init!r}; use 'lin' or 'inv'.")
    return torch.complex(torch.full_like(n, -0.5), imag).to(torch.complex64)


def optim_hint(param: nn.Parameter, **hint: float) -> nn.Parameter:
    """Attach optimizer settings (e.g. `lr`, `weight_decay`) that the training loop honours."""
    param._optim = hint  # type: ignore[attr-defined]
    return param


class S4DKernel(nn.Module):
    """Generates the convolution kernel `K[H, L]` of H independent diagonal SSMs."""

    def __init__(
        self, d_model: int, d_state: int, dt_min: float, dt_max: float, init: str,
        discretization: str, lr: float | None,
    ) -> None:
        super().__init__()
        self.discretization = discretization
        hint = {"weight_decay": 0.0} if lr is None else {"weight_decay": 0.0, "lr": lr}
        log_dt = torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        A = s4d_init(d_state, init).expand(d_model, -1)
        C = torch.randn(d_model, d_state // 2, dtype=torch.complex64)  # variance 1 per entry
        self.log_dt = optim_hint(nn.Parameter(log_dt), **hint)
        self.log_A_real = optim_hint(nn.Parameter(torch.log(-A.real).clone()), **hint)
        self.A_imag = optim_hint(nn.Parameter(A.imag.clone()), **hint)
        self.B = optim_hint(nn.Parameter(torch.view_as_real(torch.ones_like(C))), **hint)
        self.C = nn.Parameter(torch.view_as_real(C))

    def A(self) -> torch.Tensor:
        """`[H, N/2]` complex, real part kept negative (stable) through its log."""
        return torch.complex(-torch.exp(self.log_A_real), self.A_imag)

    def forward(self, length: int) -> torch.Tensor:
        B, C = torch.view_as_complex(self.B), torch.view_as_complex(self.C)
        return s4d_kernel(self.A(), B, C, self.log_dt, length, discretization=self.discretization)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(dA, dB, C)`, each `[H, N/2]` complex, for the recurrence."""
        A, B = self.A(), torch.view_as_complex(self.B)
        dtA = torch.exp(self.log_dt)[:, None] * A
        if self.discretization == "zoh":
            dA = torch.exp(dtA)
            dB = (dA - 1) / A * B
        else:
            dA = (1 + dtA / 2) / (1 - dtA / 2)
            dB = torch.exp(self.log_dt)[:, None] * B / (1 - dtA / 2)
        return dA, dB, torch.view_as_complex(self.C)


class S4DLayer(nn.Module):
    """SSM convolution + skip D, GELU, then a GLU position-wise output projection (as S4D)."""

    def __init__(self, config: S4DConfig) -> None:
        super().__init__()
        self.kernel = S4DKernel(
            config.d_model, config.d_state, config.dt_min, config.dt_max, config.init,
            config.discretization, config.ssm_lr,
        )
        self.D = nn.Parameter(torch.randn(config.d_model))
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.d_model, 2 * config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, H]` -> `[B, L, H]`, causal."""
        u = x.transpose(1, 2)  # [B, H, L]
        y = fftconv(u, self.kernel(u.shape[-1]), self.D)
        y = self.dropout(F.gelu(y)).transpose(1, 2)
        return F.glu(self.output(y), dim=-1)

    def initial_state(self, batch: int) -> torch.Tensor:
        H, N = self.kernel.A_imag.shape
        return torch.zeros(batch, H, N, dtype=torch.complex64, device=self.D.device)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x[B, H]`, state `[B, H, N/2]` complex -> `(y[B, H], state)`."""
        dA, dB, C = self.kernel.discrete()
        state = dA * state + dB * x.unsqueeze(-1)
        y = 2 * torch.einsum("hn,bhn->bh", C, state).real + self.D * x
        y = self.dropout(F.gelu(y))
        return F.glu(self.output(y), dim=-1), state


@dataclass
class S4DConfig:
    d_model: int = 64
    n_layers: int = 2
    d_state: int = 64
    dropout: float = 0.1
    dt_min: float = 0.001
    dt_max: float = 0.1
    init: str = "inv"
    discretization: str = "zoh"
    ssm_lr: float | None = 1e-3


@register_backbone(
    "s4d", S4DConfig, "diagonal state space model (S4D-Lin/Inv, ZOH/bilinear) with FFT conv",
    paper="Gu et al. 2022, On the Parameterization and Initialization of Diagonal SSMs",
)
class S4D(nn.Module):
    """A pre-norm residual stack of S4D layers; causal; `step()` runs it as a recurrence."""

    def __init__(self, config: S4DConfig) -> None:
        super().__init__()
        if config.d_state % 2:
            raise ValueError(f"d_state must be even (conjugate pairs), got {config.d_state}.")
        self.config = config
        self.stack = ResidualStack(
            [S4DLayer(config) for _ in range(config.n_layers)], config.d_model, config.dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack(x)

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return self.stack.initial_state(batch)

    def step(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list]:
        return self.stack.step(x, state)
