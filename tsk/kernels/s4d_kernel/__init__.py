"""S4D convolution kernel (diagonal state matrix), fused so [H, N, L] is never materialized."""

from __future__ import annotations

from torch import Tensor

from tsk.kernels.common.dispatch import check_tensor, resolve_backend
from tsk.kernels.s4d_kernel.eager import s4d_kernel_torch
from tsk.kernels.s4d_kernel.reference import s4d_kernel_reference

__all__ = ["s4d_kernel"]

DISCRETIZATIONS = ("zoh", "bilinear")


def s4d_kernel(
    A: Tensor,  # noqa: N803
    B: Tensor,  # noqa: N803
    C: Tensor,  # noqa: N803
    log_dt: Tensor,
    L: int,  # noqa: N803
    discretization: str = "zoh",
    backend: str = "auto",
) -> Tensor:
    """Convolution kernel K [H, L] (real) of a diagonal SSM, as S4D builds it.

    Shapes: A, B, C [H, N] complex (N = half the state size: each mode stands for a conjugate
    pair, hence the factor 2 and the real part), log_dt [H] real, dt = exp(log_dt).

    Plain-PyTorch equivalent::

        dtA = log_dt.exp()[:, None] * A                                   # [H, N]
        l = torch.arange(L)
        if discretization == "zoh":
            K = 2 * (C * (dtA.exp() - 1) / A * B) @ torch.exp(dtA[..., None] * l)  # .real
        else:  # bilinear
            dA = (1 + dtA / 2) / (1 - dtA / 2); dB = log_dt.exp()[:, None] * B / (1 - dtA / 2)
            K = 2 * einsum("hn,hnl->hl", C * dB, dA[..., None] ** l).real

    Differentiable w.r.t. A (real and imaginary parts), B, C and log_dt. backend: "auto",
    "reference" (the formula above over [H, N, L]), "torch" (blocked over L, memory O(H N T)),
    "triton" (fused Vandermonde kernel, forward and backward, float32).
    """
    if discretization not in DISCRETIZATIONS:
        raise ValueError(
            f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}."
        )
    check_tensor("A", A, [None, None], real_ok=False)
    heads, state = A.shape
    check_tensor("B", B, [heads, state], real_ok=False)
    check_tensor("C", C, [heads, state], real_ok=False)
    check_tensor("log_dt", log_dt, [heads], complex_ok=False)
    if int(L) != L or L < 1:
        raise ValueError(f"L must be a positive integer, got {L!r}.")
    chosen = resolve_backend(backend, A, B, C, log_dt)
    if chosen == "reference":
        return s4d_kernel_reference(A, B, C, log_dt, int(L), discretization)
    if chosen == "triton":
        from tsk.kernels.s4d_kernel.triton import s4d_kernel_triton

        return s4d_kernel_triton(A, B, C, log_dt, int(L), discretization)
    return s4d_kernel_torch(A, B, C, log_dt, int(L), discretization)
