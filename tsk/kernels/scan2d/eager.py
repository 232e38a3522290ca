"""Fast 2-D selective scan in torch (any device; the CPU path): a sweep over variate rows, one
parallel scan over time per row.

Row v needs only row v - 1: its variate-direction state h2[v, :] is elementwise in the row below
(h2[v, t] reads h1, h2 at (v - 1, t)), and its time-direction state h1[v, :] is then a 1-D linear
scan over time whose input carries h2[v, t - 1]. Each row's time scan is the two-level chunked
scan of `linear_scan` (~2 sqrt(T) vectorized steps), so a grid costs ~V (2 sqrt(T) + c) Python
steps on [B, D, T, N] tensors.

The backward is hand-written: rows in reverse, the adjoint of h1 is a reverse scan over time
within the row, the adjoint of h2 elementwise from it and the row above; the row's coefficients
are recomputed from the steps, so only the two state grids are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tsk.kernels.common.dispatch import compute_dtype
from tsk.kernels.linear_scan.eager import chunked_scan


def _row_coefficients(delta: torch.Tensor, A: torch.Tensor, A_couple: torch.Tensor):  # noqa: N803
    """delta [B, D, T], A, A_couple [D, N] -> decay exp(delta A), the ZOH integral
    (decay - 1) / A and the coupling integral * A_couple, each [B, D, T, N]."""
    decay = torch.exp(delta[..., None] * A[:, None, :])
    integral = (decay - 1) / A[:, None, :]
    return decay, integral, integral * A_couple[:, None, :]


def _scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t over the T axis of [B, D, T, N] tensors (h0 [B, D, N])."""
    batch, channels, length, state = b.shape
    flat = (batch * channels, length, state)
    h = chunked_scan(a.reshape(flat), b.reshape(flat), None if h0 is None else h0.reshape(-1, state))
    return h.view(batch, channels, length, state)


