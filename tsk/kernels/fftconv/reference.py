"""Reference causal convolution: a literal sum over kernel taps, fp32 math (tests only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tsk.kernels.common.dispatch import compute_dtype


def fftconv_reference(
    u: torch.Tensor,
    k: torch.Tensor,
    D: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> torch.Tensor:
    """y[b, h, t] = (sum_{s <= t} k[h, s] u[b, h, t - s] + D[h] u[b, h, t]) * gate[b, h, t].

    u [B, H, L], k [H, Lk] with Lk <= L, D [H] or None, gate [B, H, L] or None -> y [B, H, L].
    One shifted copy of u per kernel tap: O(L * Lk) work, meant for tests.
    """
    dtype = compute_dtype(u, k, D, gate)
    length = u.shape[-1]
    x = u.to(dtype)
    taps = k.to(dtype)
    y = torch.zeros_like(x)
    for shift in range(taps.shape[-1]):
        # u delayed by `shift` steps (zeros shifted in at the start), weighted by tap `shift`
        delayed = F.pad(x[..., : length - shift], (shift, 0))
        y = y + taps[:, shift, None] * delayed
    if D is not None:
        y = y + D.to(dtype)[:, None] * x
    if gate is not None:
        y = y * gate.to(dtype)
    return y.to(u.dtype)
