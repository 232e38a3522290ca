"""Training-step speed of the forecasting network with time-step tokens vs PatchTST patches.

One optimizer step (forward, backward, Adam) on a batch of channel-independent windows, as
`Forecaster` trains them; the two layouts alternate within each round so that both see the same
machine load, and the ratio is the result. Written to benchmarks/results/tokens_speed.{csv,md}.

    uv run python benchmarks/tokens_speed.py --backbones s4d mamba lstm --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from kernels import best_of_alternating, environment, write_table

from tsk.backbones import create
from tsk.heads.forecast import ForecastNet

RESULTS = Path(__file__).parent / "results" / "tokens_speed"


def make_net(backbone: str, lookback: int, horizon: int, patch_len: int | None) -> ForecastNet:
    body = create(backbone)
    return ForecastNet(body, lookback, horizon, n_in=1, n_out=1, d_model=body.config.d_model,
                       patch_len=patch_len)


def step_seconds(net: ForecastNet, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor) -> float:
    start = time.perf_counter()
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(net(x), y).backward()
    optimizer.step()
    return time.perf_counter() - start


def measure(backbone: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, args.lookback, 1).cumsum(1)
    y = torch.randn(args.batch_size, args.horizon, 1)
    layouts = {"time": None, "patches": args.patch_len}
    nets = {name: make_net(backbone, args.lookback, args.horizon, p) for name, p in layouts.items()}
    optimizers = {name: torch.optim.Adam(net.parameters(), 1e-4) for name, net in nets.items()}
    best = best_of_alternating(
        lambda name: step_seconds(nets[name], optimizers[name], x, y), list(layouts), args.rounds)
    return {"backbone": backbone, "lookback": args.lookback, "horizon": args.horizon,
            "batch_size": args.batch_size, "patch_len": args.patch_len,
            "tokens_time": args.lookback, "tokens_patches": nets["patches"].embed.n_tokens,
            "step_ms_time": round(1e3 * best["time"], 1),
            "step_ms_patches": round(1e3 * best["patches"], 1),
            "speedup": round(best["time"] / best["patches"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["s4d", "mamba", "lstm"])
    parser.add_argument("--lookback", type=int, default=336)
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--patch-len", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="e.g. what else the machine was running")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    rows = []
    for backbone in args.backbones:
        rows.append({**measure(backbone, args), **env, "note": args.note})
        print(rows[-1], flush=True)
    write_table(RESULTS, rows, [
        "# Training step: time-step tokens vs PatchTST patches\n",
        f"{env['machine']}, {args.threads} threads, torch {env['torch']}, {env['date']}. "
        f"Best of {args.rounds} alternating rounds; one Adam step on {args.batch_size} "
        f"channel-independent windows, lookback {args.lookback}, horizon {args.horizon}, "
        f"backbone defaults. {args.note}\n",
        "| backbone | tokens (time / patches) | step ms, time | step ms, patches | speed-up |",
        "|---|---|---|---|---|",
        *(f"| {r['backbone']} | {r['tokens_time']} / {r['tokens_patches']} | {r['step_ms_time']} | "
          f"{r['step_ms_patches']} | {r['speedup']}x |" for r in rows),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
