"""How the closed-form linear start's ridge strength is picked: on the validation windows (recipe
v3 and before) or by generalized cross-validation on the training windows (v4, `fit_skip_ridge`).

For each cell the start is solved here in numpy, as `tsk.heads.forecast.fit_skip_ridge` solves
it (RevIN windows, rows weighted by the window's scale, an unpenalized intercept, strengths
relative to the lookback's mean square), at each of its strengths; the row records the test MSE
at every strength, validation's choice and GCV's, and the test MSE of a `Forecaster`'s own
linear start (one training step, `evaluate(..., baselines=True)`), which must equal GCV's.
TSLib protocol, all channels. Written to benchmarks/results/ridge_strength.{csv,md}.

    uv run python benchmarks/ridge_strength.py --data-dir DATA/forecasting
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from results_io import append_row, machine

import tsk
from tsk.datasets import ETT_NAMES, load_dataset, load_ett
from tsk.heads.forecast import RIDGE_STRENGTHS

RESULTS = Path(__file__).parent / "results" / "ridge_strength"
CELLS = [("national_illness", 104, h) for h in (24, 36, 48, 60)] + [
    ("ETTh1", 336, 96), ("ETTh1", 336, 336), ("ETTh2", 336, 96), ("ETTh2", 336, 336),
    ("ETTm1", 336, 96), ("ETTm2", 336, 96),
]
COLUMNS = ["dataset", "lookback", "horizon", *[f"test_at_{r:g}" for r in RIDGE_STRENGTHS],
           "validation_picks", "validation_test", "gcv_picks", "gcv_test", "forecaster_start_test",
           "machine", "torch", "date"]
EPS = 1e-5  # InstanceNorm's variance floor


def scaled_parts(split: Any, lookback: int) -> list[np.ndarray]:
    """Train, validation and test values `[time, channels]` (the latter two with their lookback
    of context), standardized by the training part's statistics as the Forecaster does."""
    frames = [split.train(), split.validation(lookback), split.test(lookback)]
    values = [f.drop(columns="ds").to_numpy(np.float64) for f in frames]
    mean, std = values[0].mean(0), values[0].std(0)
    return [(v - mean) / std for v in values]


def weighted_rows(values: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, ...]:
    """Every (window, channel) row: `[z, 1] * s` and `z_future * s` for the window normalized by
    its mean m and scale s, and m, s, the raw future (for scoring in the data's units)."""
    starts = np.arange(len(values) - lookback - horizon + 1)
    windows = values[starts[:, None] + np.arange(lookback + horizon)]  # [n, L + H, C]
    windows = windows.transpose(0, 2, 1).reshape(-1, lookback + horizon)
    past, future = windows[:, :lookback], windows[:, lookback:]
    mean = past.mean(1, keepdims=True)
    scale = np.sqrt(past.var(1, keepdims=True) + EPS)
    x = np.hstack([(past - mean) / scale, np.ones((len(past), 1))]) * scale
    return x, (future - mean), mean, scale, future


def regularized(gram: np.ndarray) -> list[np.ndarray]:
    """X^T X plus the ridge penalty at each strength (the intercept unpenalized)."""
    penalty = np.eye(len(gram))
    penalty[-1, -1] = 0.0
    scale = gram.diagonal()[:-1].mean()
    return [gram + scale * r * penalty for r in RIDGE_STRENGTHS]


def test_mse(weight: np.ndarray, rows: tuple[np.ndarray, ...]) -> float:
    x, _, mean, _, future = rows
    return float(((x @ weight + mean - future) ** 2).mean())


def forecaster_start(split: Any, lookback: int, horizon: int) -> float:
    """The test MSE of a default Forecaster's own closed-form start on the cell."""
    model = tsk.Forecaster("s4d", horizon=horizon, lookback=lookback, max_steps=1,
                           enable_progress_bar=False, random_state=0)
    model.fit(split.train(), val_df=split.validation(lookback))
    return model.evaluate(split.test(lookback), baselines=True)["linear_start_mse"]


def run_cell(dataset: str, lookback: int, horizon: int, data_dir: str) -> dict:
    split = load_ett(dataset, data_dir) if dataset in ETT_NAMES else load_dataset(dataset, data_dir)
    train, validation, test = (weighted_rows(v, lookback, horizon)
                               for v in scaled_parts(split, lookback))
    x, y = train[0], train[1]
    gram = x.T @ x
    systems = regularized(gram)
    weights = [np.linalg.solve(a, x.T @ y) for a in systems]
    # weighted squares, as the training loss counts them: the validation part's
    validation_sse = [float((((validation[0] @ w) - validation[1]) ** 2).sum()) for w in weights]
    gcv = [float(((x @ w - y) ** 2).sum()) / (1 - np.trace(np.linalg.solve(a, gram)) / len(x)) ** 2
           for a, w in zip(systems, weights, strict=True)]
    tests = [test_mse(w, test) for w in weights]
    by_validation, by_gcv = int(np.argmin(validation_sse)), int(np.argmin(gcv))
    return {
        "dataset": dataset, "lookback": lookback, "horizon": horizon,
        **{f"test_at_{r:g}": f"{t:.4f}" for r, t in zip(RIDGE_STRENGTHS, tests, strict=True)},
        "validation_picks": f"{RIDGE_STRENGTHS[by_validation]:g}",
        "validation_test": f"{tests[by_validation]:.4f}",
        "gcv_picks": f"{RIDGE_STRENGTHS[by_gcv]:g}", "gcv_test": f"{tests[by_gcv]:.4f}",
        "forecaster_start_test": f"{forecaster_start(split, lookback, horizon):.4f}",
        "machine": machine(), "torch": torch.__version__, "date": dt.date.today().isoformat(),
    }


def write_page(rows: list[dict]) -> None:
    strengths = [f"{r:g}" for r in RIDGE_STRENGTHS]
    lines = [
        "# The linear start's ridge strength: validation's choice or GCV's", "",
        "Test MSE of the closed-form start alone at each strength (relative to the lookback's "
        "mean square), TSLib protocol, all channels; `benchmarks/ridge_strength.py`. "
        "'Forecaster': the test MSE of a default Forecaster's own start (recipe v4: GCV).", "",
        f"| data | L | H | {' | '.join(strengths)} | validation picks | GCV picks | Forecaster |",
        "|---|---|---|" + "---|" * len(strengths) + "---|---|---|",
    ]
    for row in rows:
        tests = " | ".join(row[f"test_at_{s}"] for s in strengths)
        lines.append(f"| {row['dataset']} | {row['lookback']} | {row['horizon']} | {tests} | "
                     f"{row['validation_picks']}: {row['validation_test']} | "
                     f"{row['gcv_picks']}: {row['gcv_test']} | {row['forecaster_start_test']} |")
    lines += ["", f"{rows[0]['machine']}, torch {rows[0]['torch']}, {rows[0]['date']}.", ""]
    RESULTS.with_suffix(".md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    csv_path = RESULTS.with_suffix(".csv")
    csv_path.unlink(missing_ok=True)  # one run is the table
    rows = []
    for dataset, lookback, horizon in CELLS:
        rows.append(run_cell(dataset, lookback, horizon, args.data_dir))
        append_row(csv_path, COLUMNS, rows[-1])
        print(f"{dataset}-{horizon}: validation {rows[-1]['validation_test']}, GCV "
              f"{rows[-1]['gcv_test']}, Forecaster {rows[-1]['forecaster_start_test']}", flush=True)
    write_page(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
