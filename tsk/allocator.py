"""glibc's malloc set to keep freed memory for reuse during training on Linux.

A training step frees and re-allocates tensors of the same sizes every step (FFT spectra and
activations of a few MiB each). glibc serves a block that large from fresh `mmap`ed pages until
its adaptive threshold has grown past it, and hands free memory at the top of its heap back to
the system past a trim threshold; the kernel then zero-fills every page again on first touch.
With both thresholds raised, a default fit's training steps ran 1.03-1.11x (s4d, mamba, lstm,
s4) and 1.34x (spacetime) as many windows per second on a 2-core CPU, side by side
(`benchmarks/results/profile_default_fit.md`). PyTorch's CPU tuning guide swaps in jemalloc or
tcmalloc for the same reason; `mallopt` gets the effect without a preload."""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 * 2**20
"""Blocks below this come from the heap and are reused (glibc's upper limit on 64-bit)."""

TRIM_THRESHOLD = 2**30
"""Free memory at the heap's top kept before glibc hands it back to the system."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True when they are set.

    Process-wide, and what a training process wants: memory freed by one step is reused by the
    next instead of being unmapped and faulted in again. A no-op off Linux's glibc, and when the
    environment sets `TSK_KEEP_FREED_MEMORY=0`.
    """
    global _done
    if _done:
        return True
    if os.environ.get("TSK_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
