"""Reference Cauchy kernel: the full [H, L, N] broadcast (tests only)."""

from __future__ import annotations

import torch


def cauchy_reference(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """out[h, l] = sum_n v[h, n] / (z[l] - w[h, n]); v, w [H, N], z [L] or [H, L] -> [H, L]."""
    cdtype = torch.promote_types(torch.promote_types(v.dtype, w.dtype), z.dtype)
    cdtype = torch.promote_types(cdtype, torch.complex64)
    v, z, w = v.to(cdtype), z.to(cdtype), w.to(cdtype)
    z2 = z.expand(v.shape[0], -1)  # [H, L]
    return (v[:, None, :] / (z2[:, :, None] - w[:, None, :])).sum(-1)
