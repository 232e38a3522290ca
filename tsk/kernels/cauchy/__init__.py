"""Cauchy kernel of DPLR S4: sum_n v[h, n] / (z[l] - w[h, n])."""

from __future__ import annotations

from torch import Tensor

from tsk.kernels.cauchy.eager import cauchy_torch
from tsk.kernels.cauchy.reference import cauchy_reference
from tsk.kernels.common.dispatch import check_tensor, resolve_backend

__all__ = ["cauchy"]


def cauchy(v: Tensor, z: Tensor, w: Tensor, backend: str = "auto") -> Tensor:
    """Cauchy matrix-vector product, the core of S4's NPLR (diagonal plus low-rank) kernel.

    Shapes: v [H, N] complex, w [H, N] complex, z [L] or [H, L] (complex; real is promoted);
    returns out [H, L] complex (complex64, or complex128 for double inputs) with
    out[h, l] = sum_n v[h, n] / (z[l] - w[h, n]). S4 evaluates it at the roots of unity.

    Plain-PyTorch equivalent::

        out = (v[:, None, :] / (z.expand(H, L)[:, :, None] - w[:, None, :])).sum(-1)

    Differentiable w.r.t. v, w and z. backend: "auto", "reference" (the broadcast above,
    [H, L, N] in memory), "torch" (blocks of L, O(H T N) memory, hand-written backward),
    "triton" (fused forward and backward, complex64).
    """
    check_tensor("v", v, [None, None])
    heads, state = v.shape
    check_tensor("w", w, [heads, state])
    if z.dim() == 1:
        check_tensor("z", z, [None])
    else:
        check_tensor("z", z, [heads, None])
    chosen = resolve_backend(backend, v, z, w)
    if chosen == "reference":
        return cauchy_reference(v, z, w)
    if chosen == "triton":
        from tsk.kernels.cauchy.triton import cauchy_triton

        return cauchy_triton(v, z, w)
    return cauchy_torch(v, z, w)
