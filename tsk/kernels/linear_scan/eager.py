"""Fast linear recurrence in torch: a two-level chunked scan (any device; the CPU path).

Split time into chunks of T steps. (1) Scan every chunk from a zero state, all chunks at once:
T vectorized steps over [..., L / T, D]. (2) Cumulative products P of a inside each chunk (one
cumprod). (3) A short sequential pass over the chunks carries the state across chunk ends:
carry_{c+1} = P_end[c] carry_c + local_end[c]. (4) h = local + P * carry. Products only, no
divisions or logarithms, so any real or complex a (zeros and negative values included) is exact.
Python steps: T + L / T ~ 2 sqrt(L). The backward is itself a reverse linear scan, run by the
same routine: g_t = dLoss/dh_t + conj(a_{t+1}) g_{t+1}; grad b_t = g_t;
grad a_t = g_t conj(h_{t-1}); grad h_0 = conj(a_0) g_0.
"""

from __future__ import annotations

import math

import torch


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.float16: torch.float32, torch.bfloat16: torch.float32}.get(dtype, dtype)


def chunked_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t for a, b [M, L, D] (same dtype), h0 [M, D] or None -> h [M, L, D]."""
    batch, length, width = b.shape
    chunk = max(1, int(math.sqrt(length)))
    n_chunks = -(-length // chunk)
    pad = n_chunks * chunk - length
    if pad:  # identity steps at the end (a = 1, b = 0) do not change earlier states
        a = torch.cat([a, a.new_ones(batch, pad, width)], dim=1)
        b = torch.cat([b, b.new_zeros(batch, pad, width)], dim=1)
    a4 = a.reshape(batch, n_chunks, chunk, width)
    h = b.reshape(batch, n_chunks, chunk, width).clone()  # local scans, in place
    for i in range(1, chunk):
        h[:, :, i].addcmul_(a4[:, :, i], h[:, :, i - 1])
    prods = torch.cumprod(a4, dim=2)  # [M, nc, T, D]: a_{c,0} ... a_{c,i}
    carry = h.new_zeros(batch, n_chunks, width)  # state before each chunk
    if h0 is not None:
        carry[:, 0] = h0
    for c in range(1, n_chunks):
        torch.addcmul(h[:, c - 1, -1], prods[:, c - 1, -1], carry[:, c - 1], out=carry[:, c])
    h.addcmul_(prods, carry[:, :, None, :])
    return h.reshape(batch, n_chunks * chunk, width)[:, :length]


class LinearScanTorch(torch.autograd.Function):
    """a, b [M, L, D], h0 [M, D] or None, all one dtype -> h [M, L, D]."""

    @staticmethod
    def forward(ctx, a, b, h0):
        h = chunked_scan(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        grad_h = grad_h.to(h.dtype)
        # reverse scan g_t = grad_h_t + conj(a_{t+1}) g_{t+1}, as a forward scan on flipped time
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1).conj()
        g = chunked_scan(a_next.flip(1), grad_h.flip(1), None).flip(1)
        h_prev = torch.cat([h0[:, None] if h0 is not None else torch.zeros_like(h[:, :1]),
                            h[:, :-1]], dim=1)
        grad_a = g * h_prev.conj()
        grad_h0 = (a[:, 0].conj() * g[:, 0]) if h0 is not None else None
        return grad_a, g, grad_h0


def linear_scan_torch(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked linear scan; same arguments and results as the public `linear_scan`."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    compute = _compute_dtype(dtype)
    shape = torch.broadcast_shapes(a.shape, b.shape)
    length, width = shape[-2], shape[-1]
    a3 = a.to(compute).expand(shape).reshape(-1, length, width)
    b3 = b.to(compute).expand(shape).reshape(-1, length, width)
    h0 = None
    if initial_state is not None:
        h0 = initial_state.to(compute).expand(*shape[:-2], width).reshape(-1, width)
    h = LinearScanTorch.apply(a3, b3, h0).reshape(shape)
    final = h[..., -1, :] if output_final_state else None
    return h.to(dtype), final
