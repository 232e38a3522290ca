"""M4 Hourly and Weekly under the official protocol, recorded to benchmarks/results/m4.csv.

For each (group, backbone, seed) cell not yet in the results file: fit ONE global
`tsk.Forecaster` on the training part of every series of the group, forecast each series'
`horizon` test values from the end of its training part, and score sMAPE, MASE (M4's seasonality
m: 24 Hourly, 1 Weekly) and OWA (relative to Naive2) as the M4 organisers do
(`tsk.metrics.smape`, `mase`, `owa`, `naive2`). Beside the model, each row records Naive2 and the
fit's closed-form linear floor (`linear_start_`, the ridge forecast the generic head starts from)
on the same test values.

Validation (`--validation`): `horizon` (default) holds out the last `horizon` steps of every
training series (the test's size; the model trains on the rest and forecasts the test from the
whole training part), `fraction` uses the Forecaster's own split (the last `--validation-size`
of each series). Lookback: the Forecaster raises on a series shorter than lookback + horizon, so
every series must allow it: by default the Forecaster's own rule on the training frame (a sixth
of what the shortest series leaves after the horizon, at most 336: Hourly 100, Weekly 9 under
`horizon` validation); `--lookback` sets it, up to the shortest training series minus two
horizons (`horizon` validation; Hourly 604, Weekly 54) or minus one (`fraction`). M4 gives no
dates: the synthetic timestamps of `tsk.datasets.load_m4` carry no calendar, so calendar
features are off.

    uv run python benchmarks/m4.py --groups Weekly Hourly --backbones s4d lstm --data-dir DATA
    uv run python benchmarks/m4.py --groups Weekly --max-steps 20 --out /tmp/m4.csv  # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_io import append_row, machine

import tsk
from tsk.datasets import M4_GROUPS, M4Data, load_m4
from tsk.metrics import mase, naive2, owa, smape

RESULTS = Path(__file__).parent / "results" / "m4.csv"
PAGE = RESULTS.with_suffix(".md")
ANCHORS = Path(__file__).parent / "anchors.csv"
COLUMNS = [
    "group", "backbone", "lookback", "seed", "validation", "horizon", "season", "n_series",
    "smape", "mase", "owa", "naive2_smape", "naive2_mase", "linear_smape", "linear_mase",
    "linear_owa", "params", "epochs", "max_epochs", "max_steps", "train_seconds", "batch_size",
    "learning_rate", "d_model", "n_layers", "tokens", "ridge_init", "start_kept", "machine",
    "cpus", "torch", "tsk", "date",
]
KEY = ("group", "backbone", "lookback", "seed", "validation", "max_epochs", "max_steps",
       "batch_size", "d_model", "n_layers")


def done_cells(path: Path) -> set[tuple[str, ...]]:
    if not path.is_file():
        return set()
    with path.open() as handle:
        return {tuple(str(row[c]) for c in KEY) for row in csv.DictReader(handle)}


def split_last(frame: pd.DataFrame, rows: int) -> tuple[pd.DataFrame, pd.Series]:
    """`frame` without each series' last `rows` rows, and the mask of those rows."""
    from_end = frame.groupby("unique_id", sort=False).cumcount(ascending=False)
    return frame[from_end >= rows], from_end


def max_lookback(data: M4Data, validation: str) -> int:
    """The longest lookback every series of `data` allows under `validation`."""
    shortest = min(len(x) for x in data.insample)
    return shortest - data.horizon * (2 if validation == "horizon" else 1)


def cell_model(args: argparse.Namespace, data: M4Data, backbone: str, seed: int,
               lookback: int | None) -> tsk.Forecaster:
    return tsk.Forecaster(
        backbone, horizon=data.horizon, lookback=lookback, d_model=args.d_model,
        n_layers=args.n_layers, time_features=False, season_length=data.seasonality,
        validation_size=args.validation_size, max_epochs=args.max_epochs, max_steps=args.max_steps,
        patience=args.patience, batch_size=args.batch_size, learning_rate=args.learning_rate,
        random_state=seed, enable_progress_bar=args.progress,
    )


