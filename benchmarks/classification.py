"""Time-series classification on the archives' own train/test splits, tsk's backbones at the
`Classifier`'s defaults beside MiniRocket run in the same script, recorded to
benchmarks/results/classification.csv and rendered (with the published figures of
benchmarks/anchors.csv) to benchmarks/results/classification.md.

Each (dataset, model, seed) cell not yet in the CSV is fit on the archive's TRAIN split and scored
on its TEST split: accuracy, balanced accuracy, macro F1, log-loss, and the fit's seconds.
MiniRocket (aeon's `MiniRocketClassifier`: 10,000 features, ridge classifier with built-in
cross-validation) needs equal lengths: JapaneseVowels' series (7-29 steps) are zero-padded at
their end to 29 for it alone (tsk reads them unpadded). Re-running resumes.

    uv run python benchmarks/classification.py                 # the whole table
    uv run python benchmarks/classification.py --report        # only re-render the markdown
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_io import append_row, machine

import tsk
from tsk.datasets import CLASSIFICATION_NAMES, load_classification
from tsk.metrics import classification_scores

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "classification.csv"
REPORT = HERE / "results" / "classification.md"
RUNS = HERE / "results" / "classification_runs.csv"  # one row per run: cells and wall time
ANCHORS = HERE / "anchors.csv"
BACKBONES = ("s4d", "s4", "mamba", "lstm", "pgn", "chimera")
COLUMNS = ["dataset", "model", "seed", "accuracy", "balanced_accuracy", "f1_macro", "log_loss",
           "train_seconds", "predict_seconds", "epochs", "params", "n_train", "n_test", "machine",
           "threads", "torch", "tsk", "date"]



def done(path: Path) -> set[tuple[str, str, str]]:
    if not path.is_file():
        return set()
    with path.open() as handle:
        return {(r["dataset"], r["model"], r["seed"]) for r in csv.DictReader(handle)}



def equal_length(X: np.ndarray | list[np.ndarray], length: int) -> np.ndarray:
    """`[n, C, length]`: series zero-padded at their end (MiniRocket takes equal lengths only)."""
    if isinstance(X, np.ndarray):
        return X
    return np.stack([np.pad(x, ((0, 0), (0, length - x.shape[1]))) for x in X])


def run_minirocket(data, seed: int) -> dict:
    from aeon.classification.convolution_based import MiniRocketClassifier

    length = max(int(data.lengths_train.max()), int(data.lengths_test.max()))
    X_train, X_test = equal_length(data.X_train, length), equal_length(data.X_test, length)
    model = MiniRocketClassifier(random_state=seed, n_jobs=1)
    begun = time.perf_counter()
    model.fit(X_train, data.y_train)
    train_seconds = time.perf_counter() - begun
    begun = time.perf_counter()
    proba = model.predict_proba(X_test)
    predict_seconds = time.perf_counter() - begun
    scores = classification_scores(data.y_test, proba, np.asarray(model.classes_))
    return {**scores, "train_seconds": train_seconds, "predict_seconds": predict_seconds,
            "epochs": "", "params": ""}


def run_tsk(data, backbone: str, seed: int, progress: bool) -> dict:
    model = tsk.Classifier(backbone, random_state=seed, enable_progress_bar=progress)
    model.fit(data.X_train, data.y_train)
    begun = time.perf_counter()
    scores = model.evaluate(data.X_test, data.y_test)
    predict_seconds = time.perf_counter() - begun
    return {**scores, "train_seconds": model.fit_summary_.train_seconds,
            "predict_seconds": predict_seconds, "epochs": model.fit_summary_.epochs,
            "params": sum(p.numel() for p in model.net_.parameters())}


def run_cell(cell: tuple[str, str, int, str | None]) -> dict:
    """One (dataset, model, seed) cell, fit and scored; its CSV row."""
    name, model, seed, data_dir = cell
    data = load_classification(name, data_dir)
    torch.manual_seed(seed)
    result = run_minirocket(data, seed) if model == "minirocket" else run_tsk(data, model, seed, False)
    return {
        "dataset": name, "model": model, "seed": seed,
        **{k: result[k] for k in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")},
        "train_seconds": round(result["train_seconds"], 2),
        "predict_seconds": round(result["predict_seconds"], 2),
        "epochs": result["epochs"], "params": result["params"],
        "n_train": len(data.y_train), "n_test": len(data.y_test), "machine": machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "tsk": tsk.__version__, "date": dt.date.today().isoformat(),
    }


def _worker_setup(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-fit banners


def run(args: argparse.Namespace) -> None:
    """Every cell not yet recorded, in `args.workers` processes of `args.threads` threads each
    (small models on short series use a second thread poorly: two one-thread fits at once get
    more done on two cores than one fit on both)."""
    recorded = done(args.out)
    models = (["minirocket"] if args.minirocket else []) + list(args.backbones)
    cells = [(name, model, seed, args.data_dir) for name in args.datasets for model in models
             for seed in args.seeds if (name, model, str(seed)) not in recorded]
    begun = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_worker_setup, initargs=(args.threads,)) as pool:
        for row in pool.imap_unordered(run_cell, cells):
            append_row(args.out, COLUMNS, row)
            print(f"{row['dataset']:20s} {row['model']:10s} seed {row['seed']}: accuracy "
                  f"{row['accuracy']:.3f} ({row['train_seconds']:.0f} s)", flush=True)
    minutes = (time.perf_counter() - begun) / 60
    print(f"{len(cells)} cells in {minutes:.1f} minutes of wall time")
    if cells:
        new = not RUNS.is_file()
        with RUNS.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["date", "cells", "workers", "threads", "wall_minutes", "machine"])
            writer.writerow([dt.date.today().isoformat(), len(cells), args.workers, args.threads,
                             round(minutes, 1), machine()])


# ---- the report ---------------------------------------------------------------------------
def render(results: pd.DataFrame, anchors: pd.DataFrame) -> str:
    """Accuracy (%) per dataset: each model's mean ± std over seeds, MiniRocket as run here, the
    published figures, and whether the best tsk backbone meets the targets."""
    published = anchors[anchors.task == "classification"].pivot_table(
        index="dataset", columns="model", values="value", aggfunc="first")
    models = [m for m in BACKBONES if m in set(results.model)]
    lines = [
        "| dataset | " + " | ".join(models) + " | MiniRocket (here) | best tsk - MiniRocket | "
        "MiniRocket (pub.) | 1-NN DTW (pub.) | 1-NN ED (pub.) | InceptionTime (pub.) |",
        "|---" * (len(models) + 7) + "|",
    ]
    within, above_dtw, counted = 0, 0, 0
    for name in [d for d in CLASSIFICATION_NAMES if d in set(results.dataset)]:
        part = results[results.dataset == name]
        cells, means = [], {}
        for model in [*models, "minirocket"]:
            acc = 100 * part[part.model == model].accuracy
            means[model] = acc.mean() if len(acc) else float("nan")
            cells.append(f"{acc.mean():.1f} ± {acc.std(ddof=0):.1f} ({len(acc)})" if len(acc) else "")
        best_model = max(models, key=lambda m: -np.inf if np.isnan(means[m]) else means[m])
        gap = means[best_model] - means["minirocket"]
        pub = published.loc[name] if name in published.index else pd.Series(dtype=float)
        dtw = pub.get("1-NN DTW", float("nan"))
        counted += 1
        within += bool(gap >= -2.0)
        above_dtw += bool(means[best_model] >= dtw)
        cells[models.index(best_model)] = f"**{cells[models.index(best_model)]}**"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {gap:+.1f} ({best_model}) | "
                     + " | ".join(_pub(pub, m) for m in ("MiniRocket", "1-NN DTW", "1-NN ED",
                                                         "InceptionTime")) + " |")
    lines += ["", f"Best tsk backbone within 2 points of MiniRocket (as run here): {within} of "
              f"{counted} sets; at or above 1-NN DTW (published): {above_dtw} of {counted}."]
    return "\n".join(lines)


def other_metrics(results: pd.DataFrame) -> str:
    """Balanced accuracy, macro F1 (%) and log-loss, mean over seeds, of every model."""
    means = results.groupby(["dataset", "model"])[["balanced_accuracy", "f1_macro", "log_loss"]].mean()
    models = [m for m in ["minirocket", *BACKBONES] if m in set(results.model)]
    lines = ["| dataset | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for name in [d for d in CLASSIFICATION_NAMES if d in set(results.dataset)]:
        cells = []
        for model in models:
            if (name, model) not in means.index:
                cells.append("")
                continue
            row = means.loc[(name, model)]
            cells.append(f"{100 * row.balanced_accuracy:.1f} / {100 * row.f1_macro:.1f} / "
                         f"{row.log_loss:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pub(row: pd.Series, model: str) -> str:
    value = row.get(model, float("nan"))
    return "" if pd.isna(value) else f"{value:.1f}"


def timing(results: pd.DataFrame) -> str:
    table = results.groupby(["dataset", "model"]).train_seconds.mean().unstack("model")
    order = [m for m in ["minirocket", *BACKBONES] if m in table.columns]
    table = table[order].reindex([d for d in CLASSIFICATION_NAMES if d in table.index])
    lines = ["| dataset | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    total = results.train_seconds.sum() + results.predict_seconds.sum()
    lines.append(f"\nFit + predict time of all cells together: {total / 60:.1f} minutes.")
    if RUNS.is_file():
        runs = pd.read_csv(RUNS)
        lines.append("Wall time of the runs that recorded them: " + "; ".join(
            f"{r.cells} cells in {r.wall_minutes} min ({r.workers} workers x {r.threads} thread, "
            f"{r.date})" for r in runs.itertuples()) + ".")
    return "\n".join(lines)


def write_report(results_path: Path, report_path: Path) -> None:
    results = pd.read_csv(results_path)
    anchors = pd.read_csv(ANCHORS)
    machines = ", ".join(sorted(set(results.machine)))
    dates = sorted(set(results.date))
    text = (
        "# Time-series classification (archives' train/test splits)\n\n"
        f"Produced by `benchmarks/classification.py` on {machines}, torch "
        f"{', '.join(sorted(set(results.torch)))}, {dates[0]} to {dates[-1]}. tsk's backbones run "
        "at `tsk.Classifier`'s defaults (d_model 64, 2 layers, mean pooling, AdamW 1e-2 cosine, "
        "~400 steps on all training series below 200 series, else early stopping on a stratified "
        "20%); MiniRocket is aeon's, run in the same script. Test accuracy (%), mean ± std over "
        "seeds (count in brackets); published figures from benchmarks/anchors.csv.\n\n"
        f"{render(results, anchors)}\n\n## Balanced accuracy (%) / macro F1 (%) / log-loss, mean over "
        f"seeds\n\n{other_metrics(results)}\n\n## Fit seconds (mean over seeds)\n\n{timing(results)}\n"
    )
    report_path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CLASSIFICATION_NAMES))
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--no-minirocket", dest="minirocket", action="store_false")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2, help="cells fit at once (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--report", action="store_true", help="only render the markdown report")
    args = parser.parse_args(argv)
    if not args.report:
        run(args)
    write_report(args.out, REPORT if args.out == RESULTS else args.out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
