"""SpaceTime's closed-loop decoder: the forecast read from the lookback's last state (tsk's
`ClosedLoopSSM`) against the power-series division over lookback + horizon that it replaced.

The earlier algorithm convolves the whole lookback with kernels of length `T + H - 1` twice (the
next-input predictions, then the outputs over the lookback extended by the future inputs from a
power-series division), so its cost grows with the horizon at full batch size. The last-state
readout summarizes the lookback in its final state (one matrix product), maps it to the horizon
through batch-free kernels (another), and convolves over the lookback only for the lag losses,
only while training. Both arms compute the same numbers (the table gives their largest relative
difference, float32). Per decoder (u [batch, channels, 336]): a training step (forward with the
lookback outputs, backward) and a prediction (forward, no gradients); then the whole forecasting
network's training step. The arms alternate within each round so that they share the machine's
load; times are the best over rounds and the ratio is the result. Written to
benchmarks/results/closed_loop.{csv,md}.

    uv run python benchmarks/closed_loop.py --threads 1
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from unittest.mock import patch

import torch
from fft_length import arguments, spacetime_step
from kernels import best_of_alternating, environment, write_table

from tsk.backbones.spacetime import ClosedLoopSSM
from tsk.kernels import companion_kernel, fftconv
from tsk.kernels.common.polynomial import poly_mul, series_inverse

RESULTS = Path(__file__).parent / "results" / "closed_loop"
ARMS = ["series division", "last state"]
LOOKBACK = 336
HORIZONS = (96, 192, 336, 720)


def series_division(decoder: ClosedLoopSSM, u: torch.Tensor, horizon: int,
                    lookback_outputs: bool = True) -> tuple[torch.Tensor, ...]:
    """The earlier algorithm (same outputs as `ClosedLoopSSM.forward`): the future inputs obey
    `f = g / (1 - z K^k(z))` with g the known inputs' contribution, and the forecast is the
    open-loop convolution of `[u, f]`, all over `T + H - 1` steps; it always computes the
    lookback outputs too."""
    length = u.shape[1]
    total = length + horizon - 1
    a, b, c, k = decoder.matrices()
    kernels = companion_kernel(torch.cat([a, a]), torch.cat([b, b]), torch.cat([c, k]), total)
    output_kernel, input_kernel = kernels.chunk(2)
    signal = u.transpose(1, 2)
    predicted = poly_mul(signal, input_kernel, total)
    extended = signal
    if horizon > 1:
        feedback = torch.cat([torch.ones_like(input_kernel[:, :1]),
                              -input_kernel[:, : horizon - 2]], dim=-1)
        future = fftconv(predicted[..., length - 1 : total - 1],
                         series_inverse(feedback, horizon - 1))
        extended = torch.cat([signal, future], dim=-1)
    outputs = fftconv(extended, output_kernel)
    return (outputs[..., length - 1 :].transpose(1, 2), outputs[..., :length].transpose(1, 2),
            predicted[..., :length].transpose(1, 2))


CALLS: dict[str, Callable[..., tuple[torch.Tensor, ...]]] = {
    "series division": series_division, "last state": ClosedLoopSSM.forward}
NETWORK_ARMS = {"series division": lambda: patch.object(ClosedLoopSSM, "forward", series_division),
                "last state": nullcontext}


def decoder_seconds(decoder: ClosedLoopSSM, u: torch.Tensor, horizon: int,
                    training: bool) -> Callable[[str], float]:
    """Seconds of one training step (forward with the lookback outputs, backward) or one
    prediction (forward without gradients) in the arm's way."""

    def seconds(arm: str) -> float:
        start = time.perf_counter()
        if training:
            sum(y.sum() for y in CALLS[arm](decoder, u, horizon)).backward()
        else:
            with torch.no_grad():
                CALLS[arm](decoder, u, horizon, False)
        return time.perf_counter() - start

    return seconds


def largest_difference(decoder: ClosedLoopSSM, u: torch.Tensor, horizon: int) -> float:
    """Largest relative difference between the arms' forecasts and lookback outputs."""
    with torch.no_grad():
        pairs = zip(*(CALLS[arm](decoder, u, horizon) for arm in ARMS), strict=True)
        return max(float((x - y).abs().max() / y.abs().max()) for x, y in pairs)


def main() -> int:
    args = arguments(__doc__.splitlines()[0])
    env = environment(args.threads)
    torch.manual_seed(0)
    decoder = ClosedLoopSSM(args.channels, 64, init="xavier")  # the defaults' decoder
    u = torch.randn(args.batch_size, LOOKBACK, args.channels, requires_grad=True)
    rows = []

    def record(case: str, horizon: int, best: dict[str, float], difference: float | str) -> None:
        times = {f"ms_{arm.replace(' ', '_')}": round(1e3 * best[arm], 1) for arm in ARMS}
        speedup = round(best[ARMS[0]] / best[ARMS[1]], 2)
        print(case, horizon, times, f"{speedup}x", flush=True)
        rows.append({"case": case, "horizon": horizon, **times, "speedup": speedup,
                     "max_rel_diff": difference, **env, "note": args.note})

    for horizon in HORIZONS:
        difference = f"{largest_difference(decoder, u, horizon):.1e}"
        for case, training in (("decoder, training step", True), ("decoder, prediction", False)):
            best = best_of_alternating(decoder_seconds(decoder, u, horizon, training), ARMS,
                                       args.rounds)
            record(case, horizon, best, difference)
    for horizon in (96, 720):
        step = spacetime_step(horizon, args.batch_size, NETWORK_ARMS)
        record("network, training step", horizon, best_of_alternating(step, ARMS, args.rounds), "")
    write_table(RESULTS, rows, [
        "# SpaceTime decoder: last-state readout against power-series division\n",
        f"{env['machine']}, {args.threads} threads, torch {env['torch']}, {env['date']}. "
        f"Best of {args.rounds} alternating rounds, float32. Decoder rows: u [{args.batch_size}, "
        f"{LOOKBACK}, {args.channels}], state size 64; network rows: a batch of "
        f"{args.batch_size} windows, lookback {LOOKBACK}, 7 channels in and out, the defaults "
        f"(d_model 128), forward with the lag losses and backward. {args.note}\n",
        "| case | H | ms series division | ms last state | speed-up | max rel. difference |",
        "|---|---|---|---|---|---|",
        *(f"| {r['case']} | {r['horizon']} | {r['ms_series_division']} | {r['ms_last_state']} | "
          f"{r['speedup']}x | {r['max_rel_diff']} |" for r in rows),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
