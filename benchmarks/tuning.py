"""Does tuning pay? Tune one backbone on a TSLib split with Optuna and compare with its defaults.

Per (dataset, horizon, backbone, budget) cell, recorded to benchmarks/results/tuning.csv:
- the untuned default: `Forecaster(backbone)` fit on the train rows with early stopping on the
  validation rows; its validation and test MSE;
- `tsk.tune` for `--trials` trials with pruning (median pruner on the per-epoch validation
  loss): the best validation MSE, how many trials were pruned or failed, the best parameters;
- the test MSE of the best parameters trained exactly like the default (train rows, early
  stopping on validation), and of `best_estimator_` (refit on train + validation; scored on
  the training split's standardization, as the default, so the numbers compare).
Test rows are never seen while tuning. The study lives in an SQLite file (`--storage`), so an
interrupted run resumes where it stopped; a recorded cell is skipped.

    uv run python benchmarks/tuning.py --backbone s4d --dataset ETTh1 --horizon 96 --trials 20

`--space small` limits the space to cheap models (d_model <= 64, <= 2 layers, lookback 96) for
machines where the full default space is too slow; the CSV says which space and budget ran.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import optuna
import torch
from accuracy import machine  # benchmarks/ is on sys.path when run as a script
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import tsk
from tsk import backbones
from tsk.datasets import load_dataset
from tsk.tuning import default_space

RESULTS = Path(__file__).parent / "results" / "tuning.csv"
COLUMNS = [
    "dataset", "horizon", "backbone", "space", "trials", "max_epochs", "patience", "batch_size",
    "default_val_mse", "default_test_mse", "best_val_mse", "tuned_test_mse", "refit_test_mse",
    "n_complete", "n_pruned", "n_failed", "best_params", "tuning_seconds", "total_seconds",
    "machine", "cpus", "torch", "optuna", "tsk", "date",
]


def search_space(name: str, backbone: str) -> dict:
    """The backbone's default space, or a cheap one for slow machines."""
    if name == "default":
        return default_space(backbone)
    space = {
        "d_model": IntDistribution(16, 64, log=True),
        "n_layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.3),
        "learning_rate": FloatDistribution(3e-4, 1e-2, log=True),
        "lookback": CategoricalDistribution([96]),
    }
    if "d_state" in default_space(backbone):
        space["d_state"] = CategoricalDistribution([16, 32, 64])
    return space


def key(row: dict) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in ("dataset", "horizon", "backbone", "space", "trials",
                                       "max_epochs"))


def run_cell(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    split = load_dataset(args.dataset, args.data_dir)
    base = tsk.Forecaster(
        args.backbone, horizon=args.horizon, lookback=96, max_epochs=args.max_epochs,
        patience=args.patience, batch_size=args.batch_size, random_state=0,
        enable_progress_bar=args.progress,
    )

    def fit_and_score(model: tsk.Forecaster) -> tuple[float, float]:
        model.fit(split.train(), val_df=split.validation(model.lookback))
        return (model.evaluate(split.validation(model.lookback))["mse"],
                model.evaluate(split.test(model.lookback))["mse"])

    default_val, default_test = fit_and_score(base)
    print(f"default: val MSE {default_val:.4f}, test MSE {default_test:.4f}", flush=True)

    study_name = f"{args.dataset}-h{args.horizon}-{args.backbone}-{args.space}-e{args.max_epochs}"
    storage = optuna.storages.RDBStorage(args.storage, engine_kwargs={"connect_args": {"timeout": 60}})
    done = 0
    with contextlib.suppress(KeyError):  # a new study
        done = len(optuna.load_study(study_name=study_name, storage=storage).trials)
    tuning_start = time.perf_counter()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=min(5, args.trials // 3),
                                         n_warmup_steps=1 if args.max_epochs > 3 else 0)
    space = search_space(args.space, args.backbone)
    config = backbones.make_config(args.backbone)
    defaults = {name: getattr(base, name, None) if hasattr(base, name) and getattr(base, name)
                is not None else getattr(config, name) for name in space}
    result = tsk.tune(
        base, split, space=space,
        n_trials=max(args.trials - done, 0), storage=storage, study_name=study_name,
        pruner=pruner, random_state=0, show_progress_bar=args.progress,
        enqueue=[defaults],  # the default configuration is trial 0: tuning can only improve on it
    )
    tuning_seconds = time.perf_counter() - tuning_start
    best = result.best_params_
    _, tuned_test = fit_and_score(tsk.tuning.configure(base, best))
    refit = result.best_estimator_  # its scaler saw train + validation: score on the train scale
    refit_test = refit.evaluate(split.test(refit.lookback), metric_scalers=base.scalers_)["mse"]
    states = optuna.trial.TrialState
    return {
        "dataset": args.dataset, "horizon": args.horizon, "backbone": args.backbone,
        "space": args.space, "trials": result.n_trials_, "max_epochs": args.max_epochs,
        "patience": args.patience, "batch_size": args.batch_size,
        "default_val_mse": f"{default_val:.4f}", "default_test_mse": f"{default_test:.4f}",
        "best_val_mse": f"{result.best_score_:.4f}", "tuned_test_mse": f"{tuned_test:.4f}",
        "refit_test_mse": f"{refit_test:.4f}", "n_complete": result.count(states.COMPLETE),
        "n_pruned": result.count(states.PRUNED), "n_failed": result.count(states.FAIL),
        "best_params": json.dumps(best, sort_keys=True),
        "tuning_seconds": f"{tuning_seconds:.0f}", "total_seconds": f"{time.perf_counter() - start:.0f}",
        "machine": machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "optuna": optuna.__version__, "tsk": tsk.__version__, "date": dt.date.today().isoformat(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="s4d")
    parser.add_argument("--dataset", default="ETTh1")
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--trials", type=int, default=20, help="total trials of the study")
    parser.add_argument("--space", choices=["default", "small"], default="default")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--storage", default="sqlite:///tsk-tuning-benchmark.db",
                        help="Optuna storage; re-running resumes the study")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    row_key = (args.dataset, str(args.horizon), args.backbone, args.space, str(args.trials),
               str(args.max_epochs))
    if args.out.is_file():
        with args.out.open() as handle:
            if any(key(row) == row_key for row in csv.DictReader(handle)):
                print(f"skip {row_key}: already recorded")
                return 0
    row = run_cell(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.is_file()
    with args.out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
