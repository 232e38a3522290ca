"""Video prediction on Moving MNIST: `VideoPredictor` with ConvS5 against the ConvLSTM baseline,
in one harness (the same encoder/decoder, training loop, data and budget), recorded to
benchmarks/results/video*.csv and rendered to benchmarks/results/video.md.

Data (`tsk.datasets.moving_mnist`): two digits bouncing on a `--size` canvas (32 by default, digits
14x14: the standard geometry at half scale, to fit the CPU budget; the paper's is 64), training
videos of 20 frames from the training pool of digits, test videos from the held-out pool with
the test split's fixed seed. Long test videos of 100 frames score long rollouts.

Models: ConvS5 (4 layers, d_model 64, d_state 64) and ConvLSTM (2 layers, d_model 64): the
backbones have about the same number of parameters (ConvLSTM's layer is twice ConvS5's); both
behind the authors' encoder/decoder at latent stride 4 (32x32 -> 8x8), AdamW at 1e-3 with a
cosine schedule, batch 8, `--steps` optimizer steps, 5% of the training videos held out to keep
the best of ten validations. Beside them, the copy-last-frame baseline.

Scores (`VideoPredictor.evaluate`, frames in [0, 1]): per-frame MSE (summed over pixels), PSNR
and SSIM, conditioning on 10 frames and predicting 10, and conditioning on 20 and predicting 80
(past the 20 frames the models were trained on). Speed: training sequences per second (forward,
backward and step, batch 8) and generation frames per second (batch 8, one step per frame) at 20
and 100 frames.

    uv run python benchmarks/video.py            # about 45 minutes on a 2-core CPU
    uv run python benchmarks/video.py --report
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from results_io import append_row, machine

import tsk
from tsk.datasets import moving_mnist
from tsk.metrics import video_scores

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SCORES_CSV = RESULTS / "video.csv"
SPEED_CSV = RESULTS / "video_speed.csv"
REPORT = RESULTS / "video.md"
RUN = ["machine", "threads", "torch", "tsk", "date"]
SCORE_COLUMNS = ["model", "parameters", "backbone_parameters", "size", "train_videos", "steps",
                 "train_seconds", "task", "context", "predicted", "mse", "psnr", "ssim",
                 "mse_per_step", "ssim_per_step", *RUN]
SPEED_COLUMNS = ["model", "size", "frames", "batch", "train_sequences_per_s",
                 "generate_frames_per_s", *RUN]
MODELS = {
    "convs5": {"d_model": 64, "n_layers": 4, "backbone_kwargs": {"d_state": 64}},
    "convlstm": {"d_model": 64, "n_layers": 2},
}
TASKS = {"10 -> 10": (10, "test"), "20 -> 80": (20, "long")}


def run_info() -> dict:
    return {"machine": machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "tsk": tsk.__version__, "date": dt.date.today().isoformat()}


def estimator(name: str, steps: int, seed: int = 0) -> tsk.VideoPredictor:
    return tsk.VideoPredictor(name, **MODELS[name], latent_stride=4, batch_size=8, max_epochs=1000,
                              max_steps=steps, patience=10, validation_size=0.05,
                              enable_progress_bar=False, random_state=seed)


def speed(name: str, size: int, frames: int, batch: int = 8, repeats: int = 3) -> dict:
    """Training sequences/s and generation frames/s of one model at `frames` frames."""
    model = estimator(name, 1)
    videos = moving_mnist(batch, frames, size=size, split="test", seed=3)
    model.fit(videos[:, :2], validation_data=None)  # builds the network for this frame size
    net = model.net_.train()
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.as_tensor(videos).float() / 255 * 2 - 1
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = net.loss(net(x[:, :-1]), {"targets": x[:, 1:]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    net.eval()
    with torch.inference_mode():
        start = time.perf_counter()
        net.generate(x[:, :1], frames)
        generate = time.perf_counter() - start
    return {"model": name, "size": size, "frames": frames, "batch": batch,
            "train_sequences_per_s": round(batch / float(np.median(times)), 3),
            "generate_frames_per_s": round(batch * frames / generate, 1), **run_info()}


def last_frame_scores(videos: np.ndarray, context: int) -> dict:
    truth = videos[:, context:].astype(np.float32) / 255
    copy = np.repeat(videos[:, context - 1: context], videos.shape[1] - context, axis=1) / 255
    return video_scores(truth, copy.astype(np.float32))


def score_row(model: str, task: str, scores: dict, **extra) -> dict:
    context, split = TASKS[task]
    per_step = {key: json.dumps([round(v, 4) for v in scores[f"{key}_per_step"]])
                for key in ("mse", "ssim")}
    return {"model": model, "task": task, "context": context,
            "predicted": len(scores["mse_per_step"]), "mse": round(scores["mse"], 3),
            "psnr": round(scores["psnr"], 3), "ssim": round(scores["ssim"], 4),
            "mse_per_step": per_step["mse"], "ssim_per_step": per_step["ssim"], **extra,
            **run_info()}


def main(args: argparse.Namespace) -> None:
    logging.getLogger("lightning").setLevel(logging.ERROR)
    if "speed" in args.parts:
        for name in MODELS:
            for frames in (20, 100):
                append_row(SPEED_CSV, SPEED_COLUMNS, speed(name, args.size, frames))
    data = {"test": moving_mnist(args.test, 20, size=args.size, split="test"),
            "long": moving_mnist(args.long_test, 100, size=args.size, split="test", seed=2)}
    if "scores" in args.parts:
        for task, (context, split) in TASKS.items():
            append_row(SCORES_CSV, SCORE_COLUMNS, score_row(
                "last frame", task, last_frame_scores(data[split], context), size=args.size))
        train = moving_mnist(args.train, 20, size=args.size, split="train")
        for name in args.models:
            model = estimator(name, args.steps).fit(train)
            net = model.net_
            extra = {"parameters": sum(p.numel() for p in net.parameters()),
                     "backbone_parameters": sum(p.numel() for p in net.backbone.parameters()),
                     "size": args.size, "train_videos": args.train,
                     "steps": args.steps, "train_seconds": round(model.fit_summary_.train_seconds)}
            for task, (context, split) in TASKS.items():
                append_row(SCORES_CSV, SCORE_COLUMNS,
                           score_row(name, task, model.evaluate(data[split], context), **extra))
    report()


def report() -> None:
    """benchmarks/results/video.md from the CSVs."""
    lines = ["# Video prediction: Moving MNIST", "",
             "Written by `benchmarks/video.py` (its docstring says what runs). Frames in [0, 1]; "
             "MSE per frame summed over pixels; lower MSE, higher PSNR and SSIM are better.", "",
             "Not the paper's setting: the paper trains on 64x64 videos of 300 frames for 300,000 "
             "steps (batch 8, d_model 256, 8 layers) and scores rollouts of 400-1,200 frames after "
             "100; this CPU run trains on 32x32 videos of 20 frames for the steps below, one "
             "seed, and its digits come from the MNIST test set (see `tsk.datasets.mnist`), so "
             "the numbers compare the two models with each other and with copying the last "
             "frame, not with the paper's tables.", ""]
    if SCORES_CSV.is_file():
        rows = list(csv.DictReader(SCORES_CSV.open()))
        lines += ["| model | parameters (backbone) | task | MSE | PSNR | SSIM | steps | train s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            params = (f"{int(r['parameters']):,} ({int(r['backbone_parameters']):,})"
                      if r["parameters"] else "")
            lines.append(f"| {r['model']} | {params} | {r['task']} | {r['mse']} | {r['psnr']} | "
                         f"{r['ssim']} | {r['steps']} | {r['train_seconds']} |")
        first = rows[0]
        lines += ["", f"Canvas {first['size']}x{first['size']}; run on {first['machine']}, "
                  f"{first['threads']} threads, torch {first['torch']}, tsk {first['tsk']}, "
                  f"{first['date']}.", ""]
        lines += ["Per predicted step (MSE), 20 -> 80:", ""]
        for r in rows:
            if r["task"] == "20 -> 80":
                curve = json.loads(r["mse_per_step"])
                marks = ", ".join(f"t+{i + 1}: {curve[i]:.1f}" for i in (0, 9, 19, 39, 59, 79)
                                  if i < len(curve))
                lines.append(f"- {r['model']}: {marks}")
        lines.append("")
    if SPEED_CSV.is_file():
        rows = list(csv.DictReader(SPEED_CSV.open()))
        lines += ["## Speed", "", "| model | canvas | frames | train sequences/s | generated "
                  "frames/s |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['size']} | {r['frames']} | "
                         f"{r['train_sequences_per_s']} | {r['generate_frames_per_s']} |")
        first = rows[0]
        lines += ["", f"Batch {first['batch']}; run on {first['machine']}, {first['threads']} "
                  f"threads, torch {first['torch']}, {first['date']}.", ""]
        rate = {(r["model"], r["frames"]): float(r["train_sequences_per_s"]) for r in rows}
        ratios = [f"{rate['convs5', f] / rate['convlstm', f]:.2f}x at {f} frames"
                  for f in sorted({r["frames"] for r in rows}, key=int)
                  if ("convs5", f) in rate and ("convlstm", f) in rate]
        if ratios:
            lines += [f"ConvS5's training speed over ConvLSTM's: {', '.join(ratios)} (the paper "
                      "reports 3x on a GPU at 64x64 and long sequences, where the parallel scan "
                      "has a long time axis to work on; benchmarks/anchors.csv).", ""]
    REPORT.write_text("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["speed", "scores"],
                        choices=["speed", "scores"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--train", type=int, default=4000, help="training videos (20 frames)")
    parser.add_argument("--test", type=int, default=256, help="test videos (20 frames)")
    parser.add_argument("--long-test", type=int, default=64, help="test videos of 100 frames")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps per model")
    parser.add_argument("--report", action="store_true", help="only render video.md")
    arguments = parser.parse_args()
    if arguments.report:
        report()
    else:
        main(arguments)
