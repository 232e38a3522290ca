"""Reference companion-SSM kernel: a literal loop of matrix-vector products (tests only)."""

from __future__ import annotations

import torch

from tsk.kernels.common.dispatch import compute_dtype


def companion_matrix(a: torch.Tensor) -> torch.Tensor:
    """`A[H, N, N]` = shift matrix (ones just below the diagonal) + `a` as the last column."""
    state = a.shape[-1]
    shift = torch.diag_embed(a.new_ones(state - 1), offset=-1)  # [N, N]
    last = torch.zeros(state, dtype=a.dtype, device=a.device)
    last[-1] = 1.0
    return shift + a[..., :, None] * last  # [H, N, N]


def companion_kernel_reference(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, L: int  # noqa: N803
) -> torch.Tensor:
    """K[h, l] = c[h]^T A[h]^l b[h] for l < L, building A^l b one product at a time: O(L N^2)."""
    dtype = compute_dtype(a, b, c)
    A = companion_matrix(a.to(dtype))  # [H, N, N]
    state = b.to(dtype)  # A^l b, [H, N]
    weights = c.to(dtype)
    taps = []
    for _ in range(L):
        taps.append((weights * state).sum(-1))  # [H]
        state = (A @ state.unsqueeze(-1)).squeeze(-1)
    return torch.stack(taps, dim=-1)  # [H, L]
