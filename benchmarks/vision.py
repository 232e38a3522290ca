"""tsk's timm image models on MNIST digits on a CPU budget: the cross-scan classifier with S4D,
Mamba and LSTM scanners, trained the timm way (`timm.create_model`, `create_optimizer_v2`,
`create_scheduler_v2`, the model's own data config), accuracy and seconds per epoch recorded.

The data: the 10,000 MNIST test digits (the only MNIST images stored for this project), the
first 8,000 for training and the last 2,000 for testing (the fixed split of smnist.py; not the
standard 60k/10k). Each model: 28 x 28 inputs, patch 4 (a 7 x 7 grid, 49 tokens), embed_dim 32,
depth 2, the four scan orders, a 3 x 3 depthwise convolution, mlp_ratio 2; AdamW (lr 3e-3,
weight decay 0.05, no decay on the position embedding and S4D's SSM parameters), a cosine
schedule per step, batch 32, 4 epochs, seed 0, one torch thread. After every epoch the model is
scored on the 2,000 test digits (the fit never sees them). Results go to
benchmarks/results/vision.csv (one row per epoch) and vision.md.

    uv run python benchmarks/vision.py --data-dir DATA   # ~7 min on a 2-core CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import timm.data
import timm.optim
import timm.scheduler
import torch
import torch.nn.functional as F
from results_io import append_row, last_epoch_lines, machine, run_in_workers

import tsk
import tsk.vision  # noqa: F401  (registers the tsk_* models with timm)
from tsk.datasets import load_mnist_digits

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "vision.csv"
REPORT = HERE / "results" / "vision.md"
COLUMNS = ["model", "seed", "epoch", "train_seconds", "seconds_per_epoch", "test_accuracy",
           "params", "img_size", "patch_size", "embed_dim", "depth", "batch_size", "lr", "machine",
           "threads", "torch", "timm", "tsk", "date"]
MODELS = ["tsk_s4d_tiny", "tsk_mamba_tiny", "tsk_lstm_tiny"]
N_TRAIN = 8000
SETTINGS = dict(img_size=28, patch_size=4, embed_dim=32, depth=2)
BATCH, LR, WEIGHT_DECAY = 32, 3e-3, 0.05


def load_split(root: str | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images `[n, 1, 28, 28]` in [0, 1] and labels: the first 8,000 digits train, the rest test."""
    images, labels = load_mnist_digits(root)
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    y = torch.from_numpy(labels)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((predicted == y).float().mean())


def run(name: str, seed: int, epochs: int, root: str | None, out: Path) -> None:
    x, y, x_test, y_test = load_split(root)
    torch.manual_seed(seed)
    model = timm.create_model(name, num_classes=10, in_chans=1, **SETTINGS)
    config = timm.data.resolve_data_config({}, model=model)  # mean / std 0.5 for one channel
    mean = torch.tensor(config["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(config["std"]).view(1, -1, 1, 1)
    x, x_test = (x - mean) / std, (x_test - mean) / std
    steps_per_epoch = -(-len(x) // BATCH)
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler, _ = timm.scheduler.create_scheduler_v2(
        optimizer, "cosine", num_epochs=epochs * steps_per_epoch, step_on_epochs=False,
        updates_per_epoch=1)
    params = sum(p.numel() for p in model.parameters())
    trained, step = 0.0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), BATCH):
            batch = order[i:i + BATCH]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.step_update(step)
        seconds = time.perf_counter() - start
        trained += seconds
        score = accuracy(model, x_test, y_test)
        row = {"model": name, "seed": seed, "epoch": epoch, "train_seconds": round(trained, 1),
               "seconds_per_epoch": round(seconds, 1), "test_accuracy": score, "params": params,
               **SETTINGS, "batch_size": BATCH, "lr": LR, "machine": machine(),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "timm": timm.__version__, "tsk": tsk.__version__, "date": dt.date.today().isoformat()}
        append_row(out, COLUMNS, row)
        print(f"{name:15s} epoch {epoch}  {seconds:6.1f} s  loss {loss.item():.3f}  test accuracy "
              f"{score:.4f}", flush=True)


def write_report(results_path: Path, report_path: Path) -> None:
    results = pd.read_csv(results_path)
    first = results.iloc[0]
    lines = [
        "# tsk's timm image models on MNIST digits (CPU)", "",
        f"Produced by `benchmarks/vision.py` on {', '.join(sorted(set(results.machine)))}, torch "
        f"{', '.join(sorted(set(results.torch)))}, timm {', '.join(sorted(set(results.timm)))}, "
        f"{', '.join(sorted(set(results.date)))}. Train: the first {N_TRAIN:,} of the 10,000 MNIST "
        "test digits; test: the last 2,000 (a fixed split of the test digits, the only ones "
        "stored here: not the standard 60k/10k). Each model built with `timm.create_model(name, "
        f"num_classes=10, in_chans=1, img_size={first.img_size}, patch_size={first.patch_size}, "
        f"embed_dim={first.embed_dim}, depth={first.depth})`: a "
        f"{first.img_size // first.patch_size} x {first.img_size // first.patch_size} grid, the "
        "four scan orders (VMamba's cross-scan), a 3 x 3 depthwise convolution, mlp_ratio 2; "
        f"timm's AdamW (lr {first.lr}, weight decay {WEIGHT_DECAY}), cosine per step, batch "
        f"{first.batch_size}, seed {first.seed}, {first.threads} torch thread(s), normalized with "
        "the model's `resolve_data_config` (mean = std = 0.5). Test accuracy (%) after each "
        "epoch; seconds are training only.", "",
        "| model | params | epoch | seconds / epoch | test accuracy |", "|---|---|---|---|---|",
    ]
    for name, runs in results.groupby("model", sort=False):
        for _, row in runs.iterrows():
            lines.append(f"| {name} | {row.params:,} | {row.epoch} | {row.seconds_per_epoch:.1f} | "
                         f"{100 * row.test_accuracy:.2f} |")
    lines += last_epoch_lines(results, "model")
    report_path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=timm.list_models("tsk_*"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--report", action="store_true", help="only render the markdown report")
    args = parser.parse_args(argv)
    if not args.report:
        recorded = set()
        if args.out.is_file():
            recorded = {(r.model, r.seed) for r in pd.read_csv(args.out).itertuples()}
        runs = [(name, args.seed, args.epochs, args.data_dir, args.out) for name in args.models
                if (name, args.seed) not in recorded]
        run_in_workers(run, runs, args.workers, args.threads)
    write_report(args.out, REPORT if args.out == RESULTS else args.out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
