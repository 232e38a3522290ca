"""Mamba's selective state-space scan (S6), with input-dependent delta, B and C."""

from __future__ import annotations

from torch import Tensor

from tsk.kernels.common.dispatch import check_tensor, resolve_backend, warn_deprecated_keyword
from tsk.kernels.selective_scan.eager import selective_scan_torch
from tsk.kernels.selective_scan.reference import selective_scan_reference

__all__ = ["selective_scan"]


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,  # noqa: N803
    B: Tensor,  # noqa: N803
    C: Tensor,  # noqa: N803
    D: Tensor | None = None,  # noqa: N803
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
    *,
    return_last_state: bool | None = None,
) -> tuple[Tensor, Tensor | None] | Tensor:
    """Selective scan, with the semantics of mamba_ssm's `selective_scan_ref`.

    Shapes: u, delta [B, D, L]; A [D, N] real; B, C [B, N, L], or grouped [B, G, N, L] with D
    divisible by G (channel d reads group d // (D / G)); D [D]; z [B, D, L]; delta_bias [D];
    initial_state [B, D, N] (h_{-1}; zeros when None). Returns (y [B, D, L] in u's dtype,
    final_state [B, D, N] in float32 (float64 for float64 inputs) when `output_final_state`,
    else None): the convention of every scan op (and of flash-linear-attention), so a long
    sequence can be scanned in pieces, each starting from the last one's final state.
    `return_last_state` is deprecated: it returns y alone, or (y, last) when True, as before.

    Plain-PyTorch equivalent (B, C ungrouped)::

        if delta_bias is not None: delta = delta + delta_bias[:, None]
        if delta_softplus: delta = F.softplus(delta)
        h = initial_state if initial_state is not None else zeros(B, D, N)
        for t in range(L):
            h = exp(delta[..., t, None] * A) * h + (delta[..., t] * u[..., t])[..., None] * B[:, None, :, t]
            y[..., t] = (h * C[:, None, :, t]).sum(-1)
        if D is not None: y = y + D[:, None] * u
        if z is not None: y = y * F.silu(z)

    backend: "auto" (Triton on CUDA, torch otherwise), "reference" (the loop above), "torch"
    (chunked time-major scan with a hand-written reverse-scan backward; the CPU path) or
    "triton" (state kept on-chip, fused forward and backward kernels). All are differentiable
    w.r.t. every tensor argument, initial_state included.
    """  # noqa: E501
    check_tensor("u", u, [None, None, None], complex_ok=False)
    batch, channels, length = u.shape
    check_tensor("delta", delta, [batch, channels, length], complex_ok=False)
    check_tensor("A", A, [channels, None], complex_ok=False)
    state = A.shape[1]
    groups = []
    for name, bc in (("B", B), ("C", C)):
        if not isinstance(bc, Tensor) or bc.dim() not in (3, 4):
            got = list(bc.shape) if isinstance(bc, Tensor) else type(bc).__name__
            raise ValueError(f"{name} must have shape [B, N, L] or [B, G, N, L], got {got}.")
        shape = [batch, state, length] if bc.dim() == 3 else [batch, None, state, length]
        check_tensor(name, bc, shape, complex_ok=False)
        group_count = 1 if bc.dim() == 3 else bc.shape[1]
        if channels % group_count:
            raise ValueError(
                f"{name} has {group_count} groups, which does not divide the {channels} channels."
            )
        groups.append(group_count)
    if min(groups) != 1 and groups[0] != groups[1]:
        raise ValueError(f"B and C must have the same number of groups, got {groups}.")
    for name, vec in (("D", D), ("delta_bias", delta_bias)):
        if vec is not None:
            check_tensor(name, vec, [channels], complex_ok=False)
    if z is not None:
        check_tensor("z", z, [batch, channels, length], complex_ok=False)
    if initial_state is not None:
        check_tensor("initial_state", initial_state, [batch, channels, state], complex_ok=False)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    chosen = resolve_backend(backend, u, delta, A, B, C, initial_state)
    if chosen == "reference":
        y, final_state = selective_scan_reference(*args)
    elif chosen == "triton":
        from tsk.kernels.selective_scan.triton import selective_scan_triton

        y, final_state = selective_scan_triton(*args)
    else:
        y, final_state = selective_scan_torch(*args)
    if return_last_state is not None:
        warn_deprecated_keyword(
            "selective_scan", "return_last_state",
            "pass output_final_state=True and unpack (y, final_state)",
        )
        return (y, final_state) if return_last_state else y
    return y, final_state if output_final_state else None
