"""Forecasting accuracy under the TSLib protocol, recorded to benchmarks/results/accuracy.csv.

For each (dataset, horizon, backbone, lookback, seed) cell not yet in the results file: fit on
the train rows with early stopping on the validation rows, score every stride-1 test window
(MSE/MAE on standardized data, all channels in and out), and append one row. Re-running resumes:
recorded cells are skipped, and with `--checkpoints DIR` a cell interrupted mid-fit (a long one
on a CPU, a lost machine) goes on from its last epoch.

    uv run python benchmarks/accuracy.py --backbones lstm s4d --datasets ETTh1 \
        --horizons 96 192 336 720 --lookback 336
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

import tsk
from tsk.datasets import ETT_NAMES, load_dataset, load_ett

RESULTS = Path(__file__).parent / "results" / "accuracy.csv"
COLUMNS = [
    "dataset", "horizon", "backbone", "lookback", "seed", "setting", "protocol", "mse", "mae",
    "n_windows", "params", "epochs", "train_seconds", "seconds_per_epoch", "max_epochs",
    "batch_size", "learning_rate", "d_model", "n_layers", "ridge_init", "start_kept",
    "instance_norm", "tokens", "machine",
    "cpus", "torch", "tsk", "date", "time_features", "backbone_kwargs", "recipe",
    "linear_start_mse", "seasonal_naive_mse",
]

RECIPE = "v4"
"""The training recipe the Forecaster's defaults give, recorded with each row (rows without one
are "v1"). v1 (to 2026-12-03): the ridge start's skip trained with the rest at lr 1e-4, validation
once per epoch, S4's SSM parameters at lr 1e-3 whatever the global rate. v2: the ridge start
frozen while the deep part learns at lr 1e-3, validation at most 500 steps apart, SSM rates
capped at the global rate (`min(1e-3, lr)`, the S4 authors'). v3 (2026-12-04): v2, validating,
keeping and predicting with a moving average of the weights over about the steps between
validations (`ema_decay="auto"`). v4 (2026-12-04): v3, with the ridge start's strength picked by
generalized cross-validation on the training windows instead of on the validation windows.
README.md (in this folder) says more, also of the recipes measured and not adopted."""


# an on/off option of the Forecaster whose default (None) the model decides
SWITCH = {"default": None, "on": True, "off": False}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {cpu}, {gpu}"


def done_cells(path: Path) -> set[tuple[str, ...]]:
    if not path.is_file():
        return set()
    with path.open() as handle:
        return {key(r) for r in csv.DictReader(handle)}


def key(row: dict) -> tuple[str, ...]:
    """A cell: its data, horizon, seed and every choice that changes the model (the Forecaster's
    own included, see `resolved_choices`). Rows recorded before the ridge start existed trained
    from random weights."""
    return (*(str(row[c]) for c in ("dataset", "horizon", "backbone", "lookback", "seed", "setting",
                                    "d_model")),
            str(row.get("protocol") or "tslib"), str(row.get("ridge_init") or False),
            str(row.get("instance_norm") or "on"), str(row.get("tokens") or "time"),
            str(float(row["learning_rate"])), str(row.get("time_features") or False),
            str(row.get("backbone_kwargs") or ""), str(row.get("recipe") or "v1"))


def cell_model(args: argparse.Namespace, backbone: str, **params) -> tsk.Forecaster:
    """The unfitted model of a cell; its defaults say the cell's token layout and step size."""
    return tsk.Forecaster(
        backbone, lookback=args.lookback, d_model=args.d_model, dropout=args.dropout,
        n_layers=args.n_layers, max_epochs=args.max_epochs, patience=args.patience,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        ridge_init=SWITCH[args.ridge_start], enable_progress_bar=args.progress,
        instance_norm=args.instance_norm == "on",
        tokens=args.tokens, channel_independent=False if args.tokens == "variates" else None,
        backbone_kwargs=json.loads(args.backbone_kwargs) if args.backbone_kwargs else None,
        time_features=SWITCH[args.time_features], **params,
    )


def resolved_choices(args: argparse.Namespace, backbone: str) -> dict:
    """What the Forecaster itself decides for a cell, as its row records it: the start, token
    layout, step size, calendar inputs and width."""
    model = cell_model(args, backbone)
    tokens = model._resolve_tokens(args.lookback)
    ridge = model._ridge_start(tokens)
    return {"ridge_init": ridge, "tokens": tokens, "learning_rate": model._learning_rate(args.batch_size),
            "time_features": model._resolve_time_features(),
            "d_model": tsk.backbones.make_config(backbone, **model._backbone_config(args.lookback)).d_model}


def cell_folder(args: argparse.Namespace, cell: tuple[str, ...]) -> Path:
    """Where a cell keeps its checkpoints under `--checkpoints`: one folder per cell and
    training setting, so that only the same fit resumes there."""
    lists = ("backbones", "datasets", "horizons", "seeds", "data_dir", "out", "progress",
             "checkpoints")
    options = {name: value for name, value in vars(args).items() if name not in lists}
    digest = hashlib.sha1(json.dumps([cell, options], default=str).encode()).hexdigest()[:12]
    dataset, horizon, backbone, _, seed = cell[:5]
    return args.checkpoints / f"{dataset}-{horizon}-{backbone}-seed{seed}-{digest}"


def run_cell(args: argparse.Namespace, dataset: str, horizon: int, backbone: str,
             seed: int, checkpoint_dir: Path | None = None, **params) -> dict:
    """One fit and its test scores as a row; `params` are further `Forecaster` arguments (a
    study's own, which its rows record beside these columns)."""
    split = (load_ett(dataset, args.data_dir, protocol=args.protocol) if dataset in ETT_NAMES
             else load_dataset(dataset, args.data_dir))
    if args.setting == "S":
        split = split.univariate("OT")
    model = cell_model(args, backbone, horizon=horizon, random_state=seed, **params)
    model.fit(split.train(), val_df=split.validation(args.lookback), checkpoint_dir=checkpoint_dir)
    metrics = model.evaluate(split.test(args.lookback), baselines=True)
    summary = model.fit_summary_
    epochs = max(summary.epochs, 1)
    backbone_config = tsk.backbones.make_config(backbone, **model._backbone_config(model.lookback_))
    return {
        "dataset": dataset, "horizon": horizon, "backbone": backbone, "lookback": args.lookback,
        "seed": seed, "setting": args.setting, "protocol": args.protocol,
        "mse": f"{metrics['mse']:.4f}",
        "mae": f"{metrics['mae']:.4f}", "n_windows": metrics["n_windows"],
        "params": sum(p.numel() for p in model.net_.parameters()), "epochs": summary.epochs,
        "train_seconds": f"{summary.train_seconds:.1f}",
        "seconds_per_epoch": f"{summary.train_seconds / epochs:.1f}",
        "max_epochs": args.max_epochs, "batch_size": args.batch_size,
        "learning_rate": model.learning_rate_, "d_model": backbone_config.d_model,
        "n_layers": backbone_config.n_layers, "ridge_init": model._ridge_start(model.tokens_),
        "start_kept": summary.start_kept, "instance_norm": args.instance_norm,
        "tokens": model.tokens_, "machine": machine(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "tsk": tsk.__version__,
        "date": dt.date.today().isoformat(), "time_features": model.time_features_,
        "backbone_kwargs": args.backbone_kwargs or "", "recipe": RECIPE,
        "linear_start_mse": f"{metrics['linear_start_mse']:.4f}",
        "seasonal_naive_mse": f"{metrics['seasonal_naive_mse']:.4f}",
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["s4d"])
    parser.add_argument("--datasets", nargs="+", default=["ETTh1"])
    parser.add_argument("--horizons", nargs="+", type=int, default=[96, 192, 336, 720])
    parser.add_argument("--lookback", type=int, default=336)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--setting", choices=["M", "S"], default="M")
    parser.add_argument("--protocol", choices=["tslib", "ratio"], default="tslib",
                        help="ETT borders: TSLib's 12/4/4 months, or 60/20/20 of the file (TPGN's)")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--backbone-kwargs", default=None,
                        help='other options of the backbone\'s config, as JSON: \'{"d_state": 2}\'')
    parser.add_argument("--n-layers", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: the Forecaster's (1e-3)")
    parser.add_argument("--ridge-start", choices=["default", "on", "off"], default="default",
                        help="start from the closed-form ridge forecast: the Forecaster's choice "
                             "(the generic head: on; a paper's network: off), or forced on / off")
    parser.add_argument("--instance-norm", choices=["on", "off"], default="on",
                        help="RevIN on the windows (the Forecaster's default: on)")
    parser.add_argument("--tokens", choices=["time", "patches", "variates"], default=None,
                        help="what the backbone runs over: time steps, PatchTST patches, channels "
                             "(default: the Forecaster's choice)")
    parser.add_argument("--time-features", choices=["default", "on", "off"], default="default",
                        help="calendar features of the timestamps as inputs: the backbone's "
                             "paper's choice (TPGN: on), or forced on / off")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="keep each running cell's checkpoints in a folder here, and resume "
                             "a cell interrupted earlier from its last checkpoint")
    return parser


def default_choices(backbone: str, recipe: str = RECIPE) -> dict:
    """The row fields of a multivariate TSLib cell run with every option at its default, i.e.
    what `Forecaster(backbone)` does with no other arguments (lookback 336), under `recipe`
    (v1's default step from the ridge start was 1e-4)."""
    args = build_parser().parse_args([])
    choices = resolved_choices(args, backbone)
    if recipe == "v1" and choices["ridge_init"]:
        choices["learning_rate"] = 1e-4
    return {"setting": args.setting, "protocol": args.protocol, "lookback": args.lookback,
            "instance_norm": args.instance_norm, "backbone_kwargs": "", "recipe": recipe,
            **choices}


def main() -> int:
    args = build_parser().parse_args()

    done = done_cells(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        for horizon in args.horizons:
            for backbone in args.backbones:
                for seed in args.seeds:
                    cell = key({"dataset": dataset, "horizon": horizon, "backbone": backbone,
                                "lookback": args.lookback, "seed": seed, "setting": args.setting,
                                "protocol": args.protocol, "instance_norm": args.instance_norm,
                                "backbone_kwargs": args.backbone_kwargs, "recipe": RECIPE,
                                **resolved_choices(args, backbone)})
                    if cell in done:
                        print(f"skip {cell}: already recorded", flush=True)
                        continue
                    folder = cell_folder(args, cell) if args.checkpoints else None
                    row = run_cell(args, dataset, horizon, backbone, seed, folder)
                    new = not args.out.is_file()
                    with args.out.open("a", newline="") as handle:
                        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                        if new:
                            writer.writeheader()
                        writer.writerow(row)
                    print(f"{dataset} H={horizon} {backbone} seed={seed}: MSE {row['mse']} "
                          f"MAE {row['mae']} ({row['epochs']} epochs, {row['train_seconds']} s)",
                          flush=True)
                    if folder is not None:
                        shutil.rmtree(folder, ignore_errors=True)  # recorded: nothing to resume
    return 0


if __name__ == "__main__":
    sys.exit(main())
