"""Test MSE with patches that do not overlap: the cells `accuracy.py` runs for the issue's data
(ETTh1-96 and ETTm1-96 at lookback 336, ILI at lookback 104 and its four horizons), with a
`Forecaster(patch_stride=...)` other than the default half patch, to set beside the default's
rows in accuracy.csv and accuracy_ili.csv. Rows go to benchmarks/results/patch_stride.csv
(`accuracy.py`'s columns and `patch_stride`); recorded cells are skipped.

    uv run python benchmarks/patch_stride.py --data-dir DATA/forecasting --stride 16
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from accuracy import COLUMNS, build_parser, run_cell
from results_io import append_row

RESULTS = Path(__file__).parent / "results" / "patch_stride.csv"
# (dataset, horizons, accuracy.py's arguments for its protocol there)
STUDY = [
    ("ETTh1", [96], []),
    ("ETTm1", [96], []),
    ("national_illness", [24, 36, 48, 60],
     ["--lookback", "104", "--batch-size", "32", "--max-epochs", "20"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--stride", type=int, required=True)
    parser.add_argument("--backbone", default="s4d")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    done = set()
    if args.out.is_file():
        with args.out.open() as handle:
            done = {(r["dataset"], r["horizon"], r["backbone"], r["seed"], r["patch_stride"])
                    for r in csv.DictReader(handle)}
    for dataset, horizons, protocol in STUDY:
        cell_args = build_parser().parse_args(["--data-dir", args.data_dir, *protocol])
        for horizon in horizons:
            for seed in args.seeds:
                if (dataset, str(horizon), args.backbone, str(seed), str(args.stride)) in done:
                    continue
                row = run_cell(cell_args, dataset, horizon, args.backbone, seed,
                               patch_stride=args.stride)
                append_row(args.out, [*COLUMNS, "patch_stride"],
                           {**row, "patch_stride": args.stride})
                print(f"{dataset} H={horizon} seed={seed} stride={args.stride}: MSE {row['mse']}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
