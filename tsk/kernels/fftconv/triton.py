"""Triton path for fftconv: cuFFT for the transforms, fused Triton kernels for the rest.

Forward: rfft(u), rfft(k) -> [Triton] spectral product -> irfft -> [Triton] fused epilogue
`(conv + D * u) * gate`. Backward: [Triton] epilogue backward (grad of conv, of gate and of D in
one pass) -> rfft -> [Triton] products with the conjugate spectra (the one for k also sums over the
batch) -> irfft. Complex spectra are handled as interleaved (real, imag) float32 pairs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import fft_size, triton_device_guard

_BLOCK = 1024


@triton.jit
def _spectral_mul_kernel(x_ptr, y_ptr, out_ptr, H, F, CONJ_Y: tl.constexpr, BLOCK: tl.constexpr):
    # out[r, f] = x[r, f] * y[r % H, f] (or * conj(y)); x rows are (b, h) pairs.
    row = tl.program_id(0)
    f = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = f < F
    h = row % H
    x_re = tl.load(x_ptr + (row * F + f) * 2, mask=mask, other=0.0)
    x_im = tl.load(x_ptr + (row * F + f) * 2 + 1, mask=mask, other=0.0)
    y_re = tl.load(y_ptr + (h * F + f) * 2, mask=mask, other=0.0)
    y_im = tl.load(y_ptr + (h * F + f) * 2 + 1, mask=mask, other=0.0)
    if CONJ_Y:
        y_im = -y_im
    tl.store(out_ptr + (row * F + f) * 2, x_re * y_re - x_im * y_im, mask=mask)
    tl.store(out_ptr + (row * F + f) * 2 + 1, x_re * y_im + x_im * y_re, mask=mask)


@triton.jit
def _spectral_corr_kernel(x_ptr, y_ptr, out_ptr, Bsz, H, F, BLOCK: tl.constexpr):
    # out[h, f] = sum_b x[b, h, f] * conj(y[b, h, f])
    h = tl.program_id(0)
    f = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = f < F
    acc_re = tl.zeros([BLOCK], dtype=tl.float32)
    acc_im = tl.zeros([BLOCK], dtype=tl.float32)
    for b in range(0, Bsz):
        off = ((b * H + h) * F + f) * 2
        x_re = tl.load(x_ptr + off, mask=mask, other=0.0)
        x_im = tl.load(x_ptr + off + 1, mask=mask, other=0.0)
        y_re = tl.load(y_ptr + off, mask=mask, other=0.0)
        y_im = tl.load(y_ptr + off + 1, mask=mask, other=0.0)
        acc_re += x_re * y_re + x_im * y_im
        acc_im += x_im * y_re - x_re * y_im
    tl.store(out_ptr + (h * F + f) * 2, acc_re, mask=mask)
    tl.store(out_ptr + (h * F + f) * 2 + 1, acc_im, mask=mask)


@triton.jit
def _epilogue_fwd_kernel(
    conv_ptr, u_ptr, d_ptr, gate_ptr, y_ptr, H, L, conv_row_stride,
    HAS_D: tl.constexpr, HAS_GATE: tl.constexpr, BLOCK: tl.constexpr,
):
    # y[r, t] = (conv[r, t] + D[h] u[r, t]) * gate[r, t]
    row = tl.program_id(0)
    t = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = t < L
    y = tl.load(conv_ptr + row * conv_row_stride + t, mask=mask, other=0.0)
    if HAS_D:
        d = tl.load(d_ptr + row % H)
        y += d * tl.load(u_ptr + row * L + t, mask=mask, other=0.0)
    if HAS_GATE:
        y *= tl.load(gate_ptr + row * L + t, mask=mask, other=0.0)
    tl.store(y_ptr + row * L + t, y, mask=mask)


@triton.jit
def _epilogue_bwd_kernel(
    gy_ptr, conv_ptr, u_ptr, d_ptr, gate_ptr, gconv_ptr, ggate_ptr, gd_ptr, H, L, conv_row_stride,
    HAS_D: tl.constexpr, HAS_GATE: tl.constexpr, BLOCK: tl.constexpr,
):
    # grad of the pre-gate value: gpre = gy * gate; grad conv = gpre; grad gate = gy * pre;
    # grad D[h] += sum_t gpre * u.
    row = tl.program_id(0)
    t = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = t < L
    gy = tl.load(gy_ptr + row * L + t, mask=mask, other=0.0)
    u = tl.load(u_ptr + row * L + t, mask=mask, other=0.0)
    if HAS_GATE:
        pre = tl.load(conv_ptr + row * conv_row_stride + t, mask=mask, other=0.0)
        if HAS_D:
            pre += tl.load(d_ptr + row % H) * u
        tl.store(ggate_ptr + row * L + t, gy * pre, mask=mask)
        gy = gy * tl.load(gate_ptr + row * L + t, mask=mask, other=0.0)
    tl.store(gconv_ptr + row * L + t, gy, mask=mask)
    if HAS_D:
        tl.atomic_add(gd_ptr + row % H, tl.sum(gy * u, axis=0))


def _spectral_mul(x_f: torch.Tensor, y_f: torch.Tensor, conj_y: bool) -> torch.Tensor:
    """x_f [B, H, F] complex times y_f [H, F] complex (broadcast over B) -> [B, H, F]."""
    batch, heads, freqs = x_f.shape
    x_r = torch.view_as_real(x_f.contiguous())
    y_r = torch.view_as_real(y_f.contiguous())
    out = torch.empty_like(x_r)
    grid = (batch * heads, triton.cdiv(freqs, _BLOCK))
    _spectral_mul_kernel[grid](x_r, y_r, out, heads, freqs, CONJ_Y=conj_y, BLOCK=_BLOCK)
    return torch.view_as_complex(out)


def _spectral_corr(x_f: torch.Tensor, y_f: torch.Tensor) -> torch.Tensor:
    """sum_b x_f[b] * conj(y_f[b]) for x_f, y_f [B, H, F] complex -> [H, F]."""
    batch, heads, freqs = x_f.shape
    x_r = torch.view_as_real(x_f.contiguous())
    y_r = torch.view_as_real(y_f.contiguous())
    out = torch.empty((heads, freqs, 2), device=x_f.device, dtype=torch.float32)
    grid = (heads, triton.cdiv(freqs, _BLOCK))
    _spectral_corr_kernel[grid](x_r, y_r, out, batch, heads, freqs, BLOCK=_BLOCK)
    return torch.view_as_complex(out)


class FFTConvTriton(torch.autograd.Function):
    """Autograd wrapper: fp32 inputs u [B, H, L], k [H, Lk], D [H] | None, gate [B, H, L] | None."""

    @staticmethod
    def forward(ctx, u, k, D, gate):  # noqa: N803 (D is the skip parameter's usual name)
        batch, heads, length = u.shape
        n_fft = fft_size(length + k.shape[-1] - 1)  # as the torch path
        with triton_device_guard(u):
            u_f = torch.fft.rfft(u, n=n_fft)  # [B, H, n // 2 + 1]
            k_f = torch.fft.rfft(k, n=n_fft)  # [H, n // 2 + 1]
            conv = torch.fft.irfft(_spectral_mul(u_f, k_f, conj_y=False), n=n_fft)  # [B, H, n]
            y = torch.empty_like(u)
            grid = (batch * heads, triton.cdiv(length, _BLOCK))
            _epilogue_fwd_kernel[grid](
                conv, u, D if D is not None else u, gate if gate is not None else u, y,
                heads, length, n_fft, HAS_D=D is not None, HAS_GATE=gate is not None,
                BLOCK=_BLOCK,
            )
        ctx.save_for_backward(u, u_f, k_f, D, gate, conv if gate is not None else None)
        ctx.kernel_length = k.shape[-1]
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u, u_f, k_f, D, gate, conv = ctx.saved_tensors
        batch, heads, length = u.shape
        n_fft = fft_size(length + ctx.kernel_length - 1)
        grad_y = grad_y.contiguous().float()
        grad_gate = grad_D = None
        with triton_device_guard(u):
            if D is None and gate is None:
                grad_conv = grad_y
            else:
                grad_conv = torch.empty_like(u)
                grad_gate = torch.empty_like(u) if gate is not None else None
                grad_D = torch.zeros(heads, device=u.device, dtype=torch.float32)
                grid = (batch * heads, triton.cdiv(length, _BLOCK))
                _epilogue_bwd_kernel[grid](
                    grad_y, conv if conv is not None else u, u, D if D is not None else u,
                    gate if gate is not None else u, grad_conv,
                    grad_gate if grad_gate is not None else grad_conv, grad_D,
                    heads, length, n_fft, HAS_D=D is not None, HAS_GATE=gate is not None,
                    BLOCK=_BLOCK,
                )
                if D is None:
                    grad_D = None
            g_f = torch.fft.rfft(grad_conv, n=n_fft)  # [B, H, n // 2 + 1]
            grad_u = grad_k = None
            if ctx.needs_input_grad[0]:
                grad_u = torch.fft.irfft(_spectral_mul(g_f, k_f, conj_y=True), n=n_fft)
                grad_u = grad_u[..., :length]
                if D is not None:
                    grad_u = grad_u + D[:, None] * grad_conv
            if ctx.needs_input_grad[1]:
                grad_k = torch.fft.irfft(_spectral_corr(g_f, u_f), n=n_fft)
                grad_k = grad_k[..., : ctx.kernel_length]
        return grad_u, grad_k, grad_D, grad_gate


def fftconv_triton(
    u: torch.Tensor,
    k: torch.Tensor,
    D: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triton-fused fftconv; computes in float32 and returns u's dtype."""
    args = [t.contiguous().float() if t is not None else None for t in (u, k, D, gate)]
    return FFTConvTriton.apply(*args).to(u.dtype)
