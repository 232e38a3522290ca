"""Fast Cauchy kernel in torch: blocks of L, with a hand-written backward (any device).

For a block of T points the table r = 1 / (z - w) ([H, N, T]) is built, reduced against v with
one batched matrix product, and dropped; memory is O(H T N) instead of O(H L N). The backward
rebuilds each block's table: grad v = sum_l g conj(r), grad w = conj(v) sum_l g conj(r^2),
grad z = -g sum_n conj(v r^2) (torch's convention for holomorphic maps: conj(f') times g).
Everything runs in real arithmetic (Re and Im parts stacked along one axis), because complex
elementwise ops are several times slower than real ones on CPU, and the batched products are
written as row-block times matrix, the fast form for CPU BLAS.
"""

from __future__ import annotations

import torch

_TARGET_BLOCK_ELEMENTS = 1 << 18


def _block(heads: int, state: int, length: int) -> int:
    return max(1, min(length, _TARGET_BLOCK_ELEMENTS // max(heads * state, 1)))


def _reciprocal(z_re, z_im, w_re, w_im, out: torch.Tensor, scale: torch.Tensor, dim: int):
    """Re and Im of 1 / (z - w), written into the two halves of `out` along `dim` (in place,
    no temporaries: 1 / (z - w) = (Re(z - w) - i Im(z - w)) / |z - w|^2)."""
    re, im = out.chunk(2, dim=dim)
    torch.sub(z_re, w_re, out=re)
    torch.sub(w_im, z_im, out=im)  # -Im(z - w)
    torch.mul(re, re, out=scale).addcmul_(im, im).reciprocal_()
    re.mul_(scale)
    im.mul_(scale)
    return re, im


def _mix(v_re: torch.Tensor, v_im: torch.Tensor) -> torch.Tensor:
    """[H, 2, 2N] with rows (v_re, -v_im) and (v_im, v_re): [r_re, r_im] @ it.T = v r."""
    return torch.stack(
        [torch.cat([v_re, -v_im], dim=-1), torch.cat([v_im, v_re], dim=-1)], dim=1
    )


def _conj_sums(g2: torch.Tensor, table: torch.Tensor, state: int):
    """sum_l g conj(t) for g2 [H, 2, T] (Re, Im of g) and table [H, T, 2N] (Re, Im of t)."""
    m = torch.bmm(g2, table)  # [H, 2, 2N]
    re = m[:, 0, :state] + m[:, 1, state:]
    im = m[:, 1, :state] - m[:, 0, state:]
    return re, im


class CauchyTorch(torch.autograd.Function):
    """v, w [H, N], z [H, L] (one complex dtype) -> out [H, L]."""

    @staticmethod
    def forward(ctx, v, z, w):
        heads, state = v.shape
        length = z.shape[-1]
        block = _block(heads, state, length)
        out = torch.empty(heads, 2, length, device=v.device, dtype=v.real.dtype)
        mix = _mix(v.real, v.imag)  # [H, 2, 2N]
        w_re, w_im = w.real[:, :, None], w.imag[:, :, None]  # [H, N, 1]
        z_re, z_im = z.real.contiguous(), z.imag.contiguous()
        table_buf = out.new_empty(heads, 2 * state, block)  # [H, 2N, T]: Re and Im of r
        scale_buf = out.new_empty(heads, state, block)
        for start in range(0, length, block):
            stop = min(start + block, length)
            steps = stop - start
            table = table_buf[..., :steps]
            _reciprocal(z_re[:, None, start:stop], z_im[:, None, start:stop], w_re, w_im,
                        table, scale_buf[..., :steps], dim=1)
            torch.bmm(mix, table, out=out[:, :, start:stop])
        ctx.save_for_backward(v, z, w)
        ctx.block = block
        return torch.complex(out[:, 0], out[:, 1])

    @staticmethod
    def backward(ctx, grad_out):
        v, z, w = ctx.saved_tensors
        block = ctx.block
        heads, state = v.shape
        length = z.shape[-1]
        grad_out = grad_out.to(v.dtype)
        need_v, need_z, need_w = ctx.needs_input_grad
        real = v.real.dtype
        sum_r = [torch.zeros(heads, state, device=v.device, dtype=real) for _ in range(2)]
        sum_q = [torch.zeros(heads, state, device=v.device, dtype=real) for _ in range(2)]
        grad_z = torch.empty_like(z) if need_z else None
        mix = _mix(v.real, v.imag).transpose(1, 2)  # [H, 2N, 2]
        w_re, w_im = w.real[:, None, :], w.imag[:, None, :]  # [H, 1, N]
        z_re, z_im = z.real.contiguous(), z.imag.contiguous()
        r_buf = z_re.new_empty(heads, block, 2 * state)  # [H, T, 2N]: Re and Im of r
        q_buf = torch.empty_like(r_buf)  # Re and Im of r^2
        scale_buf = z_re.new_empty(heads, block, state)
        for start in range(0, length, block):
            stop = min(start + block, length)
            steps = stop - start
            r, q = r_buf[:, :steps], q_buf[:, :steps]
            r_re, r_im = _reciprocal(z_re[:, start:stop, None], z_im[:, start:stop, None],
                                     w_re, w_im, r, scale_buf[:, :steps], dim=2)
            gb = grad_out[:, start:stop]
            g2 = torch.stack([gb.real, gb.imag], dim=1)  # [H, 2, T]
            if need_v:
                re, im = _conj_sums(g2, r, state)
                sum_r[0] += re
                sum_r[1] += im
            q_re, q_im = q.chunk(2, dim=2)  # r^2 = (r_re^2 - r_im^2) + 2 i r_re r_im
            torch.mul(r_re, r_re, out=q_re).addcmul_(r_im, r_im, value=-1)
            torch.mul(r_re, r_im, out=q_im).mul_(2)
            if need_w:
                re, im = _conj_sums(g2, q, state)
                sum_q[0] += re
                sum_q[1] += im
            if need_z:
                vq = torch.bmm(q, mix)  # [H, T, 2]: Re, Im of sum_n v r^2
                grad_z[:, start:stop] = -gb * torch.complex(vq[..., 0], vq[..., 1]).conj()
        grad_v = torch.complex(*sum_r) if need_v else None
        grad_w = v.conj() * torch.complex(*sum_q) if need_w else None
        return grad_v, grad_z, grad_w


def cauchy_torch(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Blocked Cauchy kernel; same contract as the public `cauchy`."""
    cdtype = torch.promote_types(torch.promote_types(v.dtype, w.dtype), z.dtype)
    cdtype = torch.promote_types(cdtype, torch.complex64)
    z2 = z.to(cdtype).expand(v.shape[0], -1)  # [H, L] (a view when z is [L])
    return CauchyTorch.apply(v.to(cdtype), z2, w.to(cdtype))
