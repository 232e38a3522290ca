"""Fast causal convolution with torch.fft (any device; the CPU path)."""

from __future__ import annotations

import torch

from tsk.kernels.common.dispatch import compute_dtype
from tsk.kernels.common.polynomial import poly_mul


def fftconv_torch(
    u: torch.Tensor,
    k: torch.Tensor,
    D: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal convolution of u [B, H, L] with k [H, Lk]: the first L coefficients of the
    product `u * k` (`poly_mul`: one rfft length n >= L + Lk - 1, `fft_size`'s fast one rather
    than 2L, which can have a large prime factor; its backward written out)."""
    dtype = compute_dtype(u, k, D, gate)
    x = u.to(dtype)
    y = poly_mul(x, k.to(dtype), u.shape[-1])  # [B, H, L]
    if D is not None:
        y = y + D.to(dtype)[:, None] * x
    if gate is not None:
        y = y * gate.to(dtype)
    return y.to(u.dtype)
