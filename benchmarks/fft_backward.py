"""Backward of the FFT convolution: autograd through torch.fft against the written-out backward
of `tsk.kernels.common.polynomial.poly_mul` (the torch path of `fftconv` and SpaceTime's series
products).

Both arms run at the same FFT length (`fft_size(L + Lk - 1)`) and give the same numbers; they
differ only in how the gradient is computed. Per convolution on the shapes of fft_length.py,
then the whole SpaceTime forecasting network (forward with its lag losses, backward) with every
series product of one kind. The arms alternate within each round so that they share the
machine's load; times are the best over rounds and the ratio is the result. Written to
benchmarks/results/fft_backward.{csv,md}.

    uv run python benchmarks/fft_backward.py --threads 1
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path
from unittest.mock import patch

import torch
from fft_length import arguments, compare, conv_at
from kernels import write_table

import tsk.kernels.common.polynomial as polynomial
from tsk.kernels.common.dispatch import fft_size

RESULTS = Path(__file__).parent / "results" / "fft_backward"
ARMS = ["autograd", "written"]


class AutogradProduct:
    """Stands in for `polynomial._TruncatedProduct`: the same product, differentiated by
    autograd through torch.fft."""

    @staticmethod
    def apply(f: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
        return conv_at(f, g, fft_size(f.shape[-1] + g.shape[-1] - 1), n)


NETWORK_ARMS = {"autograd": lambda: patch.object(polynomial, "_TruncatedProduct", AutogradProduct),
                "written": nullcontext}


def backward_seconds(arm: str, u: torch.Tensor, k: torch.Tensor) -> float:
    """Forward + backward of the causal convolution (first L outputs) in the arm's way."""
    with NETWORK_ARMS[arm]():
        start = time.perf_counter()
        polynomial.poly_mul(u, k, u.shape[-1]).sum().backward()
        return time.perf_counter() - start


def main() -> int:
    args = arguments(__doc__.splitlines()[0])
    rows = compare(args, ARMS, backward_seconds, NETWORK_ARMS,
                   lambda length, taps: {"n_fft": fft_size(length + taps - 1)})
    env = rows[0]
    write_table(RESULTS, rows, [
        "# FFT convolution backward: autograd through torch.fft against the written-out one\n",
        f"{env['machine']}, {args.threads} threads, torch {env['torch']}, {env['date']}. "
        f"Best of {args.rounds} alternating rounds; forward + backward of u [{args.batch_size}, "
        f"{args.channels}, L] with k [{args.channels}, Lk] in float32 at FFT length n; the "
        f"network rows: a batch of {args.batch_size} windows, lookback 336, 7 channels in and "
        f"out, the defaults (d_model 128). {args.note}\n",
        "| case | L | Lk | n | ms autograd | ms written | speed-up |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['case']} | {r['L']} | {r['Lk']} | {r['n_fft']} | {r['ms_autograd']} | "
          f"{r['ms_written']} | {r['speedup']}x |" for r in rows),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
