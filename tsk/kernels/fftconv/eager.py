"""Fast causal convolution with torch.fft (any device; the CPU path)."""

from __future__ import annotations

import torch

from tsk.kernels.common.dispatch import compute_dtype
from tsk.kernels.common.polynomial import fit_length, poly_mul


def fftconv_torch(
    u: torch.Tensor,
    k: torch.Tensor,
    D: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal convolution of u [B, H, L] with k [H, Lk]: the first L coefficients of the
    product `u * k` (`poly_mul`: one rfft length n >= L + Lk - 1, `fft_size`'s fast one rather
    than 2L, which can have a large prime factor; its backward written out). The skip `D u` is
    the convolution's tap 0, added to `k[:, 0]` before the product."""
    dtype = compute_dtype(u, k, D, gate)
    x, k = u.to(dtype), k.to(dtype)
    if D is not None:  # D u is the product's first tap: one [H] add, not two [B, H, L] passes
        k = torch.cat([fit_length(k[:, :1], 1) + D.to(dtype)[:, None], k[:, 1:]], dim=-1)
    y = poly_mul(x, k, u.shape[-1])  # [B, H, L]
    if gate is not None:
        y = y * gate.to(dtype)
    return y.to(u.dtype)
