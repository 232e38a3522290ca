"""Convolution kernel of companion-matrix SSMs (SpaceTime), in O(N log N + L log L).

There is no Triton path for this op: its work is a handful of FFTs over `[H, N]` and `[H, L]`
(cuFFT on a GPU already) and no batch dimension, so a fused kernel would save little; the
convolution that uses the kernel (`fftconv`) is where the batch-sized work is.
"""

from __future__ import annotations

from torch import Tensor

from tsk._names import unknown_name_error
from tsk.kernels.common.dispatch import check_tensor, resolve_backend
from tsk.kernels.companion_kernel.eager import companion_kernel_torch, reversed_characteristic
from tsk.kernels.companion_kernel.reference import companion_kernel_reference

__all__ = ["companion_kernel", "reversed_characteristic"]

BACKENDS = ("auto", "reference", "torch")


def companion_kernel(
    a: Tensor, b: Tensor, c: Tensor, L: int, backend: str = "auto"  # noqa: N803
) -> Tensor:
    """Kernel K [H, L] of H SSMs with companion state matrices: `K[h, l] = c[h]^T A[h]^l b[h]`.

    Shapes: a, b, c [H, N] real. `A[h] = S + a[h] e_N^T`: the shift matrix S (ones just below
    the diagonal) with `a[h]` as its last column, i.e. the companion matrix of the
    characteristic polynomial `x^N - sum_i a[h, i] x^i`. Returns float32 (float64 if any input
    is float64).

    Plain-PyTorch equivalent::

        A = torch.diag_embed(torch.ones(N - 1), -1).repeat(H, 1, 1); A[:, :, -1] = a
        x, K = b, []
        for l in range(L):
            K.append((c * x).sum(-1))              # c^T A^l b
            x = (A @ x[..., None])[..., 0]
        K = torch.stack(K, -1)

    Differentiable w.r.t. a, b and c. backend: "auto" (= "torch" on every device; there is no
    Triton path, see the module docstring), "reference" (the loop above, O(L N^2), for tests) or
    "torch" (the paper's algorithm: Woodbury on shift + rank one, evaluated by FFT).
    """
    if backend == "triton":
        raise ValueError(
            "companion_kernel has no Triton path (its FFTs already run in cuFFT); use "
            "backend='auto' or 'torch'."
        )
    if backend not in BACKENDS:
        raise unknown_name_error("companion_kernel backend", backend, BACKENDS)
    check_tensor("a", a, [None, None], complex_ok=False)
    heads, state = a.shape
    check_tensor("b", b, [heads, state], complex_ok=False)
    check_tensor("c", c, [heads, state], complex_ok=False)
    if int(L) != L or L < 1:
        raise ValueError(f"L must be a positive integer, got {L!r}.")
    if backend == "reference":
        return companion_kernel_reference(a, b, c, int(L))
    resolve_backend("torch", a, b, c)
    return companion_kernel_torch(a, b, c, int(L))
