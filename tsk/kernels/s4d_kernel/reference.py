"""Reference S4D convolution kernel: the formula over the full [H, N, L] grid (tests only)."""

from __future__ import annotations

import torch

from tsk.kernels.common.dispatch import complex_dtype, compute_dtype


def s4d_kernel_reference(
    A: torch.Tensor,  # noqa: N803
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    log_dt: torch.Tensor,
    L: int,  # noqa: N803
    discretization: str = "zoh",
) -> torch.Tensor:
    """K [H, L] = 2 Re(sum_n C_n dB_n dA_n^l), written out literally; A, B, C [H, N] complex."""
    real = compute_dtype(log_dt, A)
    cdtype = complex_dtype(real)
    A, B, C = A.to(cdtype), B.to(cdtype), C.to(cdtype)
    dt = torch.exp(log_dt.to(real))[:, None]  # [H, 1]
    dtA = dt * A  # [H, N]
    steps = torch.arange(L, device=A.device, dtype=real)  # [L]
    if discretization == "zoh":
        powers = torch.exp(dtA[:, :, None] * steps)  # exp(dtA)^l  [H, N, L]
        coef = C * (torch.exp(dtA) - 1) / A * B  # [H, N]
    elif discretization == "bilinear":
        dA = (1 + dtA / 2) / (1 - dtA / 2)  # [H, N]
        dB = dt * B / (1 - dtA / 2)  # [H, N]
        powers = dA[:, :, None] ** steps  # [H, N, L]
        coef = C * dB  # [H, N]
    else:
        raise ValueError(f"discretization must be 'zoh' or 'bilinear', got {discretization!r}.")
    return 2 * torch.einsum("hn,hnl->hl", coef, powers).real
