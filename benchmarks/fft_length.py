"""FFT length of the causal FFT convolution: 2L (what tsk used first) against
`tsk.kernels.common.dispatch.fft_size(L + Lk - 1)` (the shortest even length with a 2-3-5-7-11-smooth
odd part that still gives the linear convolution).

Both arms run the same plain torch.fft convolution, forward and backward, on the shapes tsk's
models use (SpaceTime's embedding, encoder and closed-loop decoder at lookback 336, S4's long
kernels); only the length differs. Then the whole SpaceTime forecasting network (forward with
its lag losses, backward; 7 channels in and out as on ETT) with `fftconv` at either length.
Both arms differentiate through torch.fft by autograd, as `fftconv` did when this was measured
(its backward is now written out: fft_backward.py). The arms alternate within each round so
that they share the machine's load; times are the best over rounds and the ratio is the result.
Written to benchmarks/results/fft_length.{csv,md}.

    uv run python benchmarks/fft_length.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from unittest.mock import patch

import torch
from kernels import best_of_alternating, environment, write_table

import tsk.kernels.fftconv  # noqa: F401  (the submodule, patched below)
from tsk.backbones.spacetime import SpaceTime, SpaceTimeConfig
from tsk.heads.spacetime import SpaceTimeForecastNet
from tsk.kernels.common.dispatch import fft_size

RESULTS = Path(__file__).parent / "results" / "fft_length"
ARMS = ["2L", "fft_size"]

# (what, L, Lk): SpaceTime at lookback 336 (embedding taps <= 64; the decoder rows are the
# convolutions over 336 + H - 1 steps of its earlier power-series form, see closed_loop.py)
CASES = [
    ("SpaceTime embedding", 336, 64),
    ("SpaceTime encoder", 336, 336),
    ("SpaceTime decoder, H=96", 431, 431),
    ("SpaceTime decoder, H=192", 527, 527),
    ("SpaceTime decoder, H=720", 1055, 1055),
    ("S4 kernel, L=1000", 1000, 1000),
]


def conv_at(u: torch.Tensor, k: torch.Tensor, n_fft: int, n: int | None = None) -> torch.Tensor:
    """The first `n` (default: L) coefficients of `u * k` through rffts of length `n_fft`,
    differentiated by autograd through torch.fft."""
    y = torch.fft.irfft(torch.fft.rfft(u, n=n_fft) * torch.fft.rfft(k, n=n_fft), n=n_fft)
    return y[..., : u.shape[-1] if n is None else n]


LENGTHS: dict[str, Callable[[int, int], int]] = {
    "2L": lambda length, taps: 2 * length,
    "fft_size": lambda length, taps: fft_size(length + taps - 1),
}


def plain_fftconv(n_fft: Callable[[int, int], int]) -> Callable[..., torch.Tensor]:
    """`fftconv`'s torch path differentiated by autograd through torch.fft (as it was before
    its backward was written out), at the FFT length `n_fft(L, Lk)`."""

    def conv(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None = None,  # noqa: N803
             gate: torch.Tensor | None = None) -> torch.Tensor:
        y = conv_at(u, k, n_fft(u.shape[-1], k.shape[-1]))
        y = y if D is None else y + D[:, None] * u
        return y if gate is None else y * gate

    return conv


def spacetime_step(horizon: int, batch_size: int,
                   arms: dict[str, Callable[[], AbstractContextManager]]) -> Callable[[str], float]:
    """Seconds of one forward + backward of SpaceTime's network, inside the arm's context (which
    swaps the convolution under test in)."""
    torch.manual_seed(0)
    net = SpaceTimeForecastNet(SpaceTime(SpaceTimeConfig()), 336, horizon, 7, 7)
    x, y = torch.randn(batch_size, 336, 7), torch.randn(batch_size, horizon, 7)

    def seconds(arm: str) -> float:
        with arms[arm]():
            start = time.perf_counter()
            loss = torch.nn.functional.mse_loss(net(x), y) + net.auxiliary_loss
            loss.backward()
            return time.perf_counter() - start

    return seconds


def length_seconds(arm: str, u: torch.Tensor, k: torch.Tensor) -> float:
    """Forward + backward of the causal convolution at the arm's FFT length."""
    start = time.perf_counter()
    conv_at(u, k, LENGTHS[arm](u.shape[-1], k.shape[-1])).sum().backward()
    return time.perf_counter() - start


def arguments(description: str) -> argparse.Namespace:
    """The shared command line (and the thread count set)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="e.g. what else the machine was running")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def compare(args: argparse.Namespace, arms: list[str],
            conv_seconds: Callable[[str, torch.Tensor, torch.Tensor], float],
            network_arms: dict[str, Callable[[], AbstractContextManager]],
            columns: Callable[[int, int], dict]) -> list[dict]:
    """Two arms, alternating: each of `CASES` (u [batch, channels, L], k [channels, Lk]; the
    case's own `columns`), then SpaceTime's network at horizons 96 and 720. Speed-up: the first
    arm's best time over the second's."""
    env = environment(args.threads)

    def row(case: dict, best: dict[str, float]) -> dict:
        times = {f"ms_{arm}": round(1e3 * best[arm], 1) for arm in arms}
        speedup = round(best[arms[0]] / best[arms[1]], 2)
        print(case | times, f"{speedup}x", flush=True)
        return {**case, **times, "speedup": speedup, **env, "note": args.note}

    rows = []
    for what, length, taps in CASES:
        u = torch.randn(args.batch_size, args.channels, length, requires_grad=True)
        k = torch.randn(args.channels, taps, requires_grad=True)
        best = best_of_alternating(lambda arm, u=u, k=k: conv_seconds(arm, u, k), arms,
                                   args.rounds)
        rows.append(row({"case": what, "L": length, "Lk": taps, **columns(length, taps)}, best))
    for horizon in (96, 720):
        step = spacetime_step(horizon, args.batch_size, network_arms)
        blank = dict.fromkeys(["L", "Lk", *columns(1, 1)], "")
        rows.append(row({"case": f"SpaceTime network, H={horizon}", **blank},
                        best_of_alternating(step, arms, args.rounds)))
    return rows


def main() -> int:
    args = arguments(__doc__.splitlines()[0])
    module = sys.modules["tsk.kernels.fftconv"]  # the package attribute is the function
    network_arms = {arm: lambda arm=arm: patch.object(module, "fftconv_torch",
                                                      plain_fftconv(LENGTHS[arm])) for arm in ARMS}
    rows = compare(args, ARMS, length_seconds, network_arms,
                   lambda length, taps: {f"n_{arm}": LENGTHS[arm](length, taps) for arm in ARMS})
    env = rows[0]
    write_table(RESULTS, rows, [
        "# FFT convolution: length 2L against `fft_size(L + Lk - 1)`\n",
        f"{env['machine']}, {args.threads} threads, torch {env['torch']}, {env['date']}. "
        f"Best of {args.rounds} alternating rounds; forward + backward of u [{args.batch_size}, "
        f"{args.channels}, L] with k [{args.channels}, Lk] in float32; the network rows: a batch of "
        f"{args.batch_size} windows, lookback 336, the defaults (d_model 128). {args.note}\n",
        "| case | L | Lk | n: 2L / fft_size | ms at 2L | ms at fft_size | speed-up |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['case']} | {r['L']} | {r['Lk']} | {r['n_2L']} / {r['n_fft_size']} | "
          f"{r['ms_2L']} | {r['ms_fft_size']} | {r['speedup']}x |" for r in rows),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
