import ctypes
import platform

import pytest
import torch

from tsk import allocator


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo() -> _MallInfo2:
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_a_freed_tensor_of_a_few_mib_stays_in_the_heap_for_reuse():
    """Without the setting glibc maps a fresh 24 MiB block (above its adaptive threshold unless
    something larger was freed before) and unmaps it when freed; with it the block comes from
    the heap and its memory stays there, free for the next step."""
    assert allocator.keep_freed_memory()
    assert allocator.keep_freed_memory()  # once per process; again is a no-op
    size = 24 * 2**20
    mapped = _mallinfo().hblkhd
    block = torch.empty(size // 4, dtype=torch.float32)
    block.fill_(1.0)
    assert _mallinfo().hblkhd < mapped + size, "the block was mmapped, not taken from the heap"
    del block
    assert _mallinfo().fordblks >= size, "the freed block went back to the system"


def test_the_environment_can_opt_out(monkeypatch):
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setenv("TSK_KEEP_FREED_MEMORY", "0")
    assert not allocator.keep_freed_memory()
