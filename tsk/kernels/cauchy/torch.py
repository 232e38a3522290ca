"""Fast Cauchy kernel in torch: blocks of L, with a hand-written backward (any device).

For a block of T points the [H, T, N] table r = 1 / (z - w) is built, reduced with a batched
mat-vec against v, and dropped; memory is O(H T N) instead of O(H L N). The backward rebuilds
each block's table: grad v = sum_l g conj(r), grad w = conj(v) sum_l g conj(r^2),
grad z = -g sum_n conj(v r^2) (torch's convention for holomorphic maps: conj(f') times g).
"""

from __future__ import annotations

import torch

_TARGET_BLOCK_ELEMENTS = 1 << 18


def _block(heads: int, state: int, length: int) -> int:
    return max(1, min(length, _TARGET_BLOCK_ELEMENTS // max(heads * state, 1)))


class CauchyTorch(torch.autograd.Function):
    """v, w [H, N], z [H, L] (one complex dtype) -> out [H, L]."""

    @staticmethod
    def forward(ctx, v, z, w):
        heads, state = v.shape
        length = z.shape[-1]
        block = _block(heads, state, length)
        out = z.new_empty(heads, length)
        for start in range(0, length, block):
            stop = min(start + block, length)
            r = torch.reciprocal(z[:, start:stop, None] - w[:, None, :])  # [H, T, N]
            out[:, start:stop] = torch.bmm(r, v[:, :, None])[..., 0]
        ctx.save_for_backward(v, z, w)
        ctx.block = block
        return out

    @staticmethod
    def backward(ctx, grad_out):
        v, z, w = ctx.saved_tensors
        block = ctx.block
        length = z.shape[-1]
        grad_out = grad_out.to(v.dtype)
        need_v, need_z, need_w = ctx.needs_input_grad
        sum_r = torch.zeros_like(v)  # sum_l g conj(r)
        sum_r2 = torch.zeros_like(v)  # sum_l g conj(r^2)
        grad_z = torch.empty_like(z) if need_z else None
        v_conj = v.conj().resolve_conj()
        for start in range(0, length, block):
            stop = min(start + block, length)
            r_conj = torch.reciprocal(z[:, start:stop, None] - w[:, None, :]).conj()  # [H,T,N]
            g = grad_out[:, start:stop, None]  # [H, T, 1]
            if need_v:
                sum_r += torch.bmm(r_conj.transpose(1, 2), g)[..., 0]
            r2_conj = r_conj * r_conj
            if need_w:
                sum_r2 += torch.bmm(r2_conj.transpose(1, 2), g)[..., 0]
            if need_z:
                grad_z[:, start:stop] = -g[..., 0] * torch.bmm(r2_conj, v_conj[:, :, None])[..., 0]
        grad_v = sum_r if need_v else None
        grad_w = v_conj * sum_r2 if need_w else None
        return grad_v, grad_z, grad_w


def cauchy_torch(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Blocked Cauchy kernel; same contract as the public `cauchy`."""
    cdtype = torch.promote_types(torch.promote_types(v.dtype, w.dtype), z.dtype)
    cdtype = torch.promote_types(cdtype, torch.complex64)
    z2 = z.to(cdtype).expand(v.shape[0], -1)  # [H, L] (a view when z is [L])
    return CauchyTorch.apply(v.to(cdtype), z2, w.to(cdtype))