def resolve_lookback(args: argparse.Namespace, data: M4Data, backbone: str) -> int:
    """`--lookback`, else the Forecaster's own choice on the frame it is fit on; checked against
    the shortest series."""
    fit_frame = split_last(data.train, data.horizon)[0] if args.validation == "horizon" else data.train
    lookback = args.lookback or cell_model(args, data, backbone, 0, None).resolve_lookback(fit_frame)
    longest = max_lookback(data, args.validation)
    if lookback > longest:
        raise SystemExit(f"--lookback {lookback} is too long for M4 {data.group}: its shortest "
                         f"training series ({min(len(x) for x in data.insample)} steps) allows at "
                         f"most {longest} with --validation {args.validation}.")
    return lookback


def as_matrix(forecast: pd.DataFrame, data: M4Data) -> np.ndarray:
    """A forecast frame (unique_id, ds, y) as `[n_series, horizon]` in `data.ids` order, checked
    to fall on the test's own timestamps."""
    merged = data.test.merge(forecast, on=["unique_id", "ds"], how="left", suffixes=("", "_hat"))
    if merged["y_hat"].isna().any():
        raise RuntimeError("The forecasts do not cover the test timestamps of every series.")
    return merged["y_hat"].to_numpy().reshape(data.n_series, data.horizon)


def linear_floor(model: tsk.Forecaster, data: M4Data) -> np.ndarray:
    """The fit's closed-form linear start (`linear_start_`) forecasting each series from the last
    `lookback_` values of its training part, in the original scale: `[n_series, horizon]`."""
    lookback = model.lookback_
    scalers = [model.scalers_[uid] for uid in data.ids]
    windows = np.stack([sc.transform(x[-lookback:, None]) for sc, x in
                        zip(scalers, data.insample, strict=True)])
    net = model.linear_start_.cpu().eval()
    with torch.inference_mode():
        scaled = net(torch.as_tensor(windows)).numpy()  # [S, H, 1]
    return np.stack([sc.inverse_transform(f)[:, 0] for sc, f in zip(scalers, scaled, strict=True)])


def scores(data: M4Data, forecast: np.ndarray) -> tuple[float, float]:
    return (smape(data.outsample, forecast),
            mase(data.insample, data.outsample, forecast, data.seasonality))


