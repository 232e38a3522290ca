"""Fast S4D kernel in torch: the Vandermonde product computed blockwise over L.

K[h, l] = 2 Re(sum_n c[h, n] exp(lam[h, n] l)), with (c, lam) from the discretization. For a block
of steps l = l0 + j, j < T: exp(lam l) = exp(lam l0) exp(lam j), so one [H, N, T] table of
exp(lam j) serves every block through a batched complex mat-vec with c * exp(lam l0). Memory is
O(H N T) instead of O(H N L); the backward (hand-written) reuses the same table.
"""

from __future__ import annotations

import torch

from tsk.kernels._dispatch import complex_dtype, compute_dtype

DEFAULT_BLOCK = 256


def discretize(
    A: torch.Tensor,  # noqa: N803
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    log_dt: torch.Tensor,
    discretization: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coef, lam) [H, N] complex with K[h, l] = 2 Re(sum_n coef[h, n] exp(lam[h, n] l))."""
    real = compute_dtype(log_dt, A)
    cdtype = complex_dtype(real)
    A, B, C = A.to(cdtype), B.to(cdtype), C.to(cdtype)
    dt = torch.exp(log_dt.to(real))[:, None]  # [H, 1]
    dtA = dt * A  # [H, N]
    if discretization == "zoh":
        return C * B * torch.expm1(dtA) / A, dtA
    if discretization == "bilinear":
        denom = 1 - dtA / 2  # [H, N]
        dA = (1 + dtA / 2) / denom  # [H, N]
        return C * B * dt / denom, torch.log(dA)
    raise ValueError(f"discretization must be 'zoh' or 'bilinear', got {discretization!r}.")


class _VandermondeBlocked(torch.autograd.Function):
    """K [H, L] = 2 Re(coef @ exp(lam * arange(L))) for coef, lam [H, N] complex."""

    @staticmethod
    def forward(ctx, coef, lam, length, block):
        ctx.save_for_backward(coef, lam)
        ctx.length, ctx.block = length, block
        heads = coef.shape[0]
        real = coef.real.dtype
        out = torch.empty(heads, length, device=coef.device, dtype=real)
        table = _power_table(lam, min(block, length))  # [H, N, T]
        for start in range(0, length, block):
            stop = min(start + block, length)
            scaled = (coef * torch.exp(lam * start)).unsqueeze(1)  # [H, 1, N]
            out[:, start:stop] = 2 * torch.bmm(scaled, table[:, :, : stop - start]).real[:, 0]
        return out

    @staticmethod
    def backward(ctx, grad_k):
        coef, lam = ctx.saved_tensors
        length, block = ctx.length, ctx.block
        grad_k = grad_k.to(coef.real.dtype)
        table = _power_table(lam, min(block, length))  # [H, N, T]
        s0 = torch.zeros_like(coef)  # sum_l g_l exp(lam l)
        s1 = torch.zeros_like(coef)  # sum_l g_l l exp(lam l)
        for start in range(0, length, block):
            stop = min(start + block, length)
            g = grad_k[:, start:stop]  # [H, T]
            steps = torch.arange(start, stop, device=g.device, dtype=g.dtype)
            rhs = torch.stack([g, g * steps], dim=-1).to(coef.dtype)  # [H, T, 2]
            sums = torch.bmm(table[:, :, : stop - start], rhs)  # [H, N, 2]
            shift = torch.exp(lam * start)  # [H, N]
            s0 += shift * sums[..., 0]
            s1 += shift * sums[..., 1]
        # K = 2 Re(coef V): grad wrt coef is 2 conj(S0), wrt lam 2 conj(coef S1) (torch convention)
        return 2 * s0.conj(), 2 * (coef * s1).conj(), None, None


def _power_table(lam: torch.Tensor, block: int) -> torch.Tensor:
    steps = torch.arange(block, device=lam.device, dtype=lam.real.dtype)
    return torch.exp(lam[:, :, None] * steps)  # [H, N, T]


def vandermonde_torch(
    coef: torch.Tensor, lam: torch.Tensor, L: int, block: int = DEFAULT_BLOCK  # noqa: N803
) -> torch.Tensor:
    """2 Re(sum_n coef[h, n] exp(lam[h, n] l)) for l < L -> [H, L], without an [H, N, L] tensor."""
    return _VandermondeBlocked.apply(coef, lam, L, block)


def s4d_kernel_torch(
    A: torch.Tensor,  # noqa: N803
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    log_dt: torch.Tensor,
    L: int,  # noqa: N803
    discretization: str = "zoh",
    block: int = DEFAULT_BLOCK,
) -> torch.Tensor:
    """S4D kernel [H, L] through `discretize` + the blocked Vandermonde product."""
    coef, lam = discretize(A, B, C, log_dt, discretization)
    return vandermonde_torch(coef, lam, L, block)
