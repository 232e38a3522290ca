"""Polynomial and power-series arithmetic through the FFT, batched over leading dimensions.

A polynomial or truncated power series is a tensor `[..., n]` of coefficients, lowest degree
first. These are the building blocks of the fast companion kernel and of SpaceTime's
closed-loop forecast (a causal deconvolution is a power-series division).
"""

from __future__ import annotations

import torch

from tsk.kernels._dispatch import fft_size


def poly_mul(f: torch.Tensor, g: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """The first `n` coefficients of `f * g` (all of them when `n` is None), via one fast rfft
    size large enough that the circular product equals the linear one. `f [..., F]`, `g [..., G]`
    broadcast over the leading dimensions."""
    if n is not None:
        f, g = f[..., :n], g[..., :n]  # higher coefficients cannot reach the first n
    size = f.shape[-1] + g.shape[-1] - 1
    n_fft = fft_size(size)
    product = torch.fft.irfft(torch.fft.rfft(f, n=n_fft) * torch.fft.rfft(g, n=n_fft), n=n_fft)
    return _fit(product, size if n is None else n)


def correlate(u: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
    """`out[..., k] = sum_j u[..., j + k] v[..., j]` for `k < n` (a cross-correlation).

    It is `u * flip(v)` read from coefficient `len(v) - 1` on.
    """
    lag = v.shape[-1] - 1
    product = poly_mul(u, v.flip(-1))
    return _fit(product[..., lag:], n)


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
    return _fit(inverse, n)


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Truncate or zero-pad the last dimension to `n`."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]))
