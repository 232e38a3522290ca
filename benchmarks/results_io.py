"""What the benchmark scripts share: the machine a row ran on, and appending rows to a results CSV
(header first, flushed at once, so an interrupted run keeps every finished cell)."""

from __future__ import annotations

import csv
import multiprocessing
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def machine() -> str:
    """The system, processor, GPU (or none) and CPU count."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {cpu}, {gpu}, {os.cpu_count()} CPUs"


def run_in_workers(function: Callable[..., Any], tasks: Sequence[tuple], workers: int,
                   threads: int) -> list[Any]:
    """`function(*task)` for every task, `workers` at a time in spawned processes of `threads`
    torch threads each, a fresh process per task (no state carries over); results in task order.
    Runs side by side on one core each use a small CPU better than one run on all of them."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=torch.set_num_threads, initargs=(threads,),
                      maxtasksperchild=1) as pool:
        return pool.starmap(function, tasks, chunksize=1)


def last_epoch_lines(results: Any, name: str) -> list[str]:
    """The report lines after a per-epoch table: each `name`'s (model's, backbone's) test
    accuracy at its last recorded epoch and the minutes it took to get there."""
    final = results.sort_values("epoch").groupby(name, sort=False).tail(1)
    return ["", "Last epoch: " + "; ".join(
        f"{getattr(r, name)} {100 * r.test_accuracy:.2f}% after {r.train_seconds / 60:.1f} min"
        for r in final.itertuples()) + ".", ""]


def append_row(path: Path, columns: Sequence[str], row: dict) -> None:
    """Append `row` to the CSV at `path` (with the header when the file is new)."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        if new:
            writer.writeheader()
        writer.writerow(row)
