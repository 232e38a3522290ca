"""Causal long convolution via FFT, with the D skip term and optional output gating."""

from __future__ import annotations

from torch import Tensor

from tsk.kernels.common.dispatch import check_tensor, resolve_backend
from tsk.kernels.fftconv.eager import fftconv_torch
from tsk.kernels.fftconv.reference import fftconv_reference

__all__ = ["fftconv"]


def fftconv(
    u: Tensor,
    k: Tensor,
    D: Tensor | None = None,  # noqa: N803
    gate: Tensor | None = None,
    backend: str = "auto",
) -> Tensor:
    """Causal convolution of each channel of `u` with its own long kernel `k`.

    Shapes: u [B, H, L] real, k [H, Lk] real with Lk <= L, D [H] (skip), gate [B, H, L];
    returns y [B, H, L] in u's dtype (computed in float32, or float64 for float64 inputs).

    Plain-PyTorch equivalent::

        n = 2 * L
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :L]
        # i.e. y[b, h, t] = sum_{s=0}^{min(t, Lk-1)} k[h, s] * u[b, h, t - s]
        if D is not None: y = y + D[:, None] * u
        if gate is not None: y = y * gate

    backend: "auto" (torch everywhere: on an H100 the Triton path, which only fuses the skip and
    the gate around the same cuFFT calls, was 1.3-1.4x slower forward+backward at B=2, H=64,
    L=1k-4k; see benchmarks/results/kernels_gpu.md), "reference" (a literal sum over taps, for
    tests), "torch" (torch.fft) or "triton" (cuFFT + fused Triton kernels, on request).
    """
    check_tensor("u", u, [None, None, None], complex_ok=False)
    batch, heads, length = u.shape
    check_tensor("k", k, [heads, None], complex_ok=False)
    if k.shape[-1] > length:
        raise ValueError(
            f"k has {k.shape[-1]} taps but u only {length} steps; the kernel must not be longer "
            "than the input (truncate it: k[..., :L])."
        )
    if D is not None:
        check_tensor("D", D, [heads], complex_ok=False)
    if gate is not None:
        check_tensor("gate", gate, [batch, heads, length], complex_ok=False)
    chosen = "torch" if backend == "auto" else resolve_backend(backend, u, k, D, gate)
    if chosen == "reference":
        return fftconv_reference(u, k, D, gate)
    if chosen == "triton":
        from tsk.kernels.fftconv.triton import fftconv_triton

        return fftconv_triton(u, k, D, gate)
    return fftconv_torch(u, k, D, gate)
