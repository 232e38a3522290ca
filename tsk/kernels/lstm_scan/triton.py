"""Fused Triton head-wise LSTM recurrence, forward and backward (FlashRNN's design).

FlashRNN (Pöppel, Beck, Hochreiter, 2024) makes a traditional RNN I/O-aware: the input half of
every gate, W x_t, is computed for all steps outside by one big matmul, and a single kernel
walks time with the recurrent matrix held on-chip, so that per step only the step's gate inputs
are read and its states written. The recurrent matrix is block-diagonal over heads (one
[4 Dh, Dh] block per head), which is what makes it fit on-chip.

Forward: one program per (block of batch rows, head). It loads the head's four [Dh, Dh] gate
blocks of R and its bias once, keeps h and c [BLOCK_B, Dh] in registers, and per step does four
`tl.dot`s (h @ R_gate^T), the gate nonlinearities and the cell update. It writes h_t, and, when a
backward will follow, the activated gates (i, f, g, o) and c_t (as FlashRNN does).
Backward: the same programs walk time in reverse with the adjoints dh, dc in registers:
dc_t += dh_t o (1 - tanh^2 c_t); d_i = dc g i(1-i), d_f = dc c_{t-1} f(1-f), d_g = dc i (1-g^2),
d_o = dh tanh(c_t) o(1-o); dc_{t-1} = dc f; dh_{t-1} = sum_gates d_gate @ R_gate. The gate
adjoints are stored (they are the gradient of gates_x; their sum over batch and time is the bias
gradient) and dR_gate += d_gate^T h_{t-1} accumulates on-chip, one partial per batch block,
summed afterwards (deterministic, no atomics).

Dot products use input_precision="ieee" so that fp32 results match the other paths to ~1e-5
(TF32 would be faster on tensor cores). Dh is padded to a power of two >= 16 (`tl.dot`'s
minimum); the padded units stay exactly zero. A head's fp32 R takes 4 Dh^2 * 4 bytes (64 KiB at
Dh = 64) and the backward holds dR beside it, so heads wider than Dh = 64 are refused (FlashRNN's
fused CUDA kernel spreads a larger R over several cooperating blocks; Triton cannot).
Tested against the reference on an H100 (tests/kernels/test_lstm.py and bf16/fp16 inputs in
test_half_precision_cuda.py, 2026-11-22) as well as under TRITON_INTERPRET=1; their GPU speed
and the autotune configs are not benchmarked yet.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import triton_device_guard, triton_interpreting
from tsk.kernels.lstm_scan.limits import MAX_HEAD_DIM

_MIN_DOT = 16  # tl.dot needs every dimension >= 16

if triton_interpreting():
    _CONFIGS = [triton.Config({"BLOCK_B": 16}, num_warps=4)]
else:
    _CONFIGS = [
        triton.Config({"BLOCK_B": block_b}, num_warps=warps)
        for block_b in (16, 32, 64)
        for warps in (4, 8)
    ]


def _prune_configs(configs: list, named_args: dict, **kwargs) -> list:
    """Drop batch blocks larger than the (padded) batch: they would only compute padding."""
    fitting = max(_MIN_DOT, triton.next_power_of_2(named_args["batch"]))
    kept = [c for c in configs if c.kwargs["BLOCK_B"] <= fitting]
    return kept or configs[:1]


@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.autotune(configs=_CONFIGS, key=["batch", "BLOCK_D"],
                 prune_configs_by={"early_config_prune": _prune_configs})
@triton.jit
def _lstm_fwd_kernel(
    gx_ptr, R_ptr, bias_ptr, h0_ptr, c0_ptr,  # [B, L, 4, H, Dh], [H, 4 Dh, Dh], [4, H, Dh], [B, H Dh] x2
    h_ptr, c_last_ptr, acts_ptr, c_ptr,  # [B, L, H Dh], [B, H Dh], [B, L, 4, H, Dh], [B, L, H Dh]
    batch, length, heads, head_dim,
    SAVE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    head = tl.program_id(1)
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # [BB]
    d = tl.arange(0, BLOCK_D)  # [BD]
    mask = (rows[:, None] < batch) & (d[None, :] < head_dim)  # [BB, BD]
    width = heads * head_dim  # H Dh: one time step of h
    # R^T blocks, loaded once: rt[m, j] = R[head, gate * Dh + j, m]
    r_mask = (d[:, None] < head_dim) & (d[None, :] < head_dim)
    r_base = R_ptr + head * 4 * head_dim * head_dim + d[None, :] * head_dim + d[:, None]
    rt_i = tl.load(r_base, mask=r_mask, other=0.0)
    rt_f = tl.load(r_base + head_dim * head_dim, mask=r_mask, other=0.0)
    rt_g = tl.load(r_base + 2 * head_dim * head_dim, mask=r_mask, other=0.0)
    rt_o = tl.load(r_base + 3 * head_dim * head_dim, mask=r_mask, other=0.0)
    b_base = bias_ptr + head * head_dim + d
    b_mask = d < head_dim
    b_i = tl.load(b_base, mask=b_mask, other=0.0)[None, :]
    b_f = tl.load(b_base + width, mask=b_mask, other=0.0)[None, :]
    b_g = tl.load(b_base + 2 * width, mask=b_mask, other=0.0)[None, :]
    b_o = tl.load(b_base + 3 * width, mask=b_mask, other=0.0)[None, :]
    state_off = rows[:, None] * width + head * head_dim + d[None, :]  # [BB, BD] in [B, H Dh]
    h = tl.load(h0_ptr + state_off, mask=mask, other=0.0)
    c = tl.load(c0_ptr + state_off, mask=mask, other=0.0)
    col = head * head_dim + d[None, :]  # [1, BD]: this head's units within one step
    for t in range(0, length):
        row_t = rows[:, None] * length + t  # [BB, 1] int64: offsets stay exact past 2**31
        gx_off = row_t * (4 * width) + col  # [BB, BD]
        h_off = row_t * width + col
        pre_i = tl.load(gx_ptr + gx_off, mask=mask, other=0.0) + b_i
        pre_f = tl.load(gx_ptr + gx_off + width, mask=mask, other=0.0) + b_f
        pre_g = tl.load(gx_ptr + gx_off + 2 * width, mask=mask, other=0.0) + b_g
        pre_o = tl.load(gx_ptr + gx_off + 3 * width, mask=mask, other=0.0) + b_o
        gate_i = tl.sigmoid(pre_i + tl.dot(h, rt_i, input_precision="ieee"))
        gate_f = tl.sigmoid(pre_f + tl.dot(h, rt_f, input_precision="ieee"))
        gate_g = _tanh(pre_g + tl.dot(h, rt_g, input_precision="ieee"))
        gate_o = tl.sigmoid(pre_o + tl.dot(h, rt_o, input_precision="ieee"))
        c = gate_f * c + gate_i * gate_g
        h = gate_o * _tanh(c)
        tl.store(h_ptr + h_off, h, mask=mask)
        if SAVE:
            tl.store(c_ptr + h_off, c, mask=mask)
            tl.store(acts_ptr + gx_off, gate_i, mask=mask)
            tl.store(acts_ptr + gx_off + width, gate_f, mask=mask)
            tl.store(acts_ptr + gx_off + 2 * width, gate_g, mask=mask)
            tl.store(acts_ptr + gx_off + 3 * width, gate_o, mask=mask)
    tl.store(c_last_ptr + state_off, c, mask=mask)


@triton.autotune(configs=_CONFIGS, key=["batch", "BLOCK_D"],
                 prune_configs_by={"early_config_prune": _prune_configs})
@triton.jit
def _lstm_bwd_kernel(
    R_ptr, h0_ptr, c0_ptr, h_ptr, acts_ptr, c_ptr,  # as saved by the forward
    grad_h_ptr, grad_c_last_ptr,  # [B, L, H Dh], [B, H Dh]
    grad_gx_ptr, grad_R_ptr, grad_h0_ptr, grad_c0_ptr,  # [B, L, 4, H, Dh], [NB, H, 4 Dh, Dh], [B, H Dh] x2
    batch, length, heads, head_dim,
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    head = tl.program_id(1)
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < batch) & (d[None, :] < head_dim)
    width = heads * head_dim
    # R blocks, loaded once: r[j, m] = R[head, gate * Dh + j, m]
    r_mask = (d[:, None] < head_dim) & (d[None, :] < head_dim)
    r_block = head * 4 * head_dim * head_dim + d[:, None] * head_dim + d[None, :]
    r_i = tl.load(R_ptr + r_block, mask=r_mask, other=0.0)
    r_f = tl.load(R_ptr + r_block + head_dim * head_dim, mask=r_mask, other=0.0)
    r_g = tl.load(R_ptr + r_block + 2 * head_dim * head_dim, mask=r_mask, other=0.0)
    r_o = tl.load(R_ptr + r_block + 3 * head_dim * head_dim, mask=r_mask, other=0.0)
    dr_i = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    dr_f = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    dr_g = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    dr_o = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    state_off = rows[:, None] * width + head * head_dim + d[None, :]
    h_init = tl.load(h0_ptr + state_off, mask=mask, other=0.0)
    c_init = tl.load(c0_ptr + state_off, mask=mask, other=0.0)
    dh = tl.zeros([BLOCK_B, BLOCK_D], dtype=tl.float32)  # reaches h_t from step t + 1
    dc = tl.load(grad_c_last_ptr + state_off, mask=mask, other=0.0)
    col = head * head_dim + d[None, :]
    for tt in range(0, length):
        t = length - 1 - tt
        row_t = rows[:, None] * length + t  # [BB, 1] int64
        gx_off = row_t * (4 * width) + col
        h_off = row_t * width + col
        has_prev = t > 0
        # h_{t-1}, c_{t-1}: the saved states, or the initial ones at t = 0
        h_prev = tl.load(h_ptr + h_off - width, mask=mask & has_prev, other=0.0)
        c_prev = tl.load(c_ptr + h_off - width, mask=mask & has_prev, other=0.0)
        h_prev = tl.where(has_prev, h_prev, h_init)
        c_prev = tl.where(has_prev, c_prev, c_init)
        gate_i = tl.load(acts_ptr + gx_off, mask=mask, other=0.0)
        gate_f = tl.load(acts_ptr + gx_off + width, mask=mask, other=0.0)
        gate_g = tl.load(acts_ptr + gx_off + 2 * width, mask=mask, other=0.0)
        gate_o = tl.load(acts_ptr + gx_off + 3 * width, mask=mask, other=0.0)
        tanh_c = _tanh(tl.load(c_ptr + h_off, mask=mask, other=0.0))
        dh += tl.load(grad_h_ptr + h_off, mask=mask, other=0.0)
        dc += dh * gate_o * (1.0 - tanh_c * tanh_c)
        d_i = dc * gate_g * gate_i * (1.0 - gate_i)
        d_f = dc * c_prev * gate_f * (1.0 - gate_f)
        d_g = dc * gate_i * (1.0 - gate_g * gate_g)
        d_o = dh * tanh_c * gate_o * (1.0 - gate_o)
        tl.store(grad_gx_ptr + gx_off, d_i, mask=mask)
        tl.store(grad_gx_ptr + gx_off + width, d_f, mask=mask)
        tl.store(grad_gx_ptr + gx_off + 2 * width, d_g, mask=mask)
        tl.store(grad_gx_ptr + gx_off + 3 * width, d_o, mask=mask)
        dr_i += tl.dot(tl.trans(d_i), h_prev, input_precision="ieee")
        dr_f += tl.dot(tl.trans(d_f), h_prev, input_precision="ieee")
        dr_g += tl.dot(tl.trans(d_g), h_prev, input_precision="ieee")
        dr_o += tl.dot(tl.trans(d_o), h_prev, input_precision="ieee")
        dc = dc * gate_f
        dh = tl.dot(d_i, r_i, input_precision="ieee")
        dh += tl.dot(d_f, r_f, input_precision="ieee")
        dh += tl.dot(d_g, r_g, input_precision="ieee")
        dh += tl.dot(d_o, r_o, input_precision="ieee")
    tl.store(grad_h0_ptr + state_off, dh, mask=mask)
    tl.store(grad_c0_ptr + state_off, dc, mask=mask)
    dr_base = grad_R_ptr + (tl.program_id(0) * heads + head).to(tl.int64) * 4 * head_dim * head_dim
    dr_off = d[:, None] * head_dim + d[None, :]
    tl.store(dr_base + dr_off, dr_i, mask=r_mask)
    tl.store(dr_base + dr_off + head_dim * head_dim, dr_f, mask=r_mask)
    tl.store(dr_base + dr_off + 2 * head_dim * head_dim, dr_g, mask=r_mask)
    tl.store(dr_base + dr_off + 3 * head_dim * head_dim, dr_o, mask=r_mask)


def _grid(batch: int, heads: int):
    return lambda meta: (triton.cdiv(batch, meta["BLOCK_B"]), heads)


def _block_d(head_dim: int) -> int:
    return max(_MIN_DOT, triton.next_power_of_2(head_dim))


class LSTMScanTriton(torch.autograd.Function):
    """gates_x [B, L, 4, H, Dh], R [H, 4 Dh, Dh], bias [4, H, Dh], h0, c0 [B, H Dh]; float32,
    contiguous -> (h [B, L, H Dh], c_last [B, H Dh])."""

    @staticmethod
    def forward(ctx, gates_x, R, bias, h0, c0):  # noqa: N803
        batch, length, _, heads, head_dim = gates_x.shape
        save = any(ctx.needs_input_grad)
        h = gates_x.new_empty(batch, length, heads * head_dim)
        c_last = gates_x.new_empty(batch, heads * head_dim)
        acts = torch.empty_like(gates_x) if save else gates_x  # unused when not saving
        c_all = torch.empty_like(h) if save else h
        with triton_device_guard(gates_x):
            _lstm_fwd_kernel[_grid(batch, heads)](
                gates_x, R, bias, h0, c0, h, c_last, acts, c_all,
                batch, length, heads, head_dim, SAVE=save, BLOCK_D=_block_d(head_dim),
            )
        if save:
            ctx.save_for_backward(R, h0, c0, h, acts, c_all)
        return h, c_last

    @staticmethod
    def backward(ctx, grad_h, grad_c_last):
        R, h0, c0, h, acts, c_all = ctx.saved_tensors  # noqa: N806
        batch, length, _, heads, head_dim = acts.shape
        grad_h = torch.zeros_like(h) if grad_h is None else grad_h.float().contiguous()
        grad_c_last = (torch.zeros_like(c0) if grad_c_last is None
                       else grad_c_last.float().contiguous())
        grad_gx = torch.empty_like(acts)
        # one dR partial per batch block of the smallest block size (autotune may pick larger
        # blocks; their unused slots stay zero)
        grad_R_parts = R.new_zeros(triton.cdiv(batch, _MIN_DOT), heads, 4 * head_dim, head_dim)
        grad_h0, grad_c0 = torch.empty_like(h0), torch.empty_like(c0)
        with triton_device_guard(acts):
            _lstm_bwd_kernel[_grid(batch, heads)](
                R, h0, c0, h, acts, c_all, grad_h, grad_c_last,
                grad_gx, grad_R_parts, grad_h0, grad_c0,
                batch, length, heads, head_dim, BLOCK_D=_block_d(head_dim),
            )
        grad_bias = grad_gx.sum(dim=(0, 1))  # [4, H, Dh]
        return grad_gx, grad_R_parts.sum(0), grad_bias, grad_h0, grad_c0


def lstm_scan_triton(
    gates_x: torch.Tensor,
    R: torch.Tensor,  # noqa: N803
    bias: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Fused Triton LSTM (float32 inside); same arguments and results as `lstm_scan`."""
    batch, _, _, heads, head_dim = gates_x.shape
    if head_dim > MAX_HEAD_DIM:
        raise ValueError(
            f"the Triton LSTM keeps a head's recurrent block on-chip and supports head_dim <= "
            f"{MAX_HEAD_DIM}, got {head_dim}; use more heads or backend='torch'."
        )
    dtype = torch.float32
    if bias is None:
        bias = gates_x.new_zeros(4, heads, head_dim, dtype=dtype)
    zeros = gates_x.new_zeros(batch, heads * head_dim, dtype=dtype)
    h_all, c_last = LSTMScanTriton.apply(
        gates_x.to(dtype).contiguous(), R.to(dtype).contiguous(), bias.to(dtype).contiguous(),
        zeros if h0 is None else h0.to(dtype).contiguous(),
        zeros if c0 is None else c0.to(dtype).contiguous(),
    )
    out_dtype = gates_x.dtype
    return h_all.to(out_dtype), (h_all[:, -1].to(out_dtype), c_last.to(out_dtype))
