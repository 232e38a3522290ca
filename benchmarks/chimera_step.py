"""Chimera's whole backbone on CUDA: the scan2d Triton path against the torch path.

For each shape, one forward+backward of the default backbone through each path (the outputs and
all parameter gradients must agree), then the median time of a training step (forward+backward)
and the mean time of a forward without autograd. Needs a GPU; rows go to
benchmarks/results/chimera_step.csv:

    PYTHONPATH=. python benchmarks/chimera_step.py
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from tsk.backbones import create
from tsk.backbones.chimera import Selective2D

RESULTS = Path(__file__).parent / "results" / "chimera_step.csv"
# (batch, variates, time tokens): ETTh1's patched shapes, 21 channels x 96, an electricity-size grid
SHAPES = [(32, 7, 42), (32, 21, 96), (8, 321, 42)]


def set_scan_backend(model: torch.nn.Module, backend: str) -> None:
    for module in model.modules():
        if isinstance(module, Selective2D):
            module.scan_backend = backend


def cuda_seconds(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure(batch: int, n_var: int, length: int, d_model: int) -> dict:
    torch.manual_seed(0)
    model = create("chimera", d_model=d_model).cuda()
    x = torch.randn(batch, n_var, length, d_model, device="cuda")
    target = torch.randn_like(x)

    def step():
        model.zero_grad()
        ((model(x) - target) ** 2).mean().backward()

    row, results = dict(B=batch, V=n_var, T=length, d_model=d_model), {}
    for backend in ("torch", "triton"):
        set_scan_backend(model, backend)
        step()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        with torch.no_grad():
            results[backend] = (model(x), grads.clone())
        row[f"{backend}_step_ms"] = round(1e3 * statistics.median(cuda_seconds(step, 12)[2:]), 2)
        with torch.no_grad():
            row[f"{backend}_fwd_ms"] = round(1e3 * statistics.mean(
                cuda_seconds(lambda: model(x), 5)), 2)
    (y_ref, g_ref), (y, g) = results["torch"], results["triton"]
    row["y_rel_err"] = float((y - y_ref).abs().max() / y_ref.abs().max())
    row["grad_rel_err"] = float((g - g_ref).abs().max() / g_ref.abs().max())
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-model", type=int, default=64)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU (the Triton path is compiled and timed there)", file=sys.stderr)
        return 1
    env = dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
               python=platform.python_version(),
               date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    rows = []
    for batch, n_var, length in SHAPES:
        row = {**measure(batch, n_var, length, args.d_model), **env}
        print(json.dumps(row), flush=True)
        if row["y_rel_err"] > 1e-4 or row["grad_rel_err"] > 1e-3:
            print("the Triton and torch paths disagree", file=sys.stderr)
            return 1
        rows.append(row)
        with RESULTS.open("w", newline="") as handle:  # after each shape: a cut run keeps its rows
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
