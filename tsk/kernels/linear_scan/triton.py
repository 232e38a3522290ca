"""Triton linear recurrence h_t = a_t h_{t-1} + b_t, real or complex, forward and backward.

One program per (row, block of D) walks time with the state in registers. The backward walks
time in reverse with the adjoint g in registers: g_t = grad_h_t + conj(a_{t+1}) g_{t+1},
grad_b_t = g_t, grad_a_t = g_t conj(h_{t-1}) (h read back from the forward's output),
grad_h0 = conj(a_0) g_0. Complex tensors are read as interleaved (real, imag) float pairs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import triton_device_guard

_BLOCK_D = 64


@triton.jit
def _linear_scan_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, L, D,
    HAS_H0: tl.constexpr, IS_COMPLEX: tl.constexpr, BLOCK_D: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # 64-bit offsets: M * L * D can pass 2**31
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = d < D
    width: tl.constexpr = 2 if IS_COMPLEX else 1
    h_re = tl.zeros([BLOCK_D], dtype=tl.float32)
    h_im = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_H0:
        h_re = tl.load(h0_ptr + (row * D + d) * width, mask=mask, other=0.0)
        if IS_COMPLEX:
            h_im = tl.load(h0_ptr + (row * D + d) * width + 1, mask=mask, other=0.0)
    for t in range(0, L):
        off = ((row * L + t) * D + d) * width
        a_re = tl.load(a_ptr + off, mask=mask, other=0.0)
        b_re = tl.load(b_ptr + off, mask=mask, other=0.0)
        if IS_COMPLEX:
            a_im = tl.load(a_ptr + off + 1, mask=mask, other=0.0)
            b_im = tl.load(b_ptr + off + 1, mask=mask, other=0.0)
            new_re = a_re * h_re - a_im * h_im + b_re
            h_im = a_re * h_im + a_im * h_re + b_im
            h_re = new_re
            tl.store(h_ptr + off + 1, h_im, mask=mask)
        else:
            h_re = a_re * h_re + b_re
        tl.store(h_ptr + off, h_re, mask=mask)


@triton.jit
def _linear_scan_bwd_kernel(
    a_ptr, h_ptr, h0_ptr, gh_ptr, ga_ptr, gb_ptr, gh0_ptr, L, D,
    HAS_H0: tl.constexpr, IS_COMPLEX: tl.constexpr, BLOCK_D: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # 64-bit offsets: M * L * D can pass 2**31
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = d < D
    width: tl.constexpr = 2 if IS_COMPLEX else 1
    # carry = conj(a_{t+1}) g_{t+1}
    c_re = tl.zeros([BLOCK_D], dtype=tl.float32)
    c_im = tl.zeros([BLOCK_D], dtype=tl.float32)
    for tt in range(0, L):
        t = L - 1 - tt
        off = ((row * L + t) * D + d) * width
        g_re = tl.load(gh_ptr + off, mask=mask, other=0.0) + c_re
        a_re = tl.load(a_ptr + off, mask=mask, other=0.0)
        # h_{t-1}: the previous output, or h0 at t = 0
        prev = h_ptr + off - D * width
        if t == 0:
            prev = h0_ptr + (row * D + d) * width
        has_prev = (t > 0) | HAS_H0
        p_re = tl.load(prev, mask=mask & has_prev, other=0.0)
        tl.store(gb_ptr + off, g_re, mask=mask)
        if IS_COMPLEX:
            g_im = tl.load(gh_ptr + off + 1, mask=mask, other=0.0) + c_im
            a_im = tl.load(a_ptr + off + 1, mask=mask, other=0.0)
            p_im = tl.load(prev + 1, mask=mask & has_prev, other=0.0)
            tl.store(gb_ptr + off + 1, g_im, mask=mask)
            # grad a = g * conj(h_prev); carry = conj(a) * g
            tl.store(ga_ptr + off, g_re * p_re + g_im * p_im, mask=mask)
            tl.store(ga_ptr + off + 1, g_im * p_re - g_re * p_im, mask=mask)
            c_re = a_re * g_re + a_im * g_im
            c_im = a_re * g_im - a_im * g_re
        else:
            tl.store(ga_ptr + off, g_re * p_re, mask=mask)
            c_re = a_re * g_re
    if HAS_H0:
        tl.store(gh0_ptr + (row * D + d) * width, c_re, mask=mask)
        if IS_COMPLEX:
            tl.store(gh0_ptr + (row * D + d) * width + 1, c_im, mask=mask)


def _as_real(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(x) if x.is_complex() else x


class LinearScanTriton(torch.autograd.Function):
    """a, b [M, L, D] contiguous float32 or complex64, h0 [M, D] or None -> h [M, L, D]."""

    @staticmethod
    def forward(ctx, a, b, h0):
        rows, length, width = a.shape
        h = torch.empty_like(b)
        grid = (rows, triton.cdiv(width, _BLOCK_D))
        with triton_device_guard(a):
            _linear_scan_fwd_kernel[grid](
                _as_real(a), _as_real(b), _as_real(h0) if h0 is not None else _as_real(b),
                _as_real(h), length, width,
                HAS_H0=h0 is not None, IS_COMPLEX=a.is_complex(), BLOCK_D=_BLOCK_D,
            )
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        rows, length, width = a.shape
        grad_h = grad_h.to(h.dtype).contiguous()
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(a)
        grad_h0 = torch.empty_like(h0) if h0 is not None else None
        grid = (rows, triton.cdiv(width, _BLOCK_D))
        with triton_device_guard(a):
            _linear_scan_bwd_kernel[grid](
                _as_real(a), _as_real(h), _as_real(h0) if h0 is not None else _as_real(h),
                _as_real(grad_h), _as_real(grad_a), _as_real(grad_b),
                _as_real(grad_h0) if h0 is not None else _as_real(grad_a), length, width,
                HAS_H0=h0 is not None, IS_COMPLEX=a.is_complex(), BLOCK_D=_BLOCK_D,
            )
        return grad_a, grad_b, grad_h0


def linear_scan_triton(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton linear scan (float32 / complex64 inside); same contract as `linear_scan`."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    compute = torch.complex64 if dtype.is_complex else torch.float32
    shape = torch.broadcast_shapes(a.shape, b.shape)
    length, width = shape[-2], shape[-1]
    a3 = a.to(compute).expand(shape).reshape(-1, length, width).contiguous()
    b3 = b.to(compute).expand(shape).reshape(-1, length, width).contiguous()
    h0 = None
    if initial_state is not None:
        h0 = initial_state.to(compute).expand(*shape[:-2], width).reshape(-1, width).contiguous()
    h = LinearScanTriton.apply(a3, b3, h0).reshape(shape)
    return h.to(dtype), (h[..., -1, :] if output_final_state else None)
