"""Reference 2-D selective scan (Chimera's recurrence): a literal double loop over variates and
time, in fp32 (float64 for float64 inputs). Tests only."""

from __future__ import annotations

import torch

from tsk.kernels.common.dispatch import compute_dtype


def zoh_coupling(decay: torch.Tensor, A: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """(exp(delta A) - 1) / A, the ZOH integral of a decay over one step, from the decay itself."""
    return (decay - 1) / A


def scan2d_reference(
    u: torch.Tensor,
    delta_t: torch.Tensor,
    delta_v: torch.Tensor,
    A1: torch.Tensor,  # noqa: N803
    A2: torch.Tensor,  # noqa: N803
    A3: torch.Tensor,  # noqa: N803
    A4: torch.Tensor,  # noqa: N803
    B1: torch.Tensor,  # noqa: N803
    B2: torch.Tensor,  # noqa: N803
    C1: torch.Tensor,  # noqa: N803
    C2: torch.Tensor,  # noqa: N803
    D: torch.Tensor | None = None,  # noqa: N803
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The recurrence of `scan2d`, cell by cell: variates v outer, time t inner.

    u, delta_t, delta_v [B, D, V, T]; A1..A4 [D, N]; B1, B2, C1, C2 [B, N, V, T]; D [D];
    initial_state (h1, h2) [B, D, V, N], the states of column t = -1. Returns y [B, D, V, T]
    (u's dtype) and the last column's states (h1, h2) [B, D, V, N].
    """
    dtype = compute_dtype(u, delta_t, delta_v, A1, B1, C1)
    batch, channels, n_var, length = u.shape
    state = A1.shape[1]
    u_, dt, dv = u.to(dtype), delta_t.to(dtype), delta_v.to(dtype)
    A1_, A2_, A3_, A4_ = (a.to(dtype) for a in (A1, A2, A3, A4))
    B1_, B2_, C1_, C2_ = (m.to(dtype) for m in (B1, B2, C1, C2))
    zeros = u_.new_zeros(batch, channels, state)
    if initial_state is None:
        h1_left = [zeros] * n_var  # h1[v, t - 1], per variate
        h2_left = [zeros] * n_var
    else:
        h1_left = list(initial_state[0].to(dtype).unbind(2))
        h2_left = list(initial_state[1].to(dtype).unbind(2))
    y = [[None] * length for _ in range(n_var)]
    for t in range(length):
        h1_below, h2_below = zeros, zeros  # the states of cell (v - 1, t)
        for v in range(n_var):
            d1, d2 = dt[:, :, v, t, None], dv[:, :, v, t, None]  # [B, D, 1]
            decay1, decay4 = torch.exp(d1 * A1_), torch.exp(d2 * A4_)  # [B, D, N]
            h1 = (decay1 * h1_left[v] + zoh_coupling(decay1, A1_) * A2_ * h2_left[v]
                  + d1 * u_[:, :, v, t, None] * B1_[:, None, :, v, t])
            h2 = (decay4 * h2_below + zoh_coupling(decay4, A4_) * A3_ * h1_below
                  + d2 * u_[:, :, v, t, None] * B2_[:, None, :, v, t])
            y[v][t] = (h1 * C1_[:, None, :, v, t]).sum(-1) + (h2 * C2_[:, None, :, v, t]).sum(-1)
            h1_left[v], h2_left[v] = h1, h2
            h1_below, h2_below = h1, h2
    out = torch.stack([torch.stack(row, dim=-1) for row in y], dim=2)  # [B, D, V, T]
    if D is not None:
        out = out + D.to(dtype)[:, None, None] * u_
    return out.to(u.dtype), (torch.stack(h1_left, dim=2), torch.stack(h2_left, dim=2))
