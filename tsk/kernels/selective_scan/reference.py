"""Reference selective scan (Mamba's S6): a literal loop over time in fp32 (tests only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tsk.kernels.common.dispatch import compute_dtype


def expand_groups(BC: torch.Tensor, channels: int) -> torch.Tensor:  # noqa: N803
    """[B, N, L] -> [B, 1, N, L]; [B, G, N, L] -> [B, D, N, L]: channel d reads group d // (D/G)."""
    if BC.dim() == 3:
        return BC.unsqueeze(1)
    return BC.repeat_interleave(channels // BC.shape[1], dim=1)


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,  # noqa: N803
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    D: torch.Tensor | None = None,  # noqa: N803
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t; y_t = <h_t, C_t> + D u_t; y *= silu(z).

    u, delta [B, D, L]; A [D, N]; B, C [B, N, L] or [B, G, N, L]; D [D]; z [B, D, L];
    delta_bias [D]; initial_state [B, D, N] (h_{-1}, zeros when None). Returns y [B, D, L]
    (u's dtype) and the last state [B, D, N] (float32, float64 for float64 inputs).
    """
    dtype = compute_dtype(u, delta, A, B, C)
    channels = u.shape[1]
    u_, delta_ = u.to(dtype), delta.to(dtype)
    if delta_bias is not None:
        delta_ = delta_ + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta_ = F.softplus(delta_)
    A_ = A.to(dtype)
    B_ = expand_groups(B.to(dtype), channels)  # [B, D or 1, N, L]
    C_ = expand_groups(C.to(dtype), channels)
    if initial_state is None:
        state = u_.new_zeros(u.shape[0], channels, A.shape[1])  # [B, D, N]
    else:
        state = initial_state.to(dtype)
    outputs = []
    # unbind (not x[..., t]) so that the backward stacks the per-step gradients once instead of
    # building a full-size zero tensor per step (which would make it O(L^2))
    steps = zip(u_.unbind(-1), delta_.unbind(-1), B_.unbind(-1), C_.unbind(-1), strict=True)
    for u_t, delta_t, B_t, C_t in steps:  # [B, D], [B, D], [B, D|1, N], [B, D|1, N]
        decay = torch.exp(delta_t[..., None] * A_)  # [B, D, N]
        drive = delta_t[..., None] * B_t * u_t[..., None]  # [B, D, N]
        state = decay * state + drive
        outputs.append((state * C_t).sum(-1))  # [B, D]
    y = torch.stack(outputs, dim=-1)  # [B, D, L]
    if D is not None:
        y = y + D.to(dtype)[:, None] * u_
    if z is not None:
        y = y * F.silu(z.to(dtype))
    y = y.to(u.dtype)
    return y, state
