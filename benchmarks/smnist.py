"""Sequential and permuted sequential MNIST on a CPU budget: S4D against an LSTM, each trained for
the same wall-clock time, accuracy recorded against training time.

The data: the 10,000 MNIST test digits (the only MNIST images stored for this project), split
once into the first 8,000 for training and the last 2,000 for testing (a fixed split, not the
standard 60k/10k: the published figures, trained on 60,000 digits on GPUs, are not comparable
one to one). Each digit is a sequence of 784 pixels (row by row; "permuted": one fixed random
permutation of the pixels, seed 0). The classifiers are `tsk.Classifier` at its defaults except
the budget: the epochs that fit `--minutes` of training on this machine (measured on the first
steps), trained on all 8,000 digits, two runs side by side on one core each (`--workers`);
after every epoch the weights are kept, and afterwards each epoch's weights are scored on the
2,000 test digits (the fit never sees them). Results go to benchmarks/results/smnist.csv (one
row per epoch) and smnist.md.

    uv run python benchmarks/smnist.py --tasks sequential permuted --backbones s4d lstm --minutes 20
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from results_io import append_row, last_epoch_lines, machine, run_in_workers

import tsk
from tsk.datasets.files import data_root

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "smnist.csv"
REPORT = HERE / "results" / "smnist.md"
COLUMNS = ["task", "backbone", "seed", "epoch", "train_seconds", "test_accuracy", "max_epochs",
           "params", "machine", "threads", "torch", "tsk", "date"]
ANCHORS = HERE / "anchors.csv"  # the published figures (S4 paper, Table 6: 60k digits, GPUs)
N_TRAIN = 8000


def load_digits(root: str | None, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`[n, 784]` pixel sequences in [0, 1] and labels: the first 8,000 digits train, the rest test."""
    path = data_root(root) / "spatiotemporal" / "mnist" / "mnist_test.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the MNIST test digits (t10k) as an npz with "
                                "x [10000, 28, 28] uint8 and y [10000] (http://yann.lecun.com/exdb/mnist/).")
    with np.load(path) as data:
        pixels = data["x"].reshape(len(data["x"]), -1).astype(np.float32) / 255.0
        labels = data["y"].astype(np.int64)
    if task == "permuted":
        pixels = pixels[:, np.random.default_rng(0).permutation(pixels.shape[1])]
    return pixels[:N_TRAIN], labels[:N_TRAIN], pixels[N_TRAIN:], labels[N_TRAIN:]


class KeepEpochs(L.Callback):
    """After each training epoch: a copy of the weights and the training seconds so far."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[int, float, dict]] = []
        self.seconds, self._since = 0.0, None

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._since = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seconds += time.perf_counter() - self._since
        state = copy.deepcopy({k: v.detach().cpu() for k, v in module.net.state_dict().items()})
        self.snapshots.append((trainer.current_epoch + 1, self.seconds, state))


def epochs_for(backbone: str, X: np.ndarray, y: np.ndarray, minutes: float, seed: int) -> int:
    """The epochs that fit `minutes` of training: time a short fit (30 steps) on this machine."""
    probe = tsk.Classifier(backbone, random_state=seed, enable_progress_bar=False, max_epochs=1,
                           validation_size=0.0)
    batch = probe.batch_size
    n = 30 * batch
    probe.fit(X[:n], y[:n])
    per_step = probe.fit_summary_.train_seconds / 30
    steps_per_epoch = -(-len(X) // batch)
    return max(1, int(minutes * 60 / (per_step * steps_per_epoch)))



def run(task: str, backbone: str, seed: int, minutes: float, root: str | None, out: Path) -> None:
    X, y, X_test, y_test = load_digits(root, task)
    max_epochs = epochs_for(backbone, X, y, minutes, seed)
    keep = KeepEpochs()
    model = tsk.Classifier(backbone, random_state=seed, enable_progress_bar=False,
                           max_epochs=max_epochs, validation_size=0.0,
                           trainer_kwargs={"callbacks": [keep],
                                           "max_time": {"minutes": minutes * 1.25}})
    model.fit(X, y)
    params = sum(p.numel() for p in model.net_.parameters())
    for epoch, seconds, state in keep.snapshots:
        model.net_.load_state_dict(state)
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        row = {"task": task, "backbone": backbone, "seed": seed, "epoch": epoch,
               "train_seconds": round(seconds, 1), "test_accuracy": accuracy,
               "max_epochs": max_epochs, "params": params, "machine": machine(),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "tsk": tsk.__version__, "date": dt.date.today().isoformat()}
        append_row(out, COLUMNS, row)
        print(f"{task:10s} {backbone:6s} epoch {epoch:3d} {seconds:7.0f} s  test accuracy "
              f"{accuracy:.4f}", flush=True)



def write_report(results_path: Path, report_path: Path) -> None:
    results = pd.read_csv(results_path)
    anchors = pd.read_csv(ANCHORS)
    anchors = anchors[anchors.task == "smnist"]
    lines = [
        "# Sequential and permuted sequential MNIST on a CPU budget", "",
        f"Produced by `benchmarks/smnist.py` on {', '.join(sorted(set(results.machine)))}, torch "
        f"{', '.join(sorted(set(results.torch)))}, {', '.join(sorted(set(results.date)))}. "
        f"Train: the first {N_TRAIN:,} of the 10,000 MNIST test digits; test: the last 2,000 "
        "(a fixed split of the test digits, the only ones stored here: not the standard 60k/10k). "
        "784 pixel steps, one token per pixel; `tsk.Classifier` defaults (d_model 64, 2 layers, "
        "mean pooling, AdamW 1e-2 cosine), epochs sized to the same wall-clock budget for both "
        "backbones, which train side by side, one core and one torch thread each. Test accuracy "
        "(%) of each epoch's weights against the training seconds so far.", "",
    ]
    for task, part in results.groupby("task", sort=False):
        published = ", ".join(f"{r.model} {r.value}" for r in anchors[anchors.dataset == task].itertuples())
        lines += [f"## {task} MNIST", "", f"Published (60k training digits, GPU): {published}.", "",
                  "| backbone | params | epoch | train seconds | test accuracy |",
                  "|---|---|---|---|---|"]
        for backbone, runs in part.groupby("backbone", sort=False):
            for _, row in runs.iterrows():
                lines.append(f"| {backbone} | {row.params:,} | {row.epoch} | {row.train_seconds:.0f} | "
                             f"{100 * row.test_accuracy:.2f} |")
        lines += last_epoch_lines(part, "backbone")
    report_path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["sequential", "permuted"],
                        choices=["sequential", "permuted"])
    parser.add_argument("--backbones", nargs="+", default=["s4d", "lstm"])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2,
                        help="runs at once (default 2: S4D and the LSTM side by side, one core each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--report", action="store_true", help="only render the markdown report")
    args = parser.parse_args(argv)
    if not args.report:
        recorded = set()
        if args.out.is_file():
            recorded = {(r.task, r.backbone, r.seed) for r in pd.read_csv(args.out).itertuples()}
        runs = [(task, backbone, args.seed, args.minutes, args.data_dir, args.out)
                for task in args.tasks for backbone in args.backbones
                if (task, backbone, args.seed) not in recorded]
        run_in_workers(run, runs, args.workers, args.threads)
    write_report(args.out, REPORT if args.out == RESULTS else args.out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
