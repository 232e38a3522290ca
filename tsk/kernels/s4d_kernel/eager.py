"""Fast S4D kernel in torch: the Vandermonde product computed blockwise over L.

K[h, l] = 2 Re(sum_n c[h, n] exp(lam[h, n] l)), with (c, lam) from the discretization. For a block
of steps l = l0 + j, j < T: exp(lam l) = exp(lam l0) exp(lam j), so one [H, N, T] table of
exp(lam j) serves every block through a batched mat-vec with c * exp(lam l0). Memory is
O(H N T) instead of O(H N L); the backward (hand-written) reuses the same table. All in real
arithmetic (Re and Im parts stacked), as complex elementwise ops are slow on CPU.
"""

from __future__ import annotations

import math

import torch

from tsk.kernels.common.dispatch import complex_dtype, compute_dtype

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
    """K [H, L] = 2 Re(coef @ exp(lam * arange(L))) for coef, lam [H, N] complex.

    Works in real arithmetic (complex elementwise ops are slow on CPU): the [H, 2N, T] table
    holds Re and Im of exp(lam j) for j < T, each block l0 + j is one real batched mat-vec.
    """

    @staticmethod
    def forward(ctx, coef, lam, length, block):
        heads = coef.shape[0]
        table = _power_table(lam, min(block, length))  # [H, 2N, T]
        if length <= block:  # one block: keep the table, the backward reads it as it is
            ctx.save_for_backward(coef, lam, table)
        else:
            ctx.save_for_backward(coef, lam)
        ctx.length, ctx.block = length, block
        out = coef.real.new_empty(heads, length)
        for start in range(0, length, block):
            stop = min(start + block, length)
            scaled = coef * _shift(lam, start)  # [H, N]: coef exp(lam l0)
            row = torch.cat([scaled.real, -scaled.imag], dim=-1)[:, None, :]  # [H, 1, 2N]
            out[:, start:stop] = 2 * torch.bmm(row, table[:, :, : stop - start])[:, 0]
        return out

    @staticmethod
    def backward(ctx, grad_k):
        coef, lam, *kept = ctx.saved_tensors
        length, block = ctx.length, ctx.block
        state = coef.shape[1]
        grad_k = grad_k.to(coef.real.dtype)
        if kept:  # one block from l = 0: S0, S1 in one product with the forward's table
            steps = torch.arange(length, device=grad_k.device, dtype=grad_k.dtype)
            rhs = torch.stack([grad_k, grad_k * steps], dim=1)  # [H, 2, L]
            sums = torch.bmm(rhs, kept[0].transpose(1, 2))  # [H, 2, 2N]
            s0, s1 = torch.complex(sums[..., :state], sums[..., state:]).unbind(1)
            return 2 * s0.conj(), 2 * (coef * s1).conj(), None, None
        table = _power_table(lam, min(block, length), time_major=True)  # [H, T, 2N]
        s0 = torch.zeros_like(coef)  # sum_l g_l exp(lam l)
        s1 = torch.zeros_like(coef)  # sum_l g_l l exp(lam l)
        for start in range(0, length, block):
            stop = min(start + block, length)
            g = grad_k[:, start:stop]  # [H, T]
            steps = torch.arange(start, stop, device=g.device, dtype=g.dtype)
            rhs = torch.stack([g, g * steps], dim=1)  # [H, 2, T]
            sums = torch.bmm(rhs, table[:, : stop - start])  # [H, 2, 2N] (row form: fast)
            sums = torch.complex(sums[..., :state], sums[..., state:]).transpose(1, 2)  # [H, N, 2]
            shift = _shift(lam, start)[..., None]  # [H, N, 1]
            sums = sums * shift
            s0 += sums[..., 0]
            s1 += sums[..., 1]
        # K = 2 Re(coef V): grad wrt coef is 2 conj(S0), wrt lam 2 conj(coef S1) (torch convention)
        return 2 * s0.conj(), 2 * (coef * s1).conj(), None, None


def _power_table(lam: torch.Tensor, block: int, time_major: bool = False) -> torch.Tensor:
    """Re exp(lam j) stacked over Im exp(lam j), j < T, from real exp/cos/sin.

    [H, 2N, T], or [H, T, 2N] when `time_major` (the layouts that make the forward's and the
    backward's batched products row-vector-times-matrix, much faster on CPU than mat-vec).
    """
    steps = torch.arange(block, device=lam.device, dtype=lam.real.dtype)
    if time_major:
        magnitude = torch.exp(steps[:, None] * lam.real[:, None, :])  # [H, T, N]
        phase = steps[:, None] * lam.imag[:, None, :]
        dim = 2
    else:
        magnitude = torch.exp(lam.real[:, :, None] * steps)  # [H, N, T]
        phase = lam.imag[:, :, None] * steps
        dim = 1
    return torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=dim)


def _shift(lam: torch.Tensor, start: int) -> torch.Tensor:
    """exp(lam * start) [H, N], with the phase reduced in float64 (start can be large)."""
    if start == 0:
        return torch.ones_like(lam)
    lam64 = lam.to(torch.complex128)
    magnitude = torch.exp(lam64.real * start)
    phase = torch.remainder(lam64.imag * start, 2 * math.pi)
    return torch.polar(magnitude, phase).to(lam.dtype)


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
