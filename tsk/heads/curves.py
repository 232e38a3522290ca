"""Space-filling curves: the orders in which a point-cloud network reads the voxels of a grid as a
sequence. Neighbours along a curve are (mostly) neighbours in space, which is what lets a 1-D
sequence model see local structure (Point Transformer V3 serializes with Z-order and Hilbert
curves; LION orders the voxels of each window x-major or y-major, `window_code`).

Every function maps integer coordinates `[N, D]` (each in `[0, 2**bits)`, D = 2 or 3) to one
int64 code per point, and is a bijection of the grid onto `[0, 2**(D * bits))`.
"""

from __future__ import annotations

import torch


def morton_code(coords: torch.Tensor, bits: int) -> torch.Tensor:
    """Z-order: the coordinates' bits interleaved, most significant first (axis 0's bit leads
    each group of D)."""
    _check(coords, bits)
    code = torch.zeros(len(coords), dtype=torch.int64, device=coords.device)
    for bit in reversed(range(bits)):
        for axis in range(coords.shape[1]):
            code = (code << 1) | ((coords[:, axis] >> bit) & 1)
    return code


def hilbert_code(coords: torch.Tensor, bits: int) -> torch.Tensor:
    """The Hilbert curve's index of each cell: consecutive codes are cells that share a face.

    Skilling's transform ("Programming the Hilbert curve", AIP Conf. Proc. 707, 2004): undo the
    rotations and reflections level by level, Gray-decode, then interleave the bits as in
    `morton_code`. Vectorized over the points: each branch of his per-point loop is a
    `torch.where`."""
    _check(coords, bits)
    axes = [coords[:, axis].to(torch.int64).clone() for axis in range(coords.shape[1])]
    dims = len(axes)
    level = 1 << (bits - 1)
    while level > 1:  # from the coarsest level down: reflect or swap the lower bits
        low = level - 1
        for i in range(dims):
            flip = (axes[i] & level) != 0
            swap = (axes[0] ^ axes[i]) & low
            axes[0] = torch.where(flip, axes[0] ^ low, axes[0] ^ swap)
            if i:
                axes[i] = torch.where(flip, axes[i], axes[i] ^ swap)
        level >>= 1
    for i in range(1, dims):  # Gray encoding
        axes[i] = axes[i] ^ axes[i - 1]
    toggle = torch.zeros_like(axes[0])
    level = 1 << (bits - 1)
    while level > 1:
        toggle = torch.where((axes[-1] & level) != 0, toggle ^ (level - 1), toggle)
        level >>= 1
    return morton_code(torch.stack([axis ^ toggle for axis in axes], dim=1), bits)


def window_code(coords: torch.Tensor, size: int, window: int, axes: tuple[int, ...],
                shift: bool = False) -> torch.Tensor:
    """LION's window order: the grid cut into windows of `window` cells per axis (moved by half a
    window when `shift`, as its every second layer is, so neighbours across a window border meet),
    windows read in the order of `axes` (the first axis slowest: (0, 1, ..) is "x-major"), and
    the cells inside each window in the same order."""
    if sorted(axes) != list(range(coords.shape[1])):
        raise ValueError(f"axes must order all {coords.shape[1]} axes, got {axes}.")
    moved = coords.to(torch.int64) + (window // 2 if shift else 0)
    windows = -(-size // window) + 1  # one more window per axis for the shift
    code = torch.zeros(len(coords), dtype=torch.int64, device=coords.device)
    for axis in axes:
        code = code * windows + moved[:, axis] // window
    for axis in axes:
        code = code * window + moved[:, axis] % window
    return code


def bits_for(size: int) -> int:
    """Bits per axis that cover `size` cells (at least one)."""
    return max(1, (size - 1).bit_length())


def _check(coords: torch.Tensor, bits: int) -> None:
    if coords.dim() != 2 or coords.shape[1] not in (2, 3):
        raise ValueError(f"coords must be [N, 2] or [N, 3] integers, got shape "
                         f"{tuple(coords.shape)}.")
    if bits < 1 or bits * coords.shape[1] > 62:
        raise ValueError(f"bits must be in [1, {62 // coords.shape[1]}] for {coords.shape[1]}-D "
                         f"coordinates (an int64 code), got {bits}.")
    if len(coords) and (int(coords.min()) < 0 or int(coords.max()) >= 1 << bits):
        raise ValueError(f"coordinates must lie in [0, {1 << bits}) for bits={bits}.")
