"""Triton selective scan: chunked parallel scans in registers, one fused kernel each way.

Forward: one program per (batch row, block of channels) walks the sequence in chunks of CHUNK
steps. Per chunk it loads u, delta, z [BLOCK_D, CHUNK] and B_t, C_t [N, CHUNK] in their own
dtype (coalesced along time), applies delta_bias and softplus, builds the step maps
h -> exp(delta_t A) h + delta_t u_t B_t as a [BLOCK_D, N, CHUNK] tile and composes them with
`tl.associative_scan` (a parallel scan over the chunk, as Mamba's CUDA kernel does per thread
block), starts them from the carried state, contracts with C_t, adds D u, gates with silu(z)
and writes the output in the input dtype. Only the output and the state at each chunk start
([B, D, L / CHUNK, N], for the backward) reach memory: the [B, D, L, N] states never do.
Backward: the same programs walk the chunks in reverse. Each chunk's states are recomputed from
its saved start by the same scan; the adjoint g_t = C_t gy_t + exp(delta_{t+1} A) g_{t+1} is a
reverse `associative_scan`, with the next chunk's contribution carried in. From g and the states
come the gradients of u, delta (through softplus and the bias), z, D, A (accumulated per
program) and B, C (summed over the program's channels, then atomically over channel blocks).
decay_t h_{t-1} is recovered as h_t - delta_t u_t B_t, so no shifted state tile is needed.
A block of channels never straddles a group, so B_t and C_t are one [N, CHUNK] tile per chunk.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tsk.kernels.common.dispatch import triton_device_guard, triton_interpreting

_LOG2E = 1.4426950408889634
_MAX_CHUNK = 32  # steps per chunk (a power of two; 32 timed best on an H100 among 16-128)
_TILE_ELEMENTS = 1024  # BLOCK_N * CHUNK at most: the scan tiles must stay in registers

_BLOCKS_D = ((1, 2), (2, 4), (4, 4), (4, 8), (8, 4), (8, 8), (16, 8))  # (BLOCK_D, num_warps)


def _prune_configs(configs: list, named_args: dict, **kwargs) -> list:
    """Keep channel blocks that divide the group width (a block never straddles a group)."""
    return [c for c in configs if named_args["group_width"] % c.kwargs["BLOCK_D"] == 0]


def _autotuned(**options):
    """Autotune BLOCK_D and the warps on a GPU; under the interpreter (which cannot time
    kernels) the launch passes `_interpreter_block_d` instead."""
    def wrap(kernel):
        if triton_interpreting():
            return kernel
        configs = [triton.Config({"BLOCK_D": bd}, num_warps=w) for bd, w in _BLOCKS_D]
        return triton.autotune(configs=configs, key=["D", "N", "group_width"],
                               prune_configs_by={"early_config_prune": _prune_configs},
                               **options)(kernel)
    return wrap


def _interpreter_block_d(group_width: int) -> dict:
    """{"BLOCK_D": the largest power of two <= 4 dividing the group width} when interpreting."""
    if not triton_interpreting():
        return {}
    block = 1
    while block < 4 and group_width % (2 * block) == 0:
        block *= 2
    return {"BLOCK_D": block}


@triton.jit
def _compose(a_first, b_first, a_then, b_then):
    """Two affine maps h -> a h + b, `first` applied before `then`."""
    return a_first * a_then, b_first * a_then + b_then


@triton.jit
def _load_delta(delta_ptr, offsets, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """(pre-activation, delta) [BLOCK_D, CHUNK] in float32; delta is 0 where masked (identity)."""
    raw = tl.load(delta_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw += bias[:, None]
    if SOFTPLUS:  # torch's softplus: threshold 20
        delta = tl.where(raw > 20.0, raw,
                         tl.maximum(raw, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(raw))))
    else:
        delta = raw
    return raw, tl.where(mask, delta, 0.0)


@triton.jit
def _chunk_states(u_ptr, delta_ptr, b_rows, c_rows, row, d, k, mask_n, A2, bias, h0, c, D, L,
                  HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, CHUNK: tl.constexpr):
    """Chunk c's inputs (float32, 0 past L) and its states [BLOCK_D, BLOCK_N, CHUNK] from h0."""
    t = c * CHUNK + k
    mask_t = t < L
    mask = (d[:, None] < D) & mask_t[None, :]
    mask_nt = mask_n[:, None] & mask_t[None, :]
    offsets = row[:, None] + t[None, :]
    u = tl.load(u_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    raw, delta = _load_delta(delta_ptr, offsets, mask, bias, HAS_BIAS, SOFTPLUS)
    B_t = tl.load(b_rows[:, None] + t[None, :], mask=mask_nt, other=0.0).to(tl.float32)
    C_t = tl.load(c_rows[:, None] + t[None, :], mask=mask_nt, other=0.0).to(tl.float32)
    decay = tl.exp2(delta[:, None, :] * A2[:, :, None])  # [BLOCK_D, BLOCK_N, CHUNK]
    drive = (delta * u)[:, None, :] * B_t[None, :, :]
    a_cum, b_cum = tl.associative_scan((decay, drive), 2, _compose)
    states = a_cum * h0[:, :, None] + b_cum
    return t, mask, mask_nt, offsets, u, raw, delta, B_t, C_t, decay, drive, states


@_autotuned()
@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    init_ptr, out_ptr, starts_ptr, last_ptr,
    D, L, N, n_chunks, group_width, sb_b, sb_g, sb_n, sc_b, sc_g, sc_n,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_INIT: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # 64-bit offsets: B * D * L can pass 2**31
    d0 = tl.program_id(1) * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    k = tl.arange(0, CHUNK)
    mask_n = n < N
    mask_dn = (d[:, None] < D) & mask_n[None, :]
    group = d0 // group_width
    A2 = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634  # exp(x) = exp2(x log2 e)
    skip = tl.load(D_ptr + d).to(tl.float32) if HAS_D else None
    bias = tl.load(bias_ptr + d).to(tl.float32) if HAS_BIAS else None
    row = (b * D + d) * L  # [BLOCK_D] offsets of u / delta / z / out rows
    b_rows = B_ptr + b * sb_b + group * sb_g + n * sb_n  # [BLOCK_N]
    c_rows = C_ptr + b * sc_b + group * sc_g + n * sc_n
    state_rows = (b * D + d[:, None]) * n_chunks * N + n[None, :]
    state_off = (b * D + d[:, None]) * N + n[None, :]  # [B, D, N] initial and last states
    if HAS_INIT:
        h = tl.load(init_ptr + state_off, mask=mask_dn, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for c in range(0, n_chunks):
        tl.store(starts_ptr + state_rows + c * N, h, mask=mask_dn)
        t, mask, mask_nt, offsets, u, _, delta, B_t, C_t, _, _, states = _chunk_states(
            u_ptr, delta_ptr, b_rows, c_rows, row, d, k, mask_n, A2, bias, h, c, D, L,
            HAS_BIAS, SOFTPLUS, CHUNK)
        y = tl.sum(states * C_t[None, :, :], axis=1)  # [BLOCK_D, CHUNK]
        if HAS_D:
            y += skip[:, None] * u
        if HAS_Z:
            z = tl.load(z_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            y = y * z * tl.sigmoid(z)
        tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)
        # steps past L have delta = 0 (identity maps): the last column is the state at L - 1
        h = tl.sum(tl.where((k == CHUNK - 1)[None, None, :], states, 0.0), axis=2)
    tl.store(last_ptr + state_off, h, mask=mask_dn)


@_autotuned(reset_to_zero=["dB_ptr", "dC_ptr"])
@triton.jit
def _selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    gout_ptr, glast_ptr, starts_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dinit_ptr,
    D, L, N, n_chunks, group_width, sb_b, sb_g, sb_n, sc_b, sc_g, sc_n,
    sdb_b, sdb_g, sdc_b, sdc_g,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_INIT: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    d0 = tl.program_id(1) * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    k = tl.arange(0, CHUNK)
    mask_n = n < N
    mask_dn = (d[:, None] < D) & mask_n[None, :]
    group = d0 // group_width
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    A2 = A * 1.4426950408889634
    skip = tl.load(D_ptr + d).to(tl.float32) if HAS_D else None
    bias = tl.load(bias_ptr + d).to(tl.float32) if HAS_BIAS else None
    row = (b * D + d) * L
    b_rows = B_ptr + b * sb_b + group * sb_g + n * sb_n
    c_rows = C_ptr + b * sc_b + group * sc_g + n * sc_n
    db_rows = dB_ptr + b * sdb_b + group * sdb_g + n * L  # float32 [B, G, N, L] accumulators
    dc_rows = dC_ptr + b * sdc_b + group * sdc_g + n * L
    state_rows = (b * D + d[:, None]) * n_chunks * N + n[None, :]
    last_chunk = (k == CHUNK - 1)[None, None, :]
    # dLoss/dh carried in from after the chunk (before the last one: the last state's grad)
    state_off = (b * D + d[:, None]) * N + n[None, :]
    carry = tl.load(glast_ptr + state_off, mask=mask_dn, other=0.0)
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        # recompute the chunk's states from its saved start
        h0 = tl.load(starts_ptr + state_rows + c * N, mask=mask_dn, other=0.0)
        t, mask, mask_nt, offsets, u, raw, delta, B_t, C_t, decay, drive, states = _chunk_states(
            u_ptr, delta_ptr, b_rows, c_rows, row, d, k, mask_n, A2, bias, h0, c, D, L,
            HAS_BIAS, SOFTPLUS, CHUNK)
        gout = tl.load(gout_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        if HAS_Z:
            y = tl.sum(states * C_t[None, :, :], axis=1)
            if HAS_D:
                y += skip[:, None] * u
            z = tl.load(z_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(z)
            gy = gout * z * sig
            dz = gout * y * sig * (1.0 + z * (1.0 - sig))
            tl.store(dz_ptr + offsets, dz.to(dz_ptr.dtype.element_ty), mask=mask)
        else:
            gy = gout
        # adjoint g_t = C_t gy_t + exp(delta_{t+1} A) g_{t+1}: a reverse scan over the chunk
        t_next = t + 1
        mask_next = (d[:, None] < D) & ((t_next < L) & (k < CHUNK - 1))[None, :]
        _, delta_next = _load_delta(delta_ptr, row[:, None] + t_next[None, :], mask_next, bias,
                                    HAS_BIAS, SOFTPLUS)
        decay_next = tl.exp2(delta_next[:, None, :] * A2[:, :, None])
        inject = gy[:, None, :] * C_t[None, :, :] + tl.where(last_chunk, carry[:, :, None], 0.0)
        _, g = tl.associative_scan((decay_next, inject), 2, _compose, reverse=True)
        pre = g * (states - drive)  # g_t * exp(delta_t A) h_{t-1}
        dA_acc += tl.sum(pre * delta[:, None, :], axis=2)
        g_b = tl.sum(g * B_t[None, :, :], axis=1)  # [BLOCK_D, CHUNK]
        ddelta = tl.sum(pre * A[:, :, None], axis=1) + g_b * u
        du = g_b * delta
        if HAS_D:
            du += gy * skip[:, None]
            dD_acc += tl.sum(gy * u, axis=1)
        if SOFTPLUS:
            ddelta = ddelta * tl.where(raw > 20.0, 1.0, tl.sigmoid(raw))
        ddelta = tl.where(mask, ddelta, 0.0)
        if HAS_BIAS:
            dbias_acc += tl.sum(ddelta, axis=1)
        tl.store(du_ptr + offsets, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + offsets, ddelta.to(ddelta_ptr.dtype.element_ty), mask=mask)
        dB_t = tl.sum(g * (delta * u)[:, None, :], axis=0)  # [BLOCK_N, CHUNK]
        dC_t = tl.sum(states * gy[:, None, :], axis=0)
        tl.atomic_add(db_rows[:, None] + t[None, :], dB_t, mask=mask_nt)
        tl.atomic_add(dc_rows[:, None] + t[None, :], dC_t, mask=mask_nt)
        # what the previous chunk's last state receives: exp(delta_first A) g_first
        carry = tl.sum(tl.where((k == 0)[None, None, :], decay * g, 0.0), axis=2)
    if HAS_INIT:  # after the first chunk, the carry is dLoss/dh_{-1}
        tl.store(dinit_ptr + state_off, carry, mask=mask_dn)
    partial = (b * D + d) * N
    tl.store(dA_ptr + partial[:, None] + n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + b * D + d, dD_acc, mask=d < D)
    if HAS_BIAS:
        tl.store(dbias_ptr + b * D + d, dbias_acc, mask=d < D)


def _chunk(length: int, block_n: int) -> int:
    """Steps per chunk (chunk-start states are saved every CHUNK steps): up to _MAX_CHUNK, at
    least 16, fewer when the [BLOCK_N, CHUNK] tile would not fit in registers."""
    return max(min(16, _MAX_CHUNK), min(_MAX_CHUNK, _TILE_ELEMENTS // block_n,
                                        triton.next_power_of_2(length)))


def _grouped(bc: torch.Tensor) -> torch.Tensor:
    """[B, N, L] or [B, G, N, L] as [B, G, N, L] with time contiguous."""
    bc = bc.unsqueeze(1) if bc.dim() == 3 else bc
    return bc if bc.stride(-1) == 1 else bc.contiguous()


def _group_stride(t: torch.Tensor) -> int:
    """Stride between groups, 0 for a tensor shared by all groups."""
    return t.stride(1) if t.shape[1] > 1 else 0


class SelectiveScanTriton(torch.autograd.Function):
    """u, delta, z [B, D, L]; A [D, N]; B, C [B, N, L] or [B, G, N, L]; D, delta_bias [D]."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, h0):  # noqa: N803
        u, delta, A = u.contiguous(), delta.contiguous(), A.contiguous()
        h0_dtype = h0.dtype if h0 is not None else None
        h0 = h0.float().contiguous() if h0 is not None else None
        z = z.contiguous() if z is not None else None
        B4, C4 = _grouped(B), _grouped(C)  # noqa: N806
        batch, channels, length = u.shape
        state = A.shape[1]
        groups = max(B4.shape[1], C4.shape[1])
        block_n = triton.next_power_of_2(state)
        chunk = _chunk(length, block_n)
        n_chunks = triton.cdiv(length, chunk)
        out = torch.empty_like(u)
        starts = u.new_empty((batch, channels, n_chunks, state), dtype=torch.float32)
        last = u.new_empty((batch, channels, state), dtype=torch.float32)
        with triton_device_guard(u):
            _selective_scan_fwd_kernel[lambda meta: (batch, channels // meta["BLOCK_D"])](
                u, delta, A, B4, C4, D if D is not None else u, z if z is not None else u,
                delta_bias if delta_bias is not None else u,
                h0 if h0 is not None else last, out, starts, last,
                channels, length, state, n_chunks, channels // groups,
                B4.stride(0), _group_stride(B4), B4.stride(2),
                C4.stride(0), _group_stride(C4), C4.stride(2),
                HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                SOFTPLUS=softplus, HAS_INIT=h0 is not None, CHUNK=chunk, BLOCK_N=block_n,
                **_interpreter_block_d(channels // groups),
            )
        ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, starts)
        ctx.shapes = (B.dim(), C.dim(), groups, chunk, n_chunks, softplus)
        ctx.h0_dtype = h0_dtype
        return out, last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B4, C4, D, z, delta_bias, starts = ctx.saved_tensors  # noqa: N806
        b_dim, c_dim, groups, chunk, n_chunks, softplus = ctx.shapes
        batch, channels, length = u.shape
        state = A.shape[1]
        if grad_last is None:
            grad_last = u.new_zeros((batch, channels, state), dtype=torch.float32)
        f32 = dict(device=u.device, dtype=torch.float32)
        grad_u, grad_delta = torch.empty_like(u), torch.empty_like(delta)
        grad_z = torch.empty_like(z) if z is not None else None
        grad_B = torch.zeros(B4.shape, **f32)  # noqa: N806
        grad_C = torch.zeros(C4.shape, **f32)  # noqa: N806
        grad_A = torch.empty(batch, channels, state, **f32)  # noqa: N806
        grad_D = torch.empty(batch, channels, **f32) if D is not None else None  # noqa: N806
        grad_bias = torch.empty(batch, channels, **f32) if delta_bias is not None else None
        grad_h0 = torch.empty(batch, channels, state, **f32) if ctx.h0_dtype is not None else None
        with triton_device_guard(u):
            _selective_scan_bwd_kernel[lambda meta: (batch, channels // meta["BLOCK_D"])](
                u, delta, A, B4, C4, D if D is not None else u, z if z is not None else u,
                delta_bias if delta_bias is not None else u,
                grad_out.contiguous(), grad_last.float().contiguous(), starts,
                grad_u, grad_delta, grad_z if z is not None else u, grad_A, grad_B, grad_C,
                grad_D if D is not None else grad_A, grad_bias if grad_bias is not None else grad_A,
                grad_h0 if grad_h0 is not None else grad_A,
                channels, length, state, n_chunks, channels // groups,
                B4.stride(0), _group_stride(B4), B4.stride(2),
                C4.stride(0), _group_stride(C4), C4.stride(2),
                grad_B.stride(0), _group_stride(grad_B), grad_C.stride(0), _group_stride(grad_C),
                HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                SOFTPLUS=softplus, HAS_INIT=grad_h0 is not None, CHUNK=chunk,
                BLOCK_N=triton.next_power_of_2(state),
                **_interpreter_block_d(channels // groups),
            )
        grad_B = grad_B.to(B4.dtype)  # noqa: N806
        grad_C = grad_C.to(C4.dtype)  # noqa: N806
        return (
            grad_u, grad_delta, grad_A.sum(0).to(A.dtype),
            grad_B.squeeze(1) if b_dim == 3 else grad_B,
            grad_C.squeeze(1) if c_dim == 3 else grad_C,
            grad_D.sum(0).to(D.dtype) if D is not None else None,
            grad_z,
            grad_bias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
            None,
            grad_h0.to(ctx.h0_dtype) if grad_h0 is not None else None,
        )


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
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton selective scan (float32 inside, inputs read and outputs written in their own
    dtype): (y, last state), as `selective_scan_reference`."""
    return SelectiveScanTriton.apply(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state
    )
