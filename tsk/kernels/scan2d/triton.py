"""Triton 2-D selective scan: one program per (batch row, block of channels) sweeps the grid
row by row (variates outer, time inner), fused forward and backward.

Forward: along a row the time state h1 stays in registers ([BLOCK_D, N]); the variate state
h2[v, t] needs the row below at the same t, which the program wrote to memory one row earlier
(a barrier between rows makes it visible to all the program's threads). Each cell's decays and
ZOH couplings are computed on the fly from its steps; the output and both states are written
(the states, [B, V, T, D, N] each, are what the backward reads).
Backward: the same programs sweep rows from the last variate down and time from the end back.
The adjoint of h1 runs back along the row in registers; the adjoint of h2 reaches the row below
through two [B, T, D, N] scratch rows (what the row above passes down through the variate decay
and the coupling). Per cell come the gradients of u and both steps (summed over N in
registers), B and C (summed over the block's channels, then atomically over blocks) and, per
program, the transitions' partial sums (finished in torch: dL/dA1 and dL/dA4 follow from them
in closed form).
Everything is float32 inside; inputs are read as float32 copies, outputs cast back.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import triton_device_guard, triton_interpreting


@triton.jit
def _coefficients(dt, dv, A1, A4):
    """exp(dt A1), (exp(dt A1) - 1) / A1, and the same along variates, [BLOCK_D, BLOCK_N]."""
    decay1 = tl.exp(dt[:, None] * A1)
    decay4 = tl.exp(dv[:, None] * A4)
    return decay1, (decay1 - 1.0) / A1, decay4, (decay4 - 1.0) / A4


@triton.jit
def _tile(D, N, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """The program's batch row (int64: offsets pass 2**31 on large grids), its channels d and
    states n, their masks and the offsets of its [BLOCK_D, BLOCK_N] tile in a [D, N] array."""
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    mask_d, mask_n = d < D, n < N
    return b, d, n, mask_d, mask_n, mask_d[:, None] & mask_n[None, :], d[:, None] * N + n[None, :]


@triton.jit
def _transitions(A1_ptr, A2_ptr, A3_ptr, A4_ptr, dn, mask):
    """A1..A4 on the program's [BLOCK_D, BLOCK_N] tile (decays -1 off the tile: no 0 / 0)."""
    A1 = tl.load(A1_ptr + dn, mask=mask, other=-1.0)
    A2 = tl.load(A2_ptr + dn, mask=mask, other=0.0)
    A3 = tl.load(A3_ptr + dn, mask=mask, other=0.0)
    A4 = tl.load(A4_ptr + dn, mask=mask, other=-1.0)
    return A1, A2, A3, A4


@triton.jit
def _cell(u_ptr, dt_ptr, dv_ptr, B1_ptr, B2_ptr, C1_ptr, C2_ptr, cell, d, n, mask_d, mask_n, D, N):
    """A cell's u and steps ([BLOCK_D]) and its B1, B2, C1, C2 ([BLOCK_N]), zeros off the tile."""
    u = tl.load(u_ptr + cell * D + d, mask=mask_d, other=0.0)
    dt = tl.load(dt_ptr + cell * D + d, mask=mask_d, other=0.0)
    dv = tl.load(dv_ptr + cell * D + d, mask=mask_d, other=0.0)
    B1 = tl.load(B1_ptr + cell * N + n, mask=mask_n, other=0.0)
    B2 = tl.load(B2_ptr + cell * N + n, mask=mask_n, other=0.0)
    C1 = tl.load(C1_ptr + cell * N + n, mask=mask_n, other=0.0)
    C2 = tl.load(C2_ptr + cell * N + n, mask=mask_n, other=0.0)
    return u, dt, dv, B1, B2, C1, C2


