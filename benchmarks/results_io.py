"""What the benchmark scripts share: the machine a row ran on, and appending rows to a results CSV
(header first, flushed at once, so an interrupted run keeps every finished cell)."""

from __future__ import annotations

import csv
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import torch


def machine() -> str:
    """The system, processor, GPU (or none) and CPU count."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {cpu}, {gpu}, {os.cpu_count()} CPUs"


def append_row(path: Path, columns: Sequence[str], row: dict) -> None:
    """Append `row` to the CSV at `path` (with the header when the file is new)."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        if new:
            writer.writeheader()
        writer.writerow(row)
