"""S4's kernel, forward + backward: C~ rebuilt from C on every call (before) against C~ learned
for the stored length (now, the paper's Algorithm 1).

The old arm is the computation S4Kernel did before C~ became the parameter: the dense bilinear
system (`dense_discrete`, one N x N solve per SSM), C~ = C (I - dA^L) by repeated squaring
(`_row_times_power`), then the Cauchy/Woodbury kernel; the new arm is `S4Kernel(length)` at its
stored length, the Cauchy/Woodbury kernel alone. Both arms hold the same system (the new one's C~
is the old one's C converted) and their kernels are checked to agree. The arms alternate within
each repeat so that they share the machine's load; times are medians over the repeats. Written
to benchmarks/results/s4_kernel_speed.{csv,md}.

    uv run python benchmarks/s4_kernel_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from kernels import environment, write_table

from tsk.backbones.s4 import S4Kernel, _row_times_power, dplr_kernel

RESULTS = Path(__file__).parent / "results" / "s4_kernel_speed"
CASES = [(64, 64, 42), (64, 64, 336)]  # (N, H, L): the defaults at lookbacks 42 and 336
ARMS = ["old", "new"]


def old_kernel(kernel: S4Kernel, length: int) -> torch.Tensor:
    """The kernel as computed before C~ was learned: `kernel` holds the plain C (length 0)."""
    dt, Lambda, P, B, _ = kernel.parameters_complex()
    dA, _, C = kernel.dense_discrete()  # length 0: no solve for C, the old dense_discrete
    C_tilde = (C - _row_times_power(C, dA, length))[..., : Lambda.shape[-1]]
    return dplr_kernel(dt, Lambda, P, B, C_tilde, length)


def seconds(kernel: S4Kernel, compute, length: int, weight: torch.Tensor) -> float:
    """Forward + backward of a fixed linear read-out of the kernel."""
    kernel.zero_grad(set_to_none=True)
    start = time.perf_counter()
    (compute(kernel, length) * weight).sum().backward()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="e.g. what else the machine was running")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    rows = []
    for d_state, d_model, length in CASES:
        torch.manual_seed(0)
        old = S4Kernel(d_model, d_state, 1e-3, 1e-1, 1, lr=None)  # length 0: C is plain C
        torch.manual_seed(0)
        new = S4Kernel(d_model, d_state, 1e-3, 1e-1, 1, lr=None, length=length)
        arms = {"old": (old, old_kernel), "new": (new, S4Kernel.__call__)}
        weight = torch.randn(1, d_model, length)
        with torch.no_grad():
            reference = old_kernel(old, length)
            difference = (new(length) - reference).abs().max() / reference.abs().max()
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for repeat in range(args.repeats + 1):  # the first repeat warms up and is not counted
            for arm in ARMS:
                elapsed = seconds(*arms[arm], length, weight)
                if repeat:
                    times[arm].append(elapsed)
        median = {arm: statistics.median(times[arm]) for arm in ARMS}
        row = {"N": d_state, "H": d_model, "L": length,
               **{f"ms_{arm}": round(1e3 * median[arm], 2) for arm in ARMS},
               "speedup": round(median["old"] / median["new"], 2),
               "relative_difference": f"{difference.item():.1e}", **env, "note": args.note}
        print(row, flush=True)
        rows.append(row)
    write_table(RESULTS, rows, [
        "# S4 kernel, forward + backward: C~ rebuilt from C each call (old) against learned (new)\n",
        f"{env['machine']}, {args.threads} threads, torch {env['torch']}, {env['date']}. Median "
        f"of {args.repeats} alternating repeats; float32, one output channel; difference: the "
        f"largest of |K_new - K_old| over the largest |K_old|. {args.note}\n",
        "| N | H | L | ms old | ms new | speed-up | difference |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['N']} | {r['H']} | {r['L']} | {r['ms_old']} | {r['ms_new']} | {r['speedup']}x | "
          f"{r['relative_difference']} |" for r in rows),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