@triton.jit
def _scan2d_fwd_kernel(
    u_ptr, dt_ptr, dv_ptr, A1_ptr, A2_ptr, A3_ptr, A4_ptr, B1_ptr, B2_ptr, C1_ptr, C2_ptr,
    h1_0_ptr, h2_0_ptr, y_ptr, H1_ptr, H2_ptr,
    D, V, T, N, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b, d, n, mask_d, mask_n, mask, dn = _tile(D, N, BLOCK_D, BLOCK_N)
    A1, A2, A3, A4 = _transitions(A1_ptr, A2_ptr, A3_ptr, A4_ptr, dn, mask)
    for v in range(V):
        row = b * V + v
        h1 = tl.load(h1_0_ptr + row * D * N + dn, mask=mask, other=0.0)  # h1[v, -1]
        h2_left = tl.load(h2_0_ptr + row * D * N + dn, mask=mask, other=0.0)  # h2[v, t - 1]
        for t in range(T):
            cell = row * T + t
            u, dt, dv, B1, B2, C1, C2 = _cell(u_ptr, dt_ptr, dv_ptr, B1_ptr, B2_ptr, C1_ptr, C2_ptr,
                                              cell, d, n, mask_d, mask_n, D, N)
            decay1, integral1, decay4, integral4 = _coefficients(dt, dv, A1, A4)
            below = mask & (v > 0)  # the cell (v - 1, t), written one row ago
            h1_below = tl.load(H1_ptr + (cell - T) * D * N + dn, mask=below, other=0.0)
            h2_below = tl.load(H2_ptr + (cell - T) * D * N + dn, mask=below, other=0.0)
            h2 = (decay4 * h2_below + integral4 * A3 * h1_below
                  + (dv * u)[:, None] * B2[None, :])
            h1 = decay1 * h1 + integral1 * A2 * h2_left + (dt * u)[:, None] * B1[None, :]
            y = tl.sum(h1 * C1[None, :] + h2 * C2[None, :], axis=1)
            tl.store(y_ptr + cell * D + d, y, mask=mask_d)
            tl.store(H1_ptr + cell * D * N + dn, h1, mask=mask)
            tl.store(H2_ptr + cell * D * N + dn, h2, mask=mask)
            h2_left = h2
        tl.debug_barrier()


@triton.jit
def _scan2d_bwd_kernel(
    u_ptr, dt_ptr, dv_ptr, A1_ptr, A2_ptr, A3_ptr, A4_ptr, B1_ptr, B2_ptr, C1_ptr, C2_ptr,
    h1_0_ptr, h2_0_ptr, H1_ptr, H2_ptr, gy_ptr, g1_last_ptr, g2_last_ptr, down_a_ptr, down_k_ptr,
    du_ptr, ddt_ptr, ddv_ptr, dB1_ptr, dB2_ptr, dC1_ptr, dC2_ptr, sums_ptr, dh1_0_ptr, dh2_0_ptr,
    D, V, T, N, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b, d, n, mask_d, mask_n, mask, dn = _tile(D, N, BLOCK_D, BLOCK_N)
    A1, A2, A3, A4 = _transitions(A1_ptr, A2_ptr, A3_ptr, A4_ptr, dn, mask)
    # per program: sum delta_t * dL/d delta_t per element (-> dA1), sum g1 h2_left integral1
    # (= dA2), and the same along variates (dA3, -> dA4)
    sum_1 = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    sum_2 = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    sum_3 = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    sum_4 = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for vi in range(V):
        v = V - 1 - vi
        row = b * V + v
        # what flows back into h1[v, t] from h1[v, t + 1] and into h2[v, t] from h1[v, t + 1]
        # (at the last step: the gradients of the final state)
        from_right_1 = tl.load(g1_last_ptr + row * D * N + dn, mask=mask, other=0.0)
        from_right_2 = tl.load(g2_last_ptr + row * D * N + dn, mask=mask, other=0.0)
        for ti in range(T):
            t = T - 1 - ti
            cell = row * T + t
            u, dt, dv, B1, B2, C1, C2 = _cell(u_ptr, dt_ptr, dv_ptr, B1_ptr, B2_ptr, C1_ptr, C2_ptr,
                                              cell, d, n, mask_d, mask_n, D, N)
            gy = tl.load(gy_ptr + cell * D + d, mask=mask_d, other=0.0)
            above = mask & (v < V - 1)  # what the row above passed down at this t
            scratch = (b * T + t) * D * N + dn
            down_a = tl.load(down_a_ptr + scratch, mask=above, other=0.0)
            down_k = tl.load(down_k_ptr + scratch, mask=above, other=0.0)
            g1 = gy[:, None] * C1[None, :] + from_right_1 + down_k
            g2 = gy[:, None] * C2[None, :] + from_right_2 + down_a
            decay1, integral1, decay4, integral4 = _coefficients(dt, dv, A1, A4)
            first, below = mask & (t == 0), mask & (v > 0)
            later = mask & (t > 0)
            h1_left = (tl.load(H1_ptr + (cell - 1) * D * N + dn, mask=later, other=0.0)
                       + tl.load(h1_0_ptr + row * D * N + dn, mask=first, other=0.0))
            h2_left = (tl.load(H2_ptr + (cell - 1) * D * N + dn, mask=later, other=0.0)
                       + tl.load(h2_0_ptr + row * D * N + dn, mask=first, other=0.0))
            h1_below = tl.load(H1_ptr + (cell - T) * D * N + dn, mask=below, other=0.0)
            h2_below = tl.load(H2_ptr + (cell - T) * D * N + dn, mask=below, other=0.0)
            h1 = tl.load(H1_ptr + cell * D * N + dn, mask=mask, other=0.0)
            h2 = tl.load(H2_ptr + cell * D * N + dn, mask=mask, other=0.0)
            # time axis: h1 = decay1 h1_left + integral1 A2 h2_left + dt u B1
            coupled1 = g1 * h2_left
            sum_2 += coupled1 * integral1
            by_dt = decay1 * (g1 * h1_left * A1 + coupled1 * A2)
            sum_1 += by_dt * dt[:, None]
            g1_B = tl.sum(g1 * B1[None, :], axis=1)
            # variate axis: h2 = decay4 h2_below + integral4 A3 h1_below + dv u B2
            coupled2 = g2 * h1_below
            sum_3 += coupled2 * integral4
            by_dv = decay4 * (g2 * h2_below * A4 + coupled2 * A3)
            sum_4 += by_dv * dv[:, None]
            g2_B = tl.sum(g2 * B2[None, :], axis=1)
            tl.store(ddt_ptr + cell * D + d, tl.sum(by_dt, axis=1) + g1_B * u, mask=mask_d)
            tl.store(ddv_ptr + cell * D + d, tl.sum(by_dv, axis=1) + g2_B * u, mask=mask_d)
            tl.store(du_ptr + cell * D + d, g1_B * dt + g2_B * dv, mask=mask_d)
            tl.atomic_add(dB1_ptr + cell * N + n, tl.sum(g1 * (dt * u)[:, None], axis=0),
                          mask=mask_n)
            tl.atomic_add(dB2_ptr + cell * N + n, tl.sum(g2 * (dv * u)[:, None], axis=0),
                          mask=mask_n)
            tl.atomic_add(dC1_ptr + cell * N + n, tl.sum(h1 * gy[:, None], axis=0), mask=mask_n)
            tl.atomic_add(dC2_ptr + cell * N + n, tl.sum(h2 * gy[:, None], axis=0), mask=mask_n)
            from_right_1 = decay1 * g1
            from_right_2 = integral1 * A2 * g1
            tl.store(down_a_ptr + scratch, decay4 * g2, mask=mask)
            tl.store(down_k_ptr + scratch, integral4 * A3 * g2, mask=mask)
        # h1[v, -1] and h2[v, -1] feed cell (v, 0) as the left neighbours do
        tl.store(dh1_0_ptr + row * D * N + dn, from_right_1, mask=mask)
        tl.store(dh2_0_ptr + row * D * N + dn, from_right_2, mask=mask)
        tl.debug_barrier()
    partial = b * 4 * D * N + dn
    tl.store(sums_ptr + partial, sum_1, mask=mask)
    tl.store(sums_ptr + partial + D * N, sum_2, mask=mask)
    tl.store(sums_ptr + partial + 2 * D * N, sum_3, mask=mask)
    tl.store(sums_ptr + partial + 3 * D * N, sum_4, mask=mask)


def _block_d(channels: int) -> int:
    """Channels per program: 4 in the interpreter (fast enough for tests), 16 on a GPU."""
    return min(triton.next_power_of_2(channels), 4 if triton_interpreting() else 16)


def _cells(x: torch.Tensor) -> torch.Tensor:
    """[B, X, V, T] -> contiguous float32 [B, V, T, X] (a cell's values side by side)."""
    return x.float().permute(0, 2, 3, 1).contiguous()


def _grid(x: torch.Tensor) -> torch.Tensor:
    """The inverse of `_cells`: [B, V, T, X] -> [B, X, V, T]."""
    return x.permute(0, 3, 1, 2)


def _columns(h: torch.Tensor) -> torch.Tensor:
    """A column state [B, D, V, N] -> contiguous float32 [B, V, D, N]."""
    return h.float().transpose(1, 2).contiguous()


class Scan2dTriton(torch.autograd.Function):
    """As `Scan2dTorch`: u, delta_t, delta_v [B, D, V, T]; A1..A4 [D, N]; B1, B2, C1, C2
    [B, N, V, T]; h1_0, h2_0 [B, D, V, N] -> y [B, D, V, T], last column (h1, h2)."""

    @staticmethod
    def forward(ctx, u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2, h1_0, h2_0):  # noqa: N803
        batch, channels, n_var, length = u.shape
        state = A1.shape[1]
        cells = [_cells(x) for x in (u, delta_t, delta_v, B1, B2, C1, C2)]
        transitions = [a.float().contiguous() for a in (A1, A2, A3, A4)]
        initial = [_columns(h) for h in (h1_0, h2_0)]
        y = cells[0].new_empty(batch, n_var, length, channels)
        h1s = cells[0].new_empty(batch, n_var, length, channels, state)
        h2s = torch.empty_like(h1s)
        block_d = _block_d(channels)
        with triton_device_guard(u):
            _scan2d_fwd_kernel[(batch, triton.cdiv(channels, block_d))](
                cells[0], cells[1], cells[2], *transitions, *cells[3:], *initial, y, h1s, h2s,
                channels, n_var, length, state, BLOCK_D=block_d,
                BLOCK_N=triton.next_power_of_2(state),
            )
        ctx.save_for_backward(*cells, *transitions, *initial, h1s, h2s)
        ctx.dtypes = (u.dtype, A1.dtype, B1.dtype, h1_0.dtype)
        last = [h[:, :, -1].transpose(1, 2).contiguous() for h in (h1s, h2s)]  # [B, D, V, N]
        return _grid(y).to(u.dtype), *last

    @staticmethod
    def backward(ctx, grad_y, grad_h1_last, grad_h2_last):
        (u, dt, dv, B1, B2, C1, C2, A1, A2, A3, A4, h1_0, h2_0,  # noqa: N806
         h1s, h2s) = ctx.saved_tensors
        u_dtype, a_dtype, bc_dtype, h_dtype = ctx.dtypes
        batch, n_var, length, channels = u.shape
        state = A1.shape[1]
        gy = _cells(grad_y)
        last = [_columns(g) for g in (grad_h1_last, grad_h2_last)]
        f32 = dict(device=u.device, dtype=torch.float32)
        scratch = [torch.empty(batch, length, channels, state, **f32) for _ in range(2)]
        du, ddt, ddv = (torch.empty_like(u) for _ in range(3))
        dBC = [torch.zeros(batch, n_var, length, state, **f32) for _ in range(4)]  # noqa: N806
        sums = torch.empty(batch, 4, channels, state, **f32)
        dh0 = [torch.empty(batch, n_var, channels, state, **f32) for _ in range(2)]
        block_d = _block_d(channels)
        with triton_device_guard(u):
            _scan2d_bwd_kernel[(batch, triton.cdiv(channels, block_d))](
                u, dt, dv, A1, A2, A3, A4, B1, B2, C1, C2, h1_0, h2_0, h1s, h2s, gy, *last,
                *scratch, du, ddt, ddv, *dBC, sums, *dh0,
                channels, n_var, length, state, BLOCK_D=block_d,
                BLOCK_N=triton.next_power_of_2(state),
            )
        sum_1, grad_A2, grad_A3, sum_4 = sums.sum(0).unbind(0)  # noqa: N806
        # dL/dA = (sum delta dL/d delta per element - A_couple dL/dA_couple) / A (see eager.py)
        grad_A1 = (sum_1 - A2 * grad_A2) / A1  # noqa: N806
        grad_A4 = (sum_4 - A3 * grad_A3) / A4  # noqa: N806
        grads_A = [g.to(a_dtype) for g in (grad_A1, grad_A2, grad_A3, grad_A4)]  # noqa: N806
        return (_grid(du).to(u_dtype), _grid(ddt).to(u_dtype), _grid(ddv).to(u_dtype), *grads_A,
                *(_grid(g).to(bc_dtype) for g in dBC),
                *(g.transpose(1, 2).to(h_dtype) for g in dh0))


def scan2d_triton(
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
    """Triton 2-D scan (float32 inside): (y, last column's (h1, h2)), as `scan2d_reference`."""
    batch, channels, n_var, _ = u.shape
    if initial_state is None:
        zeros = u.new_zeros(batch, channels, n_var, A1.shape[1], dtype=torch.float32)
        initial_state = (zeros, zeros)
    y, h1_last, h2_last = Scan2dTriton.apply(u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2,
                                             *initial_state)
    if D is not None:
        y = y + D.to(y.dtype)[:, None, None] * u
    return y, (h1_last, h2_last)
