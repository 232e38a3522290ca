"""Head-wise LSTM recurrence with precomputed input gates (FlashRNN's split: W x outside, R h inside)."""

from __future__ import annotations

from torch import Tensor

from tsk.kernels.common.dispatch import check_tensor, resolve_backend, warn_deprecated_keyword
from tsk.kernels.lstm_scan.eager import lstm_scan_torch
from tsk.kernels.lstm_scan.limits import MAX_HEAD_DIM
from tsk.kernels.lstm_scan.reference import lstm_scan_reference

__all__ = ["MAX_HEAD_DIM", "lstm_scan"]



def lstm_scan(
    gates_x: Tensor,
    R: Tensor,  # noqa: N803
    bias: Tensor | None = None,
    initial_state: tuple[Tensor, Tensor] | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
    *,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """LSTM over time with a block-diagonal (head-wise) recurrent matrix.

    Shapes: gates_x [B, L, 4, H, Dh], the input half of the four gates' pre-activations (W x_t,
    e.g. `F.linear(x, W_ih).view(B, L, 4, H, Dh)`), gate order i, f, g, o (PyTorch's, FlashRNN's
    i, f, z, o); R [H, 4 Dh, Dh], head k's rows of the recurrent weights, gate-major like
    `nn.LSTM.weight_hh` (R[k, gate * Dh + j, m] connects h[k Dh + m] to unit j of that gate in
    head k); bias [4, H, Dh] or None; initial_state (h0, c0), each [B, H Dh], or None (zeros).
    Returns (h [B, L, H Dh], final_state (h_last, c_last) [B, H Dh] when `output_final_state`,
    else None) in gates_x's dtype: the state convention of every scan op. The keywords `h0`,
    `c0` are deprecated (they imply output_final_state=True, as before).

    Plain-PyTorch equivalent::

        h, c = h0.view(B, H, Dh), c0.view(B, H, Dh)
        for t in range(L):
            rec = einsum("kom,bkm->bko", R, h).view(B, H, 4, Dh).transpose(1, 2)  # [B, 4, H, Dh]
            i, f, g, o = (gates_x[:, t] + bias + rec).unbind(1)
            c = sigmoid(f) * c + sigmoid(i) * tanh(g)
            h = sigmoid(o) * tanh(c); out[:, t] = h.reshape(B, H * Dh)

    With H = 1 this is `torch.nn.LSTM` with R = weight_hh[None], bias = (b_ih + b_hh).view(4, 1, D).
    backend: "auto" (Triton on CUDA when Dh <= 64, torch otherwise), "reference" (the loop
    above), "torch" (per-step batched matmul over heads, hand-written backward; the CPU path) or
    "triton" (fused kernels keeping R on-chip, FlashRNN-style). All are differentiable w.r.t.
    gates_x, R, bias, h0 and c0.
    """
    check_tensor("gates_x", gates_x, [None, None, 4, None, None], complex_ok=False)
    batch, length, _, heads, head_dim = gates_x.shape
    if length == 0:
        raise ValueError("gates_x has no time steps (L = 0); pass at least one step.")
    check_tensor("R", R, [heads, 4 * head_dim, head_dim], complex_ok=False)
    if bias is not None:
        check_tensor("bias", bias, [4, heads, head_dim], complex_ok=False)
    if h0 is not None or c0 is not None:
        if initial_state is not None:
            raise ValueError("pass initial_state=(h0, c0) alone, not with the deprecated h0/c0.")
        warn_deprecated_keyword("lstm_scan", "h0" if h0 is not None else "c0",
                                "pass initial_state=(h0, c0) and output_final_state=True")
        initial_state, output_final_state = (h0, c0), True
    h0, c0 = _split_state(initial_state)
    for name, state in (("initial_state[0] (h0)", h0), ("initial_state[1] (c0)", c0)):
        if state is not None:
            check_tensor(name, state, [batch, heads * head_dim], complex_ok=False)
    args = (gates_x, R, bias, h0, c0)
    chosen = resolve_backend(backend, gates_x, R)
    if chosen == "triton" and (backend == "triton" or head_dim <= MAX_HEAD_DIM):
        from tsk.kernels.lstm_scan.triton import lstm_scan_triton

        h, final_state = lstm_scan_triton(*args)
    elif chosen == "reference":
        h, final_state = lstm_scan_reference(*args)
    else:
        h, final_state = lstm_scan_torch(*args)
    return h, final_state if output_final_state else None


def _split_state(state: tuple[Tensor, Tensor] | None) -> tuple[Tensor | None, Tensor | None]:
    """(h0, c0) from `initial_state`, which must be None or a pair."""
    if state is None:
        return None, None
    if not isinstance(state, tuple | list) or len(state) != 2:
        raise TypeError(
            "initial_state must be a pair (h0, c0) of [B, H Dh] tensors (either may be None for "
            f"zeros), got {type(state).__name__}."
        )
    return state[0], state[1]
