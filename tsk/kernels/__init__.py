"""Sequence operators, each with a `reference`, a fast PyTorch (`eager`, backend "torch") and a
`triton` path; `common` holds what they share.

`backend="auto"` picks Triton for CUDA tensors and the fast torch path otherwise.
"""

from tsk.kernels.cauchy import cauchy
from tsk.kernels.companion_kernel import companion_kernel
from tsk.kernels.fftconv import fftconv
from tsk.kernels.linear_scan import linear_scan
from tsk.kernels.lstm_scan import lstm_scan
from tsk.kernels.s4d_kernel import s4d_kernel
from tsk.kernels.scan2d import scan2d
from tsk.kernels.selective_scan import selective_scan

__all__ = [
    "cauchy", "companion_kernel", "fftconv", "linear_scan", "lstm_scan", "s4d_kernel", "scan2d",
    "selective_scan",
]
