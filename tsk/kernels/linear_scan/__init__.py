"""Elementwise linear recurrence h_t = a_t h_{t-1} + b_t (LRU, S5, ConvS5, minGRU-style layers)."""

from __future__ import annotations

from torch import Tensor, broadcast_shapes

from tsk.kernels.common.dispatch import check_tensor, resolve_backend
from tsk.kernels.linear_scan.eager import linear_scan_torch
from tsk.kernels.linear_scan.reference import linear_scan_reference

__all__ = ["linear_scan"]


def linear_scan(
    a: Tensor,
    b: Tensor,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """h_t = a_t * h_{t-1} + b_t, elementwise, real or complex.

    Layout (fla convention, time before channels): a, b [..., L, D], e.g. [B, L, D]; a may also
    broadcast against b (e.g. [L, D] shared across the batch). initial_state [..., D] (h_{-1},
    zeros when None). Returns (h [..., L, D], final_state [..., D] = h[..., -1, :] when
    `output_final_state`, else None), in the promoted dtype of a and b.

    Plain-PyTorch equivalent::

        h = initial_state if initial_state is not None else zeros
        for t in range(L):
            h = a[..., t, :] * h + b[..., t, :]; out[..., t, :] = h

    Gradients (conj for complex): g_t = dLoss/dh_t + conj(a_{t+1}) g_{t+1}, grad b_t = g_t,
    grad a_t = g_t conj(h_{t-1}), grad initial_state = conj(a_0) g_0.
    backend: "auto", "reference" (the loop), "torch" (two-level chunked scan, ~2 sqrt(L) Python
    steps, products only), "triton" (state in registers, fused forward and backward).
    """
    check_tensor("b", b, [None] * max(b.dim(), 2))
    check_tensor("a", a, [None] * max(a.dim(), 2))
    try:
        shape = broadcast_shapes(a.shape, b.shape)
    except RuntimeError as err:
        raise ValueError(
            f"a {list(a.shape)} and b {list(b.shape)} must broadcast to one [..., L, D] shape."
        ) from err
    if initial_state is not None:
        check_tensor("initial_state", initial_state, [None] * initial_state.dim())
        if tuple(initial_state.shape) != (*shape[:-2], shape[-1]):
            raise ValueError(
                f"initial_state must have shape {[*shape[:-2], shape[-1]]} ([..., D]), "
                f"got {list(initial_state.shape)}."
            )
    args = (a, b, initial_state, output_final_state)
    chosen = resolve_backend(backend, a, b, initial_state)
    if chosen == "reference":
        return linear_scan_reference(*args)
    if chosen == "triton":
        from tsk.kernels.linear_scan.triton import linear_scan_triton

        return linear_scan_triton(*args)
    return linear_scan_torch(*args)
