"""Fast companion-SSM kernel in torch: the SpaceTime paper's shift-plus-rank-one algorithm.

With `A = S + a e_N^T` (S the shift matrix), the kernel's truncated generating function is

    sum_{l<L} c^T A^l b z^l = c~^T (I - A z)^{-1} b   at z^L = const,   c~ = c (I - z^L A^L)

and `(I - A z)^{-1}` is a lower-triangular Toeplitz matrix plus a rank-one term (Woodbury), so
it reduces to four products of length-N polynomials (cross-correlations, by FFT) evaluated at
L points (an FFT of size L), and one inverse FFT: O(N log N + L log L) instead of L
matrix-vector products. `c~` needs the row vector `c^T A^L`; the companion structure gives it in
O(N log N log L) as `sum_k p_k c^T A^k` with `p = x^L mod det(xI - A)` (binary powering of
polynomials), where the rows `c^T A^k` are windows of one linear recurrence with coefficients a.

One change from the paper: the points are `z_j = rho exp(-2 pi i j / L)` with `rho^L = 1/2`
instead of the roots of unity. The identity is the same (the transform gives `K_l rho^l`,
divided out at the end), but it stays finite when A has an eigenvalue that is an L-th root of
unity. That is common for time series, not a corner case: any `a >= 0` with ||a||_1 = 1 (a unit
root, like an integrator) puts an eigenvalue at exactly 1, where `det(I - A z)` vanishes.
"""

from __future__ import annotations

import math

import torch

from tsk.kernels.common.dispatch import complex_dtype, compute_dtype
from tsk.kernels.common.polynomial import correlate, poly_mul, series_inverse

# rho^L = 1/2: a margin of ~0.7/L from the unit circle, at most a factor 2 of amplification
LOG_HALF = -math.log(2.0)


def reversed_characteristic(a: torch.Tensor) -> torch.Tensor:
    """`Q(z) = det(I - A z) = 1 - sum_i a_i z^(N - i)`, coefficients `[..., N + 1]`."""
    return torch.cat([torch.ones_like(a[..., :1]), -a.flip(-1)], dim=-1)


def power_of_x_mod(a: torch.Tensor, exponent: int, q_inverse: torch.Tensor) -> torch.Tensor:
    """Coefficients `[..., N]` of `x^exponent mod chi(x)`, `chi(x) = x^N - sum_i a_i x^i` (the
    characteristic polynomial of A), so that `A^exponent = sum_k p_k A^k` (Cayley-Hamilton).

    Left-to-right binary powering: square, reduce mod chi, and multiply by x on a set bit (for a
    companion matrix that is `shift(p) + p_{N-1} a`). `q_inverse` holds at least N - 1 terms of
    `1 / Q` (Q the reversed chi), which turns each division by chi into two products.
    """
    state = a.shape[-1]
    power = torch.zeros_like(a)
    power[..., 0] = 1.0
    for bit in bin(exponent)[2:]:
        power = _reduce(poly_mul(power, power), a, q_inverse)
        if bit == "1":
            power = torch.cat([torch.zeros_like(power[..., :1]), power[..., :-1]], -1) + (
                power[..., -1:] * a
            )
    return power[..., :state]


def _reduce(f: torch.Tensor, a: torch.Tensor, q_inverse: torch.Tensor) -> torch.Tensor:
    """`f mod chi` for `f [..., F]`, F <= 2N - 1: the quotient from the reversed polynomials
    (`rev(q) = rev(f) / Q mod z^(F - N)`), then `r = f - chi q = (f + a q) mod z^N`."""
    state = a.shape[-1]
    quotient_terms = f.shape[-1] - state
    if quotient_terms <= 0:
        return torch.nn.functional.pad(f, (0, -quotient_terms))
    reversed_quotient = poly_mul(f.flip(-1), q_inverse, quotient_terms)
    return f[..., :state] + poly_mul(a, reversed_quotient.flip(-1), state)


