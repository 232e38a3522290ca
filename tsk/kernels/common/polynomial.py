"""Polynomial and power-series arithmetic through the FFT, batched over leading dimensions.

A polynomial or truncated power series is a tensor `[..., n]` of coefficients, lowest degree
first. A causal convolution is a truncated product (`fftconv`'s torch path is `poly_mul`), the
fast companion kernel is built from these products, and SpaceTime's closed-loop readout and its
decoder's state response are power-series divisions.
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from tsk.kernels.common.dispatch import fft_size


def poly_mul(f: torch.Tensor, g: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """The first `n` coefficients of `f * g` (all of them when `n` is None), via one fast rfft
    size large enough that the circular product equals the linear one. `f [..., F]`, `g [..., G]`
    broadcast over the leading dimensions."""
    if n is not None:
        f, g = f[..., :n], g[..., :n]  # higher coefficients cannot reach the first n
    size = f.shape[-1] + g.shape[-1] - 1
    n = size if n is None else n
    return fit_length(_TruncatedProduct.apply(f, g, min(n, size)), n)


class _TruncatedProduct(torch.autograd.Function):
    """The first `n` coefficients of `f * g` through rffts of length `fft_size(F + G - 1)`, with
    the backward written out: each input's gradient is the output gradient's correlation with
    the other factor, one rfft and one irfft per input, the broadcast sum taken on the spectra
    (n // 2 + 1 values per row). Autograd through torch.fft gets the same numbers with more
    work: it zero-fills the sliced-off outputs, and the backward of rfft pads the half spectrum
    to a full one for a complex FFT of twice the size. Measured 1.2-2.3x faster forward +
    backward for SpaceTime's and S4's convolutions (benchmarks/results/fft_backward.md).

    Circular correlation at this length is the linear one: with n_fft >= F + G - 1 a lag that
    wraps around lands where the zero-padded factor is zero.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, f: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
        n_fft = fft_size(f.shape[-1] + g.shape[-1] - 1)
        f_spectrum, g_spectrum = torch.fft.rfft(f, n=n_fft), torch.fft.rfft(g, n=n_fft)
        ctx.save_for_backward(f_spectrum, g_spectrum)
        ctx.shapes = n_fft, f.shape, f.dtype, g.shape, g.dtype
        return torch.fft.irfft(f_spectrum * g_spectrum, n=n_fft)[..., :n]

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        f_spectrum, g_spectrum = ctx.saved_tensors
        n_fft, f_shape, f_dtype, g_shape, g_dtype = ctx.shapes
        grad_spectrum = torch.fft.rfft(grad, n=n_fft)

        def correlation(other: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
            spectrum = (grad_spectrum * other.conj()).sum_to_size(*shape[:-1], n_fft // 2 + 1)
            return torch.fft.irfft(spectrum, n=n_fft)[..., : shape[-1]].to(dtype)

        grad_f = correlation(g_spectrum, f_shape, f_dtype) if ctx.needs_input_grad[0] else None
        grad_g = correlation(f_spectrum, g_shape, g_dtype) if ctx.needs_input_grad[1] else None
        return grad_f, grad_g, None


def correlate(u: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
    """`out[..., k] = sum_j u[..., j + k] v[..., j]` for `k < n` (a cross-correlation).

    It is `u * flip(v)` read from coefficient `len(v) - 1` on.
    """
    lag = v.shape[-1] - 1
    product = poly_mul(u, v.flip(-1))
    return fit_length(product[..., lag:], n)


def series_inverse(q: torch.Tensor, n: int) -> torch.Tensor:
    """`1 / q` as a power series truncated to `n` terms (`q[..., 0]` must be non-zero).

    Newton's iteration `v <- v (2 - q v)` doubles the number of correct terms each round:
    O(n log n) work in log2(n) rounds.
    """
    inverse = 1 / q[..., :1]
    terms = 1
    while terms < n:
        terms = min(2 * terms, n)
        residual = -poly_mul(q, inverse, terms)  # -(q v) = -1 + O(z^old)
        two = torch.zeros_like(residual)
        two[..., 0] = 2.0
        inverse = poly_mul(inverse, two + residual, terms)
    return fit_length(inverse, n)


def fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """Truncate or zero-pad the last dimension to `n`."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]))
