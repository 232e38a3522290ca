"""Fast causal convolution with torch.fft (any device; the CPU path)."""

from __future__ import annotations

import torch

from tsk.kernels._dispatch import compute_dtype, fft_size


def fftconv_torch(
    u: torch.Tensor,
    k: torch.Tensor,
    D: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal convolution of u [B, H, L] with k [H, Lk] through one rfft size n >= L + Lk - 1.

    Zero padding to n >= L + Lk - 1 turns the circular convolution into the linear one, so the
    first L outputs are exact for any L (odd included). n is `fft_size`'s fast length, not 2L
    (2L can have a large prime factor; a short kernel needs far less). Differentiable through
    torch.fft.
    """
    dtype = compute_dtype(u, k, D, gate)
    length = u.shape[-1]
    n_fft = fft_size(length + k.shape[-1] - 1)
    x = u.to(dtype)
    u_f = torch.fft.rfft(x, n=n_fft)  # [B, H, n // 2 + 1]
    k_f = torch.fft.rfft(k.to(dtype), n=n_fft)  # [H, n // 2 + 1]
    y = torch.fft.irfft(u_f * k_f, n=n_fft)[..., :length]  # [B, H, L]
    if D is not None:
        y = y + D.to(dtype)[:, None] * x
    if gate is not None:
        y = y * gate.to(dtype)
    return y.to(u.dtype)