def run_cell(args: argparse.Namespace, data: M4Data, backbone: str, seed: int,
             lookback: int) -> dict:
    model = cell_model(args, data, backbone, seed, lookback)
    if args.validation == "horizon":
        fit_frame, from_end = split_last(data.train, data.horizon)
        model.fit(fit_frame, val_df=data.train[from_end < lookback + data.horizon])
    else:
        model.fit(data.train)
    forecast = as_matrix(model.predict(data.train), data)
    baseline = np.stack([naive2(x, data.horizon, data.seasonality) for x in data.insample])
    (s, m), (s2, m2) = scores(data, forecast), scores(data, baseline)
    sl, ml = scores(data, linear_floor(model, data))
    summary = model.fit_summary_
    config = tsk.backbones.make_config(backbone, **model._backbone_config(model.lookback_))
    return {
        "group": data.group, "backbone": backbone, "lookback": model.lookback_, "seed": seed,
        "validation": args.validation, "horizon": data.horizon, "season": data.seasonality,
        "n_series": data.n_series, "smape": f"{s:.3f}", "mase": f"{m:.3f}",
        "owa": f"{owa(s, m, s2, m2):.3f}", "naive2_smape": f"{s2:.3f}", "naive2_mase": f"{m2:.3f}",
        "linear_smape": f"{sl:.3f}", "linear_mase": f"{ml:.3f}",
        "linear_owa": f"{owa(sl, ml, s2, m2):.3f}",
        "params": sum(p.numel() for p in model.net_.parameters()), "epochs": summary.epochs,
        "max_epochs": args.max_epochs, "max_steps": args.max_steps or "",
        "train_seconds": f"{summary.train_seconds:.1f}", "batch_size": args.batch_size,
        "learning_rate": model.learning_rate_, "d_model": config.d_model,
        "n_layers": config.n_layers, "tokens": model.tokens_,
        "ridge_init": model._ridge_start(model.tokens_), "start_kept": summary.start_kept,
        "machine": machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "tsk": tsk.__version__, "date": dt.date.today().isoformat(),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", default=list(M4_GROUPS), choices=list(M4_GROUPS))
    parser.add_argument("--backbones", nargs="+", default=["s4d"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--lookback", type=int, default=None,
                        help="default: the Forecaster's own choice, which every series allows")
    parser.add_argument("--validation", choices=["horizon", "fraction"], default="horizon",
                        help="hold out the last horizon steps of each training series, or the "
                             "Forecaster's own split (--validation-size of each series)")
    parser.add_argument("--validation-size", type=float, default=0.2,
                        help="the Forecaster's validation_size under --validation fraction")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--n-layers", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap the optimizer steps (bounds the cost of a cell)")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: the Forecaster's (1e-3)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--progress", action="store_true")
    return parser


def render(results: pd.DataFrame, anchors: pd.DataFrame) -> str:
    """One table per group: each backbone's sMAPE / MASE / OWA (mean over seeds), the fit's
    closed-form linear start, Naive2 as measured here, and the published results."""
    lines = ["# M4 Hourly and Weekly (official protocol)", "",
             "One global model per group over all its series, forecasting each series' test "
             "horizon from the end of its training part; sMAPE, MASE and OWA as the M4 organisers "
             "compute them (`tsk.metrics`). 'linear start': the closed-form ridge forecast the "
             "fit starts from, scored on the same windows. Published rows: `anchors.csv`, with "
             "their sources.", ""]
    for group, rows in results.groupby("group"):
        lines += [f"## {group}", "", "| model | lookback | steps | sMAPE | MASE | OWA |",
                  "|---|---|---|---|---|---|"]
        for (backbone, lookback, steps), cell in rows.groupby(
                ["backbone", "lookback", rows.max_steps.fillna("").astype(str)]):
            kept = " (start kept)" if cell.start_kept.astype(str).eq("True").all() else ""
            lines.append(f"| {backbone}{kept} | {lookback} | {steps or 'epochs'} | "
                         f"{cell.smape.mean():.3f} | {cell.mase.mean():.3f} | {cell.owa.mean():.3f} |")
        first = rows.iloc[0]
        lines.append(f"| linear start (of the first row) | {first.lookback} | | "
                     f"{first.linear_smape:.3f} | {first.linear_mase:.3f} | {first.linear_owa:.3f} |")
        lines.append(f"| Naive2 (measured here) | | | {first.naive2_smape:.3f} | "
                     f"{first.naive2_mase:.3f} | 1.000 |")
        published = anchors[(anchors.task == "forecasting-m4") & (anchors.dataset == group)]
        for model, cell in published.groupby("model", sort=False):
            value = dict(zip(cell.metric, cell.value, strict=True))
            texts = [f"{value[m]:.3f}" if m in value else "" for m in ("smape", "mase", "owa")]
            lines.append(f"| {model} (published) | | | {' | '.join(texts)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    args = build_parser().parse_args()
    done = done_cells(args.out)
    for group in args.groups:
        data = load_m4(group, args.data_dir)
        for backbone in args.backbones:
            lookback = resolve_lookback(args, data, backbone)
            for seed in args.seeds:
                cell = {"group": data.group, "backbone": backbone, "lookback": lookback,
                        "seed": seed, "validation": args.validation,
                        "max_epochs": args.max_epochs, "max_steps": args.max_steps or "",
                        "batch_size": args.batch_size}
                model = cell_model(args, data, backbone, seed, lookback)
                config = tsk.backbones.make_config(backbone, **model._backbone_config(lookback))
                cell.update(d_model=config.d_model, n_layers=config.n_layers)
                if tuple(str(cell[c]) for c in KEY) in done:
                    print(f"skip {cell}: already recorded", flush=True)
                    continue
                row = run_cell(args, data, backbone, seed, lookback)
                append_row(args.out, COLUMNS, row)
                print(f"M4 {data.group} {backbone} seed={seed} lookback={row['lookback']}: sMAPE "
                      f"{row['smape']} MASE {row['mase']} OWA {row['owa']} (Naive2 "
                      f"{row['naive2_smape']} / {row['naive2_mase']}; linear floor "
                      f"{row['linear_smape']} / {row['linear_mase']}, OWA {row['linear_owa']}; "
                      f"{row['epochs']} epochs, {row['train_seconds']} s)", flush=True)
    if args.out == RESULTS and RESULTS.is_file():
        PAGE.write_text(render(pd.read_csv(RESULTS), pd.read_csv(ANCHORS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
