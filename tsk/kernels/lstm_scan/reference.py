"""Reference head-wise LSTM recurrence: a literal loop over time in fp32 (fp64 for fp64 inputs).

Tests only: every other path is checked against this one, and with one head it is checked
against `torch.nn.LSTM`.
"""

from __future__ import annotations

import torch

from tsk.kernels.common.dispatch import compute_dtype


def lstm_scan_reference(
    gates_x: torch.Tensor,
    R: torch.Tensor,  # noqa: N803
    bias: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """gates_x [B, L, 4, H, Dh], R [H, 4 Dh, Dh], bias [4, H, Dh], h0, c0 [B, H Dh].

    Returns (h [B, L, H Dh], (h_last, c_last) [B, H Dh]) in gates_x's dtype.
    """
    dtype = compute_dtype(gates_x, R, bias, h0, c0)
    batch, _, _, heads, head_dim = gates_x.shape
    R_ = R.to(dtype)  # noqa: N806
    gx = gates_x.to(dtype)
    if bias is not None:
        gx = gx + bias.to(dtype)
    h = gx.new_zeros(batch, heads, head_dim) if h0 is None else h0.to(dtype).reshape(batch, heads, -1)
    c = gx.new_zeros(batch, heads, head_dim) if c0 is None else c0.to(dtype).reshape(batch, heads, -1)
    outputs = []
    for gx_t in gx.unbind(1):  # [B, 4, H, Dh]
        # head k only reads its own slice of h: R[k] @ h_k, i.e. a block-diagonal recurrence
        recurrent = torch.einsum("kom,bkm->bko", R_, h)  # [B, H, 4 Dh]
        recurrent = recurrent.reshape(batch, heads, 4, head_dim).transpose(1, 2)  # [B, 4, H, Dh]
        pre_i, pre_f, pre_g, pre_o = (gx_t + recurrent).unbind(1)  # PyTorch's gate order
        i, f, g, o = pre_i.sigmoid(), pre_f.sigmoid(), pre_g.tanh(), pre_o.sigmoid()
        c = f * c + i * g  # [B, H, Dh]
        h = o * c.tanh()
        outputs.append(h.reshape(batch, heads * head_dim))
    out = torch.stack(outputs, dim=1).to(gates_x.dtype)  # [B, L, H Dh]
    flat = (batch, heads * head_dim)
    return out, (h.reshape(flat).to(gates_x.dtype), c.reshape(flat).to(gates_x.dtype))