def _reverse_scan(a: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """g_t = src_t + a_{t+1} g_{t+1} over the T axis of [B, D, T, N] tensors."""
    a_next = torch.cat([a[:, :, 1:], torch.zeros_like(a[:, :, :1])], dim=2)
    return _scan(a_next.flip(2), src.flip(2), None).flip(2)


def _shift_right(h: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """[B, D, T, N] -> the same one step later in time: out[t] = h[t - 1], out[0] = first."""
    return torch.cat([first[:, :, None], h[:, :, :-1]], dim=2)


def _channel_sum(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_d h[b, d, t, n] w[b, d, t] -> [B, N, T]."""
    return (h * w[..., None]).sum(1).transpose(1, 2)


def _row_inputs(u, delta, BC):  # noqa: N803
    """(delta * u)[..., None] * B as [B, D, T, N] from u, delta [B, D, T] and B [B, N, T]."""
    return (delta * u)[..., None] * BC.transpose(1, 2)[:, None]


@dataclass
class _Axis:
    """One axis of a row's backward: the state h along it (decaying by `decay`, fed the other
    state through `integral * A_couple`), its adjoint g, and the values h was built from."""

    delta: torch.Tensor  # [B, D, T]
    decay: torch.Tensor  # exp(delta A), [B, D, T, N]
    integral: torch.Tensor  # (decay - 1) / A
    A: torch.Tensor  # [D, N]
    A_couple: torch.Tensor  # [D, N]
    g: torch.Tensor  # dL/dh
    h_self: torch.Tensor  # the state that decays into h
    h_cross: torch.Tensor  # the other state, coupled into h
    BC: torch.Tensor  # B of the axis, [B, 1, T, N]
    h: torch.Tensor  # the state itself
    i_self: int  # which of A1..A4 is A
    i_couple: int  # which is A_couple
    key: str  # "1" (time) or "2" (variates)

    def grads(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """dL/d delta through the coefficients [B, D, T], dL/dA and dL/dA_couple [D, N], and
        <g, B> [B, D, T] (the input term's share)."""
        coupled = self.g * self.h_cross  # dL/d (integral * A_couple) / A_couple
        grad_couple = (coupled * self.integral).sum((0, 2))
        A = self.A[:, None, :]  # noqa: N806
        # d decay = decay (A d delta + delta dA), d integral = decay d delta + (delta decay -
        # integral) / A dA: per element, dL/d delta = decay (dL/d decay A + dL/d integral), and
        # dL/dA = (delta dL/d delta - dL/d integral integral) / A, whose second term sums to
        # A_couple grad_couple
        by_delta = torch.addcmul(coupled * self.A_couple[:, None, :], self.g * self.h_self, A)
        by_delta.mul_(self.decay)
        grad_self = ((by_delta * self.delta[..., None]).sum((0, 2))
                     - self.A_couple * grad_couple) / self.A
        return by_delta.sum(-1), grad_self, grad_couple, (self.g * self.BC).sum(-1)


class Scan2dTorch(torch.autograd.Function):
    """u, delta_t, delta_v [B, D, V, T]; A1..A4 [D, N]; B1, B2, C1, C2 [B, N, V, T]; h1_0, h2_0
    [B, D, V, N] (all one float dtype) -> y [B, D, V, T], last column (h1, h2) [B, D, V, N]."""

    @staticmethod
    def forward(ctx, u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2, h1_0, h2_0):  # noqa: N803
        batch, channels, n_var, length = u.shape
        state = A1.shape[1]
        h1s = u.new_empty(n_var, batch, channels, length, state)
        h2s = torch.empty_like(h1s)
        y = u.new_empty(batch, channels, n_var, length)
        h1_below = h2_below = u.new_zeros(batch, channels, length, state)
        for v in range(n_var):
            u_v, dt_v, dv_v = u[:, :, v], delta_t[:, :, v], delta_v[:, :, v]
            decay1, _, couple1 = _row_coefficients(dt_v, A1, A2)
            decay4, _, couple3 = _row_coefficients(dv_v, A4, A3)
            h2 = decay4 * h2_below + couple3 * h1_below + _row_inputs(u_v, dv_v, B2[:, :, v])
            drive = couple1 * _shift_right(h2, h2_0[:, :, v]) + _row_inputs(u_v, dt_v, B1[:, :, v])
            h1 = _scan(decay1, drive, h1_0[:, :, v])
            h1s[v], h2s[v] = h1, h2
            y[:, :, v] = ((h1 * C1[:, :, v].transpose(1, 2)[:, None]).sum(-1)
                          + (h2 * C2[:, :, v].transpose(1, 2)[:, None]).sum(-1))
            h1_below, h2_below = h1, h2
        ctx.save_for_backward(u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2, h1_0, h2_0,
                              h1s, h2s)
        last = (h1s[:, :, :, -1].permute(1, 2, 0, 3).contiguous(),
                h2s[:, :, :, -1].permute(1, 2, 0, 3).contiguous())
        return y, *last

    @staticmethod
    def backward(ctx, grad_y, grad_h1_last, grad_h2_last):
        (u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2, h1_0, h2_0,
         h1s, h2s) = ctx.saved_tensors
        n_var = u.shape[2]
        dtype = u.dtype
        grad_y = grad_y.to(dtype)
        grads = {name: torch.zeros_like(x) for name, x in (
            ("u", u), ("dt", delta_t), ("dv", delta_v), ("B1", B1), ("B2", B2), ("C1", C1),
            ("C2", C2), ("h1_0", h1_0), ("h2_0", h2_0))}
        grad_A = [torch.zeros_like(A1) for _ in range(4)]
        g2_above = decay4_above = couple3_above = None  # row v + 1's adjoint and coefficients
        for v in reversed(range(n_var)):
            u_v, dt_v, dv_v = u[:, :, v], delta_t[:, :, v], delta_v[:, :, v]
            B1_v, B2_v = (m[:, :, v].transpose(1, 2)[:, None] for m in (B1, B2))  # [B, 1, T, N]
            C1_v, C2_v = (m[:, :, v].transpose(1, 2)[:, None] for m in (C1, C2))
            decay1, integral1, couple1 = _row_coefficients(dt_v, A1, A2)
            decay4, integral4, couple3 = _row_coefficients(dv_v, A4, A3)
            gy = grad_y[:, :, v, :, None]  # [B, D, T, 1]
            # adjoint of h1: its output, the last column's state, and the row above's h2
            src1 = gy * C1_v
            src1[:, :, -1] += grad_h1_last.to(dtype)[:, :, v]
            if g2_above is not None:
                src1 += couple3_above * g2_above
            g1 = _reverse_scan(decay1, src1)
            # adjoint of h2: its output, h1 one step later in this row, h2 of the row above
            g2 = gy * C2_v
            g2[:, :, :-1] += couple1[:, :, 1:] * g1[:, :, 1:]
            g2[:, :, -1] += grad_h2_last.to(dtype)[:, :, v]
            if g2_above is not None:
                g2 += decay4_above * g2_above
            h1, h2 = h1s[v], h2s[v]
            h1_left = _shift_right(h1, h1_0[:, :, v])
            h2_left = _shift_right(h2, h2_0[:, :, v])
            zero = torch.zeros_like(h1)
            h1_below, h2_below = (h1s[v - 1], h2s[v - 1]) if v else (zero, zero)
            for axis in (
                _Axis(dt_v, decay1, integral1, A1, A2, g1, h1_left, h2_left, B1_v, h1, 0, 1, "1"),
                _Axis(dv_v, decay4, integral4, A4, A3, g2, h2_below, h1_below, B2_v, h2, 3, 2, "2"),
            ):
                grad_delta, grad_self, grad_couple, g_dot_B = axis.grads()
                grads["dt" if axis.key == "1" else "dv"][:, :, v] = grad_delta + g_dot_B * u_v
                grad_A[axis.i_self] += grad_self
                grad_A[axis.i_couple] += grad_couple
                grads["u"][:, :, v] += g_dot_B * axis.delta
                grads["B" + axis.key][:, :, v] = _channel_sum(axis.g, axis.delta * u_v)
                grads["C" + axis.key][:, :, v] = _channel_sum(axis.h, grad_y[:, :, v])
            grads["h1_0"][:, :, v] = decay1[:, :, 0] * g1[:, :, 0]
            grads["h2_0"][:, :, v] = couple1[:, :, 0] * g1[:, :, 0]
            g2_above, decay4_above, couple3_above = g2, decay4, couple3
        return (grads["u"], grads["dt"], grads["dv"], *grad_A, grads["B1"], grads["B2"],
                grads["C1"], grads["C2"], grads["h1_0"], grads["h2_0"])


def scan2d_torch(
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
    """Row-sweep 2-D scan: (y, last column's (h1, h2)), as `scan2d_reference`."""
    dtype = compute_dtype(u, delta_t, delta_v, A1, B1, C1)
    batch, channels, n_var, _ = u.shape
    state = A1.shape[1]
    if initial_state is None:
        h1_0 = h2_0 = u.new_zeros(batch, channels, n_var, state, dtype=dtype)
    else:
        h1_0, h2_0 = (h.to(dtype) for h in initial_state)
    args = [x.to(dtype) for x in (u, delta_t, delta_v, A1, A2, A3, A4, B1, B2, C1, C2)]
    y, h1_last, h2_last = Scan2dTorch.apply(*args, h1_0, h2_0)
    if D is not None:
        y = y + D.to(dtype)[:, None, None] * u.to(dtype)
    return y.to(u.dtype), (h1_last, h2_last)
