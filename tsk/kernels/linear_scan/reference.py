"""Reference linear recurrence h_t = a_t h_{t-1} + b_t: a literal loop over time (tests only)."""

from __future__ import annotations

import torch


def linear_scan_reference(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """a, b [..., L, D] (time on dim -2), initial_state [..., D] -> (h [..., L, D], h_{L-1})."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    compute = {torch.float16: torch.float32, torch.bfloat16: torch.float32}.get(dtype, dtype)
    shape = torch.broadcast_shapes(a.shape, b.shape)
    h = torch.zeros(*shape[:-2], shape[-1], dtype=compute, device=b.device)
    if initial_state is not None:
        h = h + initial_state.to(compute)
    states = []
    for a_t, b_t in zip(a.to(compute).unbind(-2), b.to(compute).unbind(-2), strict=True):
        h = a_t * h + b_t
        states.append(h)
    out = torch.stack(states, dim=-2).to(dtype)
    return out, (h if output_final_state else None)