def row_times_power(a: torch.Tensor, c: torch.Tensor, exponent: int) -> torch.Tensor:
    """`c^T A^exponent` `[..., N]` for companion `A = S + a e_N^T`, in O(N log N log exponent).

    `c^T A = (c_1, ..., c_{N-1}, c . a)`: the rows `c^T A^k` are length-N windows of the
    sequence s with `s_{0..N-1} = c` and `s_{m+N} = sum_i a_i s_{m+i}`, whose generating
    function is `P / Q` (`P = Q C mod z^N`). With `p = x^exponent mod chi`,
    `c^T A^exponent = sum_k p_k (s_k, ..., s_{k+N-1})`, a correlation of s with p.
    """
    state = a.shape[-1]
    q = reversed_characteristic(a)  # [..., N + 1]
    q_inverse = series_inverse(q, 2 * state - 1)  # [..., 2N - 1]
    sequence = poly_mul(poly_mul(q, c, state), q_inverse, 2 * state - 1)  # s_0 .. s_{2N-2}
    power = power_of_x_mod(a, exponent, q_inverse[..., : max(state - 1, 1)])
    return correlate(sequence, power, state)


def _evaluate(coefficients: torch.Tensor, length: int, log_radius: float) -> torch.Tensor:
    """`sum_k q_k z_j^k` at `z_j = rho exp(-2 pi i j / L)`, j <= L // 2: scale by rho^k, fold
    the degrees modulo L (the angle repeats), one rfft. `[..., n]` -> `[..., L // 2 + 1]`."""
    degree = torch.arange(coefficients.shape[-1], device=coefficients.device,
                          dtype=coefficients.dtype)
    scaled = coefficients * torch.exp(log_radius * degree)
    rows = -(-scaled.shape[-1] // length)
    folded = torch.nn.functional.pad(scaled, (0, rows * length - scaled.shape[-1]))
    folded = folded.unflatten(-1, (rows, length)).sum(-2)  # [..., L]
    return torch.fft.rfft(folded, n=length)


def companion_kernel_torch(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, L: int  # noqa: N803
) -> torch.Tensor:
    """K[h, l] = c[h]^T A[h]^l b[h] for l < L, a, b, c [H, N] real -> K [H, L] (compute dtype).

    `c~` is computed in float64 (polynomial powers lose digits in float32; it is O(H N log N
    log L) work); the evaluation at L points runs in the compute dtype.
    """
    dtype = compute_dtype(a, b, c)
    a, b, c = a.to(dtype), b.to(dtype), c.to(dtype)
    state = a.shape[-1]
    log_radius = LOG_HALF / L  # rho^L = 1/2
    tail = row_times_power(a.double(), c.double(), L).to(dtype)  # c^T A^L
    c_tilde = c - 0.5 * tail  # c^T (I - rho^L A^L)

    # c~^T (I - zS)^{-1} v is the polynomial corr(c~, v); e_N^T (I - zS)^{-1} v is flip(v)
    polynomials = torch.stack([
        correlate(c_tilde, b, state), correlate(c_tilde, a, state), b.flip(-1),
    ])  # [3, H, N]
    values = _evaluate(polynomials, L, log_radius)  # [3, H, L // 2 + 1]
    denominator = _evaluate(reversed_characteristic(a), L, log_radius)  # det(I - A z)
    j = torch.arange(L // 2 + 1, device=a.device, dtype=dtype)
    z = torch.polar(torch.exp(log_radius * torch.ones_like(j)), -2 * math.pi * j / L)
    z = z.to(complex_dtype(dtype))
    spectrum = values[0] + z * values[1] * values[2] / denominator  # Sherman-Morrison
    scaled_kernel = torch.fft.irfft(spectrum, n=L)  # K_l rho^l
    steps = torch.arange(L, device=a.device, dtype=dtype)
    return scaled_kernel * torch.exp(-log_radius * steps)
