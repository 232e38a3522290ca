"""Triton Cauchy kernel, forward and backward, without the [H, L, N] table in memory.

Forward: tiles (h, block of l), loop over n in registers. Backward: tiles (h, block of n), loop
over l, for grad v = sum_l g conj(r) and grad w = conj(v) sum_l g conj(r^2), with r = 1 / (z - w);
a second kernel tiles (h, block of l) for grad z = -g sum_n conj(v r^2). Complex values are
interleaved (real, imag) float32 pairs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import triton_device_guard

_BLOCK_L = 64
_BLOCK_N = 32


@triton.jit
def _load_complex(ptr, index, mask):
    """(real, imag) of interleaved complex values at `index`; masked entries are 0."""
    re = tl.load(ptr + index * 2, mask=mask, other=0.0)
    im = tl.load(ptr + index * 2 + 1, mask=mask, other=0.0)
    return re, im


@triton.jit
def _recip(z_re, z_im, w_re, w_im):
    # 1 / (z - w), broadcast [BLOCK_N, BLOCK_L] or [BLOCK_L, BLOCK_N] by the caller's shapes
    d_re = z_re - w_re
    d_im = z_im - w_im
    scale = 1.0 / (d_re * d_re + d_im * d_im)
    return d_re * scale, -d_im * scale


@triton.jit
def _cauchy_fwd_kernel(v_ptr, z_ptr, w_ptr, out_ptr, N, L,
                       BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0)
    l_idx = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_l = l_idx < L
    z_re, z_im = _load_complex(z_ptr, h * L + l_idx, mask_l)
    acc_re = tl.zeros([BLOCK_L], dtype=tl.float32)
    acc_im = tl.zeros([BLOCK_L], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        mask_n = n < N
        v_re, v_im = _load_complex(v_ptr, h * N + n, mask_n)
        # padded modes: w = z + 1 keeps the reciprocal finite, v = 0 removes the term
        w_re, w_im = _load_complex(w_ptr, h * N + n, mask_n)
        w_re2 = tl.where(mask_n[None, :], w_re[None, :], z_re[:, None] + 1.0)
        r_re, r_im = _recip(z_re[:, None], z_im[:, None], w_re2, w_im[None, :])  # [BL, BN]
        acc_re += tl.sum(r_re * v_re[None, :] - r_im * v_im[None, :], axis=1)
        acc_im += tl.sum(r_re * v_im[None, :] + r_im * v_re[None, :], axis=1)
    tl.store(out_ptr + (h * L + l_idx) * 2, acc_re, mask=mask_l)
    tl.store(out_ptr + (h * L + l_idx) * 2 + 1, acc_im, mask=mask_l)


@triton.jit
def _cauchy_bwd_vw_kernel(v_ptr, z_ptr, w_ptr, g_ptr, gv_ptr, gw_ptr, N, L,
                          BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = n < N
    v_re, v_im = _load_complex(v_ptr, h * N + n, mask_n)
    w_re, w_im = _load_complex(w_ptr, h * N + n, mask_n)
    s1_re = tl.zeros([BLOCK_N], dtype=tl.float32)
    s1_im = tl.zeros([BLOCK_N], dtype=tl.float32)
    s2_re = tl.zeros([BLOCK_N], dtype=tl.float32)
    s2_im = tl.zeros([BLOCK_N], dtype=tl.float32)
    for l0 in range(0, L, BLOCK_L):
        l_idx = l0 + tl.arange(0, BLOCK_L)
        mask_l = l_idx < L
        z_re, z_im = _load_complex(z_ptr, h * L + l_idx, mask_l)
        g_re, g_im = _load_complex(g_ptr, h * L + l_idx, mask_l)
        # padded points: z = w + 1 keeps r finite, g = 0 removes them
        z_re2 = tl.where(mask_l[None, :], z_re[None, :], w_re[:, None] + 1.0)
        r_re, r_im = _recip(z_re2, z_im[None, :], w_re[:, None], w_im[:, None])  # [BN, BL]
        # g * conj(r)
        s1_re += tl.sum(g_re[None, :] * r_re + g_im[None, :] * r_im, axis=1)
        s1_im += tl.sum(g_im[None, :] * r_re - g_re[None, :] * r_im, axis=1)
        q_re = r_re * r_re - r_im * r_im  # r^2
        q_im = 2.0 * r_re * r_im
        s2_re += tl.sum(g_re[None, :] * q_re + g_im[None, :] * q_im, axis=1)
        s2_im += tl.sum(g_im[None, :] * q_re - g_re[None, :] * q_im, axis=1)
    tl.store(gv_ptr + (h * N + n) * 2, s1_re, mask=mask_n)
    tl.store(gv_ptr + (h * N + n) * 2 + 1, s1_im, mask=mask_n)
    # grad w = conj(v) * s2
    tl.store(gw_ptr + (h * N + n) * 2, v_re * s2_re + v_im * s2_im, mask=mask_n)
    tl.store(gw_ptr + (h * N + n) * 2 + 1, v_re * s2_im - v_im * s2_re, mask=mask_n)


@triton.jit
def _cauchy_bwd_z_kernel(v_ptr, z_ptr, w_ptr, g_ptr, gz_ptr, N, L,
                         BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0)
    l_idx = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_l = l_idx < L
    z_re, z_im = _load_complex(z_ptr, h * L + l_idx, mask_l)
    acc_re = tl.zeros([BLOCK_L], dtype=tl.float32)  # sum_n v r^2
    acc_im = tl.zeros([BLOCK_L], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        mask_n = n < N
        v_re, v_im = _load_complex(v_ptr, h * N + n, mask_n)
        w_re, w_im = _load_complex(w_ptr, h * N + n, mask_n)
        w_re2 = tl.where(mask_n[None, :], w_re[None, :], z_re[:, None] + 1.0)
        r_re, r_im = _recip(z_re[:, None], z_im[:, None], w_re2, w_im[None, :])
        q_re = r_re * r_re - r_im * r_im
        q_im = 2.0 * r_re * r_im
        acc_re += tl.sum(q_re * v_re[None, :] - q_im * v_im[None, :], axis=1)
        acc_im += tl.sum(q_re * v_im[None, :] + q_im * v_re[None, :], axis=1)
    g_re, g_im = _load_complex(g_ptr, h * L + l_idx, mask_l)
    # grad z = -g * conj(acc)
    tl.store(gz_ptr + (h * L + l_idx) * 2, -(g_re * acc_re + g_im * acc_im), mask=mask_l)
    tl.store(gz_ptr + (h * L + l_idx) * 2 + 1, -(g_im * acc_re - g_re * acc_im), mask=mask_l)


class CauchyTriton(torch.autograd.Function):
    """v, w [H, N], z [H, L], complex64 and contiguous -> out [H, L] complex64."""

    @staticmethod
    def forward(ctx, v, z, w):
        heads, state = v.shape
        length = z.shape[-1]
        out = z.new_empty(heads, length)
        with triton_device_guard(v):
            _cauchy_fwd_kernel[(heads, triton.cdiv(length, _BLOCK_L))](
                torch.view_as_real(v), torch.view_as_real(z), torch.view_as_real(w),
                torch.view_as_real(out), state, length, BLOCK_N=_BLOCK_N, BLOCK_L=_BLOCK_L,
            )
        ctx.save_for_backward(v, z, w)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        v, z, w = ctx.saved_tensors
        heads, state = v.shape
        length = z.shape[-1]
        g = torch.view_as_real(grad_out.to(torch.complex64).contiguous())
        v_r, z_r, w_r = torch.view_as_real(v), torch.view_as_real(z), torch.view_as_real(w)
        grad_v, grad_w, grad_z = torch.empty_like(v), torch.empty_like(w), None
        with triton_device_guard(v):
            _cauchy_bwd_vw_kernel[(heads, triton.cdiv(state, _BLOCK_N))](
                v_r, z_r, w_r, g, torch.view_as_real(grad_v), torch.view_as_real(grad_w),
                state, length, BLOCK_N=_BLOCK_N, BLOCK_L=_BLOCK_L,
            )
            if ctx.needs_input_grad[1]:
                grad_z = torch.empty_like(z)
                _cauchy_bwd_z_kernel[(heads, triton.cdiv(length, _BLOCK_L))](
                    v_r, z_r, w_r, g, torch.view_as_real(grad_z), state, length,
                    BLOCK_N=_BLOCK_N, BLOCK_L=_BLOCK_L,
                )
        return grad_v, grad_z, grad_w


def cauchy_triton(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Triton Cauchy kernel (complex64 inside); same contract as the public `cauchy`."""
    cdtype = torch.complex64
    z2 = z.to(cdtype).expand(v.shape[0], -1).contiguous()
    return CauchyTriton.apply(v.to(cdtype).contiguous(), z2, w.to(cdtype).contiguous())
