"""Backend choice, input checks and FFT sizes shared by every kernel op.

Each op exposes `backend="auto" | "reference" | "torch" | "triton"`. `auto` picks the Triton path
when the tensors live on a CUDA device and a tested Triton (`TRITON_TESTED`) is installed, and
the fast torch path otherwise.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import warnings
from collections.abc import Sequence

import torch
from scipy.fft import next_fast_len

from tsk._names import unknown_name_error

BACKENDS = ("auto", "reference", "torch", "triton")


TRITON_TESTED = (3, 6)
"""The oldest Triton the fused kernels are tested with. Older ones (torch 2.4 brings 3.0, whose
interpreter rejects the kernels' block bounds) get the torch path under "auto"."""


@functools.cache
def triton_version() -> tuple[int, int] | None:
    """The installed Triton's (major, minor), or None when it is not installed (read from the
    package metadata: triton is not imported here)."""
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        major, minor = importlib.metadata.version("triton").split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def triton_available() -> bool:
    """True when a Triton the fused kernels are tested with is installed (`TRITON_TESTED`)."""
    version = triton_version()
    return version is not None and version >= TRITON_TESTED


def triton_interpreting() -> bool:
    """True when `TRITON_INTERPRET=1`: Triton kernels then run on the CPU, slowly."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def resolve_backend(backend: str, *tensors: torch.Tensor | None) -> str:
    """Turn `backend` into one of "reference", "torch", "triton".

    "auto" gives "triton" when any given tensor is on CUDA and triton is installed, else "torch".
    Asking for "triton" on CPU tensors is only allowed under `TRITON_INTERPRET=1`.
    """
    if backend not in BACKENDS:
        raise unknown_name_error("kernel backend", backend, BACKENDS)
    on_cuda = any(t is not None and t.is_cuda for t in tensors)
    if backend == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if backend == "triton":
        if not triton_available():
            found = triton_version()
            have = "is not installed" if found is None else f"is {found[0]}.{found[1]}"
            raise RuntimeError(
                f"backend='triton' was asked for but triton {have}; the fused kernels are tested "
                f"with triton >= {TRITON_TESTED[0]}.{TRITON_TESTED[1]} (torch >= 2.10 brings it). "
                "Upgrade, or use backend='torch'."
            )
        if not on_cuda and not triton_interpreting():
            raise ValueError(
                "backend='triton' needs CUDA tensors (got CPU tensors). Move the inputs to a GPU, "
                "use backend='torch', or set TRITON_INTERPRET=1 before importing triton to run "
                "the kernels in the (slow) interpreter."
            )
    return backend


def warn_deprecated_keyword(op: str, keyword: str, instead: str) -> None:
    """A DeprecationWarning, pointed at the op's caller, for a keyword kept one more release."""
    warnings.warn(
        f"{op}({keyword}=...) is deprecated and will be removed in the next release: {instead}.",
        DeprecationWarning,
        stacklevel=3,
    )


def check_tensor(
    name: str,
    tensor: torch.Tensor,
    shape: Sequence[int | None],
    *,
    complex_ok: bool = True,
    real_ok: bool = True,
) -> None:
    """Raise a ValueError/TypeError unless `tensor` has `shape` (None entries match any size)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    if tensor.dim() != len(shape) or any(
        want is not None and got != want for got, want in zip(tensor.shape, shape, strict=True)
    ):
        want_str = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(
            f"{name} must have shape {want_str}, got {list(tensor.shape)}. "
            "See the op's docstring for the expected layout."
        )
    if tensor.is_complex() and not complex_ok:
        raise TypeError(f"{name} must be a real tensor, got dtype {tensor.dtype}.")
    if not tensor.is_complex() and not real_ok:
        raise TypeError(
            f"{name} must be a complex tensor, got dtype {tensor.dtype}; "
            "build it with torch.complex(real, imag)."
        )
    if not (tensor.is_floating_point() or tensor.is_complex()):
        raise TypeError(f"{name} must be a floating point tensor, got dtype {tensor.dtype}.")


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 if any input is float64/complex128, else float32 (half inputs compute in fp32)."""
    for t in tensors:
        if t is not None and t.dtype in (torch.float64, torch.complex128):
            return torch.float64
    return torch.float32


def fft_size(n: int) -> int:
    """The smallest fast real-FFT length >= n: even, with odd part 2-3-5-7-11-smooth.

    A length with a large prime factor (2 x 431 in SpaceTime's decoder) makes the FFT fall back
    to Bluestein's algorithm, ~2x slower; odd lengths are slower for real FFTs too. Measured on
    CPU (MKL) against 2L, scipy's 2-3-5-smooth `real=True` length and powers of two.
    """
    return 2 * next_fast_len(-(-n // 2), real=False)


def complex_dtype(real_dtype: torch.dtype) -> torch.dtype:
    """The complex dtype matching a real one (float32 -> complex64, float64 -> complex128)."""
    return torch.complex128 if real_dtype == torch.float64 else torch.complex64


def triton_device_guard(tensor: torch.Tensor):
    """`torch.cuda.device(...)` for CUDA tensors, a no-op context for CPU (interpreter) tensors."""
    import contextlib

    if tensor.is_cuda:
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()
