"""The 2-D selective scan over a (variate x time) grid: Chimera's recurrence (Behrouz et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor

from tsk.kernels.common.dispatch import check_tensor, resolve_backend
from tsk.kernels.scan2d.eager import scan2d_torch
from tsk.kernels.scan2d.reference import scan2d_reference

__all__ = ["scan2d"]


def scan2d(
    u: Tensor,
    delta_t: Tensor,
    delta_v: Tensor,
    A1: Tensor,  # noqa: N803
    A2: Tensor,  # noqa: N803
    A3: Tensor,  # noqa: N803
    A4: Tensor,  # noqa: N803
    B1: Tensor,  # noqa: N803
    B2: Tensor,  # noqa: N803
    C1: Tensor,  # noqa: N803
    C2: Tensor,  # noqa: N803
    D: Tensor | None = None,  # noqa: N803
    initial_state: tuple[Tensor, Tensor] | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """2-D selective scan: each cell (v, t) of a variates x time grid carries a state along time
    (h1) and one along variates (h2), per channel d and state n (all matrices diagonal):

        h1[v, t] = exp(dt A1) h1[v, t-1] + (exp(dt A1) - 1) / A1 * A2 h2[v, t-1] + dt B1 u
        h2[v, t] = exp(dv A4) h2[v-1, t] + (exp(dv A4) - 1) / A4 * A3 h1[v-1, t] + dv B2 u
        y[v, t]  = <C1, h1[v, t]> + <C2, h2[v, t]> + D u

    with dt = delta_t[v, t], dv = delta_v[v, t], B and C of cell (v, t). The decays exp(delta A)
    and the couplings are zero-order-hold discretizations along their axis (the coupling is the
    exact ZOH integral, so the grid is stable for any step when |A2| < |A1| and |A3| < |A4|);
    the inputs take Mamba's delta * B. With A2 = 0 and C2 = 0 each variate row is exactly
    `selective_scan` along time. h1[v, -1], h2[v, -1] come from `initial_state` (zeros when
    None); h1[-1, t] = h2[-1, t] = 0 (the first variate has nothing below it).

    Shapes: u, delta_t, delta_v [B, D, V, T]; A1..A4 [D, N] real, A1 and A4 negative (decays);
    B1, B2, C1, C2 [B, N, V, T] (shared by the channels, as Mamba's B and C); D [D];
    initial_state (h1, h2) each [B, D, V, N]. Returns (y [B, D, V, T] in u's dtype, the last
    column's (h1, h2) each [B, D, V, N] in fp32 (float64 for float64 inputs) when
    `output_final_state`, else None), so a grid can be scanned in pieces along time (and stepped
    one column at a time), each piece from the last one's final state.

    backend: "auto" (Triton on CUDA, torch otherwise),
    "reference" (a literal loop over cells),
    "torch" (a sweep over variate rows, one parallel scan over time per row, hand-written
    backward; the CPU path) or "triton" (the same sweep with the states in registers, fused
    forward and backward kernels, float32 inside; forward+backward 5.8-8.6x the torch path's
    speed on an H200, benchmarks/results/kernels_scan2d_gpu.md). All are differentiable w.r.t.
    every tensor argument, initial_state included.
    """
    check_tensor("u", u, [None] * 4, complex_ok=False)
    batch, channels, n_var, length = u.shape
    grid = [batch, channels, n_var, length]
    for name, x in (("delta_t", delta_t), ("delta_v", delta_v)):
        check_tensor(name, x, grid, complex_ok=False)
    check_tensor("A1", A1, [channels, None], complex_ok=False)
    state = A1.shape[1]
    for name, a in (("A2", A2), ("A3", A3), ("A4", A4)):
        check_tensor(name, a, [channels, state], complex_ok=False)
    for name, a in (("A1", A1), ("A4", A4)):
        # not while traced (torch.export): the values are unknown there, and a check is no graph op
        if not torch.compiler.is_compiling() and not bool((a < 0).all()):
            raise ValueError(f"{name} must be negative (a decay along its axis); parameterize it "
                             "as -exp(log_A).")
    for name, m in (("B1", B1), ("B2", B2), ("C1", C1), ("C2", C2)):
        check_tensor(name, m, [batch, state, n_var, length], complex_ok=False)
    if D is not None:
        check_tensor("D", D, [channels], complex_ok=False)
    if initial_state is not None:
        if not isinstance(initial_state, tuple | list) or len(initial_state) != 2:
            raise TypeError("initial_state must be a pair (h1, h2) of [B, D, V, N] tensors.")
        for name, h in zip(("initial_state[0]", "initial_state[1]"), initial_state, strict=True):
            check_tensor(name, h, [batch, channels, n_var, state], complex_ok=False)
        initial_state = tuple(initial_state)
    args = (u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2, D, initial_state)
    chosen = resolve_backend(backend, u, delta_t, A1, B1)
    if chosen == "reference":
        y, final_state = scan2d_reference(*args)
    elif chosen == "triton":
        from tsk.kernels.scan2d.triton import scan2d_triton

        y, final_state = scan2d_triton(*args)
    else:
        y, final_state = scan2d_torch(*args)
    return y, final_state if output_final_state else None
