"""A whole default fit on a series the size a laptop user brings (36,000 rows x 21 channels):
wall time, where it goes (training steps, validation passes), and the test MSE it buys.

The series is real 15-minute data: ETTm1's 7 channels over rows 0-40,000, ETTm2's 7 over the
same rows, and ETTm1's 7 again over rows 29,680-69,680 (another stretch of the same sensors), as
one wide frame of 40,000 rows. `Forecaster(horizon=96)` at its defaults (s4d, lookback 336,
validation on the last 20% of the rows it is given) fits the first 36,000 rows; the test windows
are the 4,000 rows after them (with the lookback before them as context), standardized with the
training rows' statistics as the Forecaster's own `evaluate` does.

One fit per process, one at a time (two on 2 cores slow each other); `--before PATH` imports tsk
from another checkout (a `git worktree` of the commit before a change), so a before/after pair
compares code on the same data, machine and seed. Rows go to
benchmarks/results/default_fit.csv.

    uv run python benchmarks/default_fit.py --data-dir DATA --version after
    uv run python benchmarks/default_fit.py --data-dir DATA --before /tmp/tsk-before --version before
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "default_fit.csv"
COLUMNS = ["version", "backbone", "batch_size", "learning_rate", "patch_stride", "seed", "wall_s",
           "train_s", "validation_s", "validations",
           "train_steps", "epochs", "steps_between_validations", "test_mse", "test_mae",
           "rows", "channels", "machine", "threads", "torch", "date"]
ROWS, FIT_ROWS = 40_000, 36_000


def series_36k_x21(data_dir: str):
    """The 40,000 x 21 wide frame (`ds` + 21 channels) described in the module docstring."""
    import pandas as pd

    from tsk.datasets import load_ett

    m1, m2 = load_ett("ETTm1", data_dir).frame, load_ett("ETTm2", data_dir).frame
    late = len(m1) - ROWS
    parts = [m1.iloc[:ROWS], m2.iloc[:ROWS], m1.iloc[late:late + ROWS]]
    columns = [part.drop(columns="ds").reset_index(drop=True).add_prefix(f"{tag}_")
               for tag, part in zip(("m1", "m2", "m1late"), parts, strict=True)]
    frame = pd.concat(columns, axis=1)
    frame.insert(0, "ds", m1["ds"].iloc[:ROWS].reset_index(drop=True))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--version", required=True, help="what the row calls this code")
    parser.add_argument("--before", default=None, help="import tsk from this checkout")
    parser.add_argument("--backbone", default="s4d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="a batch size other than the default (a probe; the row says which)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="a learning rate other than the default (a probe; the row says which)")
    parser.add_argument("--patch-stride", type=int, default=None,
                        help="steps between patches other than the default half patch (a probe)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.before:
        sys.path.insert(0, args.before)
    import torch
    from lightning.pytorch.callbacks import Callback
    from results_io import append_row, machine

    import tsk

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    class Clock(Callback):
        """Seconds spent in validation passes, and the training steps taken."""

        def __init__(self) -> None:
            self.validation, self.validations, self.steps, self._begun = 0.0, 0, 0, 0.0

        def on_validation_start(self, *_: object) -> None:
            self._begun = time.perf_counter()

        def on_validation_end(self, *_: object) -> None:
            self.validation += time.perf_counter() - self._begun
            self.validations += 1

        def on_train_batch_end(self, *_: object) -> None:
            self.steps += 1

    frame = series_36k_x21(args.data_dir)
    clock = Clock()
    probe = {name: value for name, value in (("batch_size", args.batch_size),
                                             ("learning_rate", args.learning_rate),
                                             ("patch_stride", args.patch_stride))
             if value is not None}  # a probe's settings; the defaults otherwise
    model = tsk.Forecaster(args.backbone, horizon=96, random_state=args.seed,
                           enable_progress_bar=False, trainer_kwargs={"callbacks": [clock]},
                           **probe)
    begun = time.perf_counter()
    model.fit(frame.iloc[:FIT_ROWS])
    wall = time.perf_counter() - begun
    scores = model.evaluate(frame.iloc[FIT_ROWS - model.lookback_:])
    stride = getattr(getattr(model.net_, "embed", None), "stride", "")  # "": time steps
    summary = model.fit_summary_
    row = {
        "version": args.version, "backbone": args.backbone, "batch_size": model.batch_size_,
        "learning_rate": model.learning_rate_, "patch_stride": stride, "seed": args.seed,
        "wall_s": round(wall, 1),
        "train_s": round(summary.train_seconds, 1), "validation_s": round(clock.validation, 1),
        # the first validation scores the ridge start before any step
        "validations": clock.validations, "train_steps": clock.steps, "epochs": summary.epochs,
        "steps_between_validations": round(clock.steps / max(clock.validations - 1, 1)),
        "test_mse": round(float(scores["mse"]), 4), "test_mae": round(float(scores["mae"]), 4),
        "rows": FIT_ROWS, "channels": frame.shape[1] - 1, "machine": machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
    }
    append_row(args.out, COLUMNS, row)
    print(row, flush=True)


if __name__ == "__main__":
    main()
