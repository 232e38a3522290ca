"""Triton Vandermonde reduction for the S4D kernel, forward and backward.

K[h, l] = 2 Re(sum_n c[h, n] exp(lam[h, n] l)). The forward tiles (h, block of l) and loops over n
in registers; the backward tiles (h, block of n) and loops over l, accumulating
S0 = sum_l g_l exp(lam l) and S1 = sum_l g_l l exp(lam l). The [H, N, L] powers never reach
memory. Complex numbers are (real, imag) float32 pairs inside the kernels.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import triton_device_guard
from tsk.kernels.s4d_kernel.eager import discretize

_BLOCK_L = 128
_BLOCK_N = 32


@triton.jit
def _vandermonde_fwd_kernel(
    c_ptr, lam_ptr, out_ptr, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr
):
    h = tl.program_id(0)
    steps = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    l_f = steps.to(tl.float32)
    acc = tl.zeros([BLOCK_L], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        mask = n < N
        off = (h * N + n) * 2
        c_re = tl.load(c_ptr + off, mask=mask, other=0.0)
        c_im = tl.load(c_ptr + off + 1, mask=mask, other=0.0)
        lam_re = tl.load(lam_ptr + off, mask=mask, other=0.0)
        lam_im = tl.load(lam_ptr + off + 1, mask=mask, other=0.0)
        mag = tl.exp(lam_re[:, None] * l_f[None, :])  # [BLOCK_N, BLOCK_L]
        phase = lam_im[:, None] * l_f[None, :]
        # Re(c * exp(lam l)) = |.| (c_re cos - c_im sin)
        term = mag * (c_re[:, None] * tl.cos(phase) - c_im[:, None] * tl.sin(phase))
        acc += tl.sum(term, axis=0)
    tl.store(out_ptr + h * L + steps, 2.0 * acc, mask=steps < L)


@triton.jit
def _vandermonde_bwd_kernel(
    g_ptr, lam_ptr, s_ptr, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr
):
    # s[h, n] = (Re S0, Im S0, Re S1, Im S1)
    h = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = n < N
    lam_re = tl.load(lam_ptr + (h * N + n) * 2, mask=mask_n, other=0.0)
    lam_im = tl.load(lam_ptr + (h * N + n) * 2 + 1, mask=mask_n, other=0.0)
    s0_re = tl.zeros([BLOCK_N], dtype=tl.float32)
    s0_im = tl.zeros([BLOCK_N], dtype=tl.float32)
    s1_re = tl.zeros([BLOCK_N], dtype=tl.float32)
    s1_im = tl.zeros([BLOCK_N], dtype=tl.float32)
    for l0 in range(0, L, BLOCK_L):
        steps = l0 + tl.arange(0, BLOCK_L)
        l_f = steps.to(tl.float32)
        g = tl.load(g_ptr + h * L + steps, mask=steps < L, other=0.0)  # [BLOCK_L]
        mag = tl.exp(lam_re[:, None] * l_f[None, :]) * g[None, :]  # [BLOCK_N, BLOCK_L]
        phase = lam_im[:, None] * l_f[None, :]
        v_re = mag * tl.cos(phase)
        v_im = mag * tl.sin(phase)
        s0_re += tl.sum(v_re, axis=1)
        s0_im += tl.sum(v_im, axis=1)
        s1_re += tl.sum(v_re * l_f[None, :], axis=1)
        s1_im += tl.sum(v_im * l_f[None, :], axis=1)
    base = s_ptr + (h * N + n) * 4
    tl.store(base, s0_re, mask=mask_n)
    tl.store(base + 1, s0_im, mask=mask_n)
    tl.store(base + 2, s1_re, mask=mask_n)
    tl.store(base + 3, s1_im, mask=mask_n)


class VandermondeTriton(torch.autograd.Function):
    """K [H, L] = 2 Re(sum_n coef exp(lam l)); coef, lam [H, N] complex64."""

    @staticmethod
    def forward(ctx, coef, lam, length):
        heads, state = coef.shape
        c_r = torch.view_as_real(coef.contiguous())
        lam_r = torch.view_as_real(lam.contiguous())
        out = torch.empty(heads, length, device=coef.device, dtype=torch.float32)
        with triton_device_guard(coef):
            grid = (heads, triton.cdiv(length, _BLOCK_L))
            _vandermonde_fwd_kernel[grid](
                c_r, lam_r, out, state, length, BLOCK_N=_BLOCK_N, BLOCK_L=_BLOCK_L
            )
        ctx.save_for_backward(coef, lam)
        return out

    @staticmethod
    def backward(ctx, grad_k):
        coef, lam = ctx.saved_tensors
        heads, state = coef.shape
        length = grad_k.shape[-1]
        sums = torch.empty(heads, state, 4, device=coef.device, dtype=torch.float32)
        with triton_device_guard(coef):
            grid = (heads, triton.cdiv(state, _BLOCK_N))
            _vandermonde_bwd_kernel[grid](
                grad_k.contiguous().float(), torch.view_as_real(lam.contiguous()), sums,
                state, length, BLOCK_N=_BLOCK_N, BLOCK_L=_BLOCK_L,
            )
        s0 = torch.complex(sums[..., 0], sums[..., 1])
        s1 = torch.complex(sums[..., 2], sums[..., 3])
        return 2 * s0.conj(), 2 * (coef * s1).conj(), None


def s4d_kernel_triton(
    A: torch.Tensor,  # noqa: N803
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    log_dt: torch.Tensor,
    L: int,  # noqa: N803
    discretization: str = "zoh",
) -> torch.Tensor:
    """S4D kernel [H, L] (float32): torch discretization + the fused Triton Vandermonde."""
    coef, lam = discretize(A, B, C, log_dt, discretization)
    return VandermondeTriton.apply(coef.to(torch.complex64), lam.to(torch.complex64), L)
