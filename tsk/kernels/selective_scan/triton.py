"""Triton selective scan: the state stays in registers, forward and backward.

Forward: one program per (batch, block of channels) walks the sequence; the state tile
[BLOCK_D, N] lives in registers and only y [B, D, L] plus the state at each chunk start
([B, D, L / CHUNK, N]) are written. The [B, D, L, N] states never reach memory.
Backward: the same programs walk the chunks in reverse; each chunk's states are recomputed from
its saved start into a small per-program scratch ([CHUNK + 1, BLOCK_D, N]), then the adjoint
g_t = C_t gy_t + exp(delta_{t+1} A) g_{t+1} runs backwards in time, producing the gradients of
u, delta (stored), A (accumulated in registers), B and C (summed over channels with atomics).
A block of channels never straddles a group, so B_t and C_t are one [N] vector per step.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels._dispatch import triton_device_guard
from tsk.kernels.selective_scan.torch import finish_output, prepare_delta

_LOG2E = 1.4426950408889634
_MAX_BLOCK_D = 32


@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, y_ptr, starts_ptr, last_ptr,
    D, L, N, G, n_chunks,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # 64-bit offsets: B * D * L can pass 2**31
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    mask_n = n < N
    mask_dn = (d[:, None] < D) & mask_n[None, :]
    group = (tl.program_id(1) * BLOCK_D) // (D // G)
    A2 = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=mask_dn, other=0.0) * 1.4426950408889634
    row = (b * D + d) * L  # [BLOCK_D] offsets of u / delta / y rows
    bc_row = ((b * G + group) * N + n) * L  # [BLOCK_N] offsets of B / C rows
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for c in range(0, n_chunks):
        st = ((b * D + d[:, None]) * n_chunks + c) * N + n[None, :]
        tl.store(starts_ptr + st, h, mask=mask_dn)
        for k in range(0, CHUNK):
            t = c * CHUNK + k
            in_seq = t < L
            dl = tl.load(delta_ptr + row + t, mask=in_seq, other=0.0)
            uu = tl.load(u_ptr + row + t, mask=in_seq, other=0.0)
            Bt = tl.load(B_ptr + bc_row + t, mask=mask_n & in_seq, other=0.0)
            Ct = tl.load(C_ptr + bc_row + t, mask=mask_n & in_seq, other=0.0)
            h = tl.exp2(dl[:, None] * A2) * h + (dl * uu)[:, None] * Bt[None, :]
            y = tl.sum(h * Ct[None, :], axis=1)
            tl.store(y_ptr + row + t, y, mask=in_seq)
    tl.store(last_ptr + (b * D + d[:, None]) * N + n[None, :], h, mask=mask_dn)


@triton.jit
def _selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, gy_ptr, starts_ptr, glast_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr,
    D, L, N, G, n_chunks,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # 64-bit offsets: B * D * L can pass 2**31
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    mask_n = n < N
    mask_dn = (d[:, None] < D) & mask_n[None, :]
    group = (tl.program_id(1) * BLOCK_D) // (D // G)
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=mask_dn, other=0.0)
    A2 = A * 1.4426950408889634
    row = (b * D + d) * L
    bc_row = ((b * G + group) * N + n) * L
    tile = tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + n[None, :]
    scratch = scratch_ptr + (b * tl.num_programs(1) + tl.program_id(1)) * (
        (CHUNK + 1) * BLOCK_D * BLOCK_N
    )
    carry = tl.load(glast_ptr + (b * D + d[:, None]) * N + n[None, :], mask=mask_dn, other=0.0)
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        st = ((b * D + d[:, None]) * n_chunks + c) * N + n[None, :]
        h = tl.load(starts_ptr + st, mask=mask_dn, other=0.0)
        tl.store(scratch + tile, h)
        # recompute the chunk's states: scratch slot k + 1 holds h after step c * CHUNK + k
        for k in range(0, CHUNK):
            t = c * CHUNK + k
            in_seq = t < L
            dl = tl.load(delta_ptr + row + t, mask=in_seq, other=0.0)
            uu = tl.load(u_ptr + row + t, mask=in_seq, other=0.0)
            Bt = tl.load(B_ptr + bc_row + t, mask=mask_n & in_seq, other=0.0)
            h = tl.exp2(dl[:, None] * A2) * h + (dl * uu)[:, None] * Bt[None, :]
            tl.store(scratch + (k + 1) * BLOCK_D * BLOCK_N + tile, h)
        tl.debug_barrier()
        for kk in range(0, CHUNK):
            k = CHUNK - 1 - kk
            t = c * CHUNK + k
            in_seq = t < L
            dl = tl.load(delta_ptr + row + t, mask=in_seq, other=0.0)
            uu = tl.load(u_ptr + row + t, mask=in_seq, other=0.0)
            gy = tl.load(gy_ptr + row + t, mask=in_seq, other=0.0)
            Bt = tl.load(B_ptr + bc_row + t, mask=mask_n & in_seq, other=0.0)
            Ct = tl.load(C_ptr + bc_row + t, mask=mask_n & in_seq, other=0.0)
            h_t = tl.load(scratch + (k + 1) * BLOCK_D * BLOCK_N + tile)
            h_prev = tl.load(scratch + k * BLOCK_D * BLOCK_N + tile)
            decay = tl.exp2(dl[:, None] * A2)
            g = carry + gy[:, None] * Ct[None, :]  # dLoss/dh_t
            x = g * decay * h_prev  # dLoss/d(delta_t A)
            g_dot_B = tl.sum(g * Bt[None, :], axis=1)
            tl.store(ddelta_ptr + row + t, tl.sum(x * A, axis=1) + g_dot_B * uu, mask=in_seq)
            tl.store(du_ptr + row + t, g_dot_B * dl, mask=in_seq)
            dA_acc += x * dl[:, None]
            gB_t = tl.sum(g * (dl * uu)[:, None], axis=0)  # [BLOCK_N]
            gC_t = tl.sum(h_t * gy[:, None], axis=0)
            tl.atomic_add(dB_ptr + bc_row + t, gB_t, mask=mask_n & in_seq)
            tl.atomic_add(dC_ptr + bc_row + t, gC_t, mask=mask_n & in_seq)
            carry = decay * g
        tl.debug_barrier()
    tl.store(dA_ptr + (b * D + d[:, None]) * N + n[None, :], dA_acc, mask=mask_dn)


def _block_d(channels_per_group: int) -> int:
    """Largest power of two <= 32 dividing the group width (a block stays inside one group)."""
    block = 1
    while block < _MAX_BLOCK_D and channels_per_group % (2 * block) == 0:
        block *= 2
    return block


_MAX_CHUNK = 64  # steps between saved states (the backward's scratch holds CHUNK + 1 states)


def _chunk(length: int) -> int:
    return min(_MAX_CHUNK, length)


class SelectiveScanTriton(torch.autograd.Function):
    """Core scan: u, delta [B, D, L]; A [D, N]; B, C [B, G, N, L]; float32, contiguous."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C):  # noqa: N803
        batch, channels, length = u.shape
        groups, state = B.shape[1], A.shape[1]
        block_d = _block_d(channels // groups)
        chunk = _chunk(length)
        n_chunks = triton.cdiv(length, chunk)
        y = torch.empty_like(u)
        starts = u.new_empty(batch, channels, n_chunks, state)
        last = u.new_empty(batch, channels, state)
        with triton_device_guard(u):
            _selective_scan_fwd_kernel[(batch, channels // block_d)](
                u, delta, A, B, C, y, starts, last, channels, length, state, groups, n_chunks,
                CHUNK=chunk, BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(state),
            )
        ctx.save_for_backward(u, delta, A, B, C, starts)
        ctx.sizes = (block_d, chunk, n_chunks)
        return y, last

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        u, delta, A, B, C, starts = ctx.saved_tensors
        block_d, chunk, n_chunks = ctx.sizes
        batch, channels, length = u.shape
        groups, state = B.shape[1], A.shape[1]
        block_n = triton.next_power_of_2(state)
        n_blocks = channels // block_d
        scratch = u.new_empty(batch * n_blocks * (chunk + 1) * block_d * block_n)
        grad_u, grad_delta = torch.empty_like(u), torch.empty_like(u)
        grad_A = u.new_empty(batch, channels, state)
        grad_B, grad_C = torch.zeros_like(B), torch.zeros_like(C)
        with triton_device_guard(u):
            _selective_scan_bwd_kernel[(batch, n_blocks)](
                u, delta, A, B, C, grad_y.contiguous().float(), starts,
                grad_last.contiguous().float(), scratch,
                grad_u, grad_delta, grad_A, grad_B, grad_C,
                channels, length, state, groups, n_chunks,
                CHUNK=chunk, BLOCK_D=block_d, BLOCK_N=block_n,
            )
        return grad_u, grad_delta, grad_A.sum(0), grad_B, grad_C


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,  # noqa: N803
    B: torch.Tensor,  # noqa: N803
    C: torch.Tensor,  # noqa: N803
    D: torch.Tensor | None = None,  # noqa: N803
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Triton selective scan (float32 inside); same arguments and results as `selective_scan`."""
    dtype = torch.float32  # the kernels compute in float32 whatever the input dtype
    delta_ = prepare_delta(delta, delta_bias, delta_softplus, dtype).contiguous()
    B4 = B.unsqueeze(1) if B.dim() == 3 else B
    C4 = C.unsqueeze(1) if C.dim() == 3 else C
    groups = max(B4.shape[1], C4.shape[1])
    B4 = B4.to(dtype).expand(-1, groups, -1, -1).contiguous()
    C4 = C4.to(dtype).expand(-1, groups, -1, -1).contiguous()
    y, last = SelectiveScanTriton.apply(
        u.to(dtype).contiguous(), delta_, A.to(dtype).contiguous(), B4, C4
    )
    y = finish_output(y, u, D, z).to(u.dtype)
    return (y, last) if return_last_state else y
