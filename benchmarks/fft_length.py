"""FFT length of the causal FFT convolution: 2L (what tsk used first) against
`tsk.kernels._dispatch.fft_size(L + Lk - 1)` (the shortest even length with a 2-3-5-7-11-smooth
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
from tsk.kernels._dispatch import fft_size

RESULTS = Path(__file__).parent / "results" / "fft_length"
ARMS = ["2L", "fft_size"]

# (what, L, Lk): SpaceTime at lookback 336 (embedding taps <= 64; decoder over 336 + H - 1 steps)
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


def conv_seconds(u: torch.Tensor, k: torch.Tensor, n_fft: int) -> float:
    """Forward + backward of the causal convolution at FFT length `n_fft`."""
    start = time.perf_counter()
    conv_at(u, k, n_fft).sum().backward()
    return time.perf_counter() - start


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


def measure(what: str, length: int, taps: int, args: argparse.Namespace) -> dict:
    u = torch.randn(args.batch_size, args.channels, length, requires_grad=True)
    k = torch.randn(args.channels, taps, requires_grad=True)
    lengths = {arm: LENGTHS[arm](length, taps) for arm in ARMS}
    best = best_of_alternating(lambda arm: conv_seconds(u, k, lengths[arm]), ARMS, args.rounds)
    return {"case": what, "L": length, "Lk": taps, "n_2L": lengths["2L"],
            "n_fft_size": lengths["fft_size"], **timings(best)}


def timings(best: dict[str, float]) -> dict:
    return {"ms_2L": round(1e3 * best["2L"], 1), "ms_fft_size": round(1e3 * best["fft_size"], 1),
            "speedup": round(best["2L"] / best["fft_size"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="e.g. what else the machine was running")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    rows = []
    for what, length, taps in CASES:
        rows.append({**measure(what, length, taps, args), **env, "note": args.note})
        print(rows[-1], flush=True)
    module = sys.modules["tsk.kernels.fftconv"]  # the package attribute is the function
    arms = {arm: lambda arm=arm: patch.object(module, "fftconv_torch", plain_fftconv(LENGTHS[arm]))
            for arm in ARMS}
    for horizon in (96, 720):
        best = best_of_alternating(spacetime_step(horizon, args.batch_size, arms), ARMS,
                                   args.rounds)
        rows.append({"case": f"SpaceTime network, H={horizon}", "L": "", "Lk": "", "n_2L": "",
                     "n_fft_size": "", **timings(best), **env, "note": args.note})
        print(rows[-1], flush=True)
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
