"""Training throughput of each backbone's default `Forecaster` on ETTm1-96 shapes, side by side
with an earlier tsk (before/after a change) and with neuralforecast's PatchTST and DLinear.

Every measurement runs in its own process, one at a time (two on 2 cores slow each other), in
rounds of before, after, peers for each backbone; the median of `--repeats` rounds is recorded
(single runs of the same code on this machine differ by up to 25%):

- tsk: `Forecaster(backbone, horizon=96)` at its defaults (lookback 336, patches for the
  generic head, channel-independent, and the batch those rows get: 64) on ETTm1's TSLib
  training rows (34,560 x 7),
  `--steps` training steps after `--warmup`; windows per second = batch x steps / seconds
  between the first timed step's start and the last one's end (data loading included; the
  ridge start and validation are not). `--before PATH` imports tsk from another checkout (e.g. a
  `git worktree` of the commit before the change).
- peers (`--peer-python`: an environment with neuralforecast, never a tsk dependency): PatchTST
  and DLinear at their defaults with h=96, input_size=336 on the same rows as 7 univariate
  series; a step draws `windows_batch_size` (1024) windows.

An epoch of the default fit on a 36,000 x 21 series (the size the issue names: ~28,400 training
windows per channel, 21 channels) is estimated from the windows per second; that series' default
batch is 256 (`batch_size=None`), which `--after-batch-sizes 256` times.
`--after-patch-strides 16` also times patches that do not overlap (`patch_stride=16`), at each of
those batches.

    uv run python benchmarks/throughput.py --data-dir DATA --before /tmp/tsk-before \\
        --peer-python /tmp/nfenv/.venv/bin/python
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "throughput.csv"
# test accuracy of the same versions' default fits (benchmarks/accuracy.py rows with a version)
ACCURACY = RESULTS.with_name("throughput_accuracy.csv")
COLUMNS = ["model", "version", "windows_per_s", "ms_per_step", "batch", "steps", "params",
           "epoch_36k_x21_s", "machine", "torch", "date", "run"]
WINDOWS_36K_X21 = (round(0.8 * 36000) - 336 - 96 + 1) * 21
ETTM1_TRAIN_ROWS = 12 * 30 * 24 * 4


def ettm1_train(data_dir: str):
    """ETTm1's TSLib training rows as a wide frame (`ds` + 7 channels)."""
    import pandas as pd

    root = Path(data_dir)
    candidates = [root / folder / f"ETTm1.csv{suffix}" for folder in ("forecasting/ETT-small",
                                                                       "ETT-small")
                  for suffix in ("", ".gz")]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"ETTm1.csv not found under {root} (tried {candidates}).")
    frame = pd.read_csv(path, parse_dates=["date"])
    return frame.iloc[:ETTM1_TRAIN_ROWS].rename(columns={"date": "ds"})


def step_clock(callback_base: type) -> tuple[object, dict[str, list[float]]]:
    """A Lightning callback (of `callback_base`: tsk's Lightning or neuralforecast's) noting when
    each training step starts and ends, and the lists it fills (shared, so copies of the
    callback made by the fit still report)."""
    times: dict[str, list[float]] = {"starts": [], "ends": []}

    class Clock(callback_base):
        def on_train_batch_start(self, *_: object) -> None:
            times["starts"].append(time.perf_counter())

        def on_train_batch_end(self, *_: object) -> None:
            times["ends"].append(time.perf_counter())

    return Clock(), times


def measure_tsk(args: argparse.Namespace) -> dict:
    """Train `args.steps + args.warmup` steps of the default Forecaster and time the last ones."""
    import torch
    from lightning.pytorch.callbacks import Callback

    import tsk

    clock, times = step_clock(Callback)
    steps = args.steps + args.warmup
    options = {name: value for name, value in (("batch_size", args.batch_size),
                                               ("patch_stride", args.patch_stride))
               if value is not None}  # the defaults otherwise
    model = tsk.Forecaster(args.model, horizon=96, max_epochs=1, enable_progress_bar=False,
                           random_state=0, **options, trainer_kwargs={"limit_train_batches": steps,
                                                           "limit_val_batches": 1,
                                                           "callbacks": [clock]})
    model.fit(ettm1_train(args.data_dir))
    seconds = times["ends"][-1] - times["starts"][args.warmup]
    batch_size = getattr(model, "batch_size_", model.batch_size)  # earlier tsk: no `batch_size_`
    return {"windows_per_s": batch_size * args.steps / seconds,
            "ms_per_step": 1000 * seconds / args.steps, "batch": batch_size,
            "params": sum(p.numel() for p in model.net_.parameters()), "torch": torch.__version__}


def measure_peer(args: argparse.Namespace) -> dict:
    """neuralforecast's model `args.model` at its defaults (h=96, input_size=336)."""
    import logging

    import torch
    from neuralforecast import NeuralForecast, models
    from pytorch_lightning.callbacks import Callback  # neuralforecast's Lightning

    logging.disable(logging.WARNING)

    clock, times = step_clock(Callback)
    wide = ettm1_train(args.data_dir)
    long = wide.melt(id_vars="ds", var_name="unique_id", value_name="y")
    steps = args.steps + args.warmup
    model = getattr(models, args.model)(h=96, input_size=336, max_steps=steps,
                                        enable_progress_bar=False, callbacks=[clock],
                                        logger=False, enable_model_summary=False)
    NeuralForecast(models=[model], freq="15min").fit(long)
    seconds = times["ends"][-1] - times["starts"][args.warmup]
    windows = model.windows_batch_size
    return {"windows_per_s": windows * args.steps / seconds,
            "ms_per_step": 1000 * seconds / args.steps, "batch": windows,
            "params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}


def timed_steps(kind: str, args: argparse.Namespace) -> int:
    """Steps timed per measurement: `--peer-steps` for a peer when given, else `--steps`."""
    return args.peer_steps if kind == "peer" and args.peer_steps else args.steps


def run(python: str, kind: str, model: str, args: argparse.Namespace,
        tsk_root: str | None = None, batch_size: int | None = None,
        patch_stride: int | None = None) -> dict:
    """One measurement in a fresh process (its tsk from `tsk_root` when given)."""
    env = dict(os.environ)
    if tsk_root is not None:
        env["PYTHONPATH"] = tsk_root
    command = [python, __file__, "--measure", kind, "--model", model, "--data-dir", args.data_dir,
               "--steps", str(timed_steps(kind, args)), "--warmup", str(args.warmup)]
    if kind == "tsk" and batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    if kind == "tsk" and patch_stride is not None:
        command += ["--patch-stride", str(patch_stride)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_page(path: Path = RESULTS) -> Path:
    """results/throughput.md from the CSV: each model's windows per second per version, and the
    ratio of each row to the first row of that model in the same run (`run`: the rounds that were
    timed together; rows from different runs ran on different days or machines and are not
    compared)."""
    import csv

    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    lines = ["# Training throughput", "",
             "`Forecaster(backbone, horizon=96)` on ETTm1's training rows (lookback 336, "
             "channel-independent; batch 64, the default, unless the row says otherwise), windows "
             "per second of training (data loading included), median of repeated rounds; "
             "neuralforecast's models at their defaults (h=96, input_size=336, 1024 windows a "
             "step) on the same rows (`benchmarks/throughput.py`). The 36k x 21 column estimates "
             "one epoch of the default fit on a 36,000-row, 21-channel series from that rate. "
             "\"vs first\": against the first row of the same model in the same run.", "",
             "| model | version | batch | windows/s | ms/step | vs first | 36k x 21 epoch (s) | "
             "params | run | machine |", "|---|---|---|---|---|---|---|---|---|---|"]
    first: dict[tuple[str, str], float] = {}
    for row in rows:
        rate = float(row["windows_per_s"])
        run = row.get("run") or row["date"]
        base = first.setdefault((row["model"], run), rate)
        lines.append(f"| {row['model']} | {row['version']} | {row['batch']} | {rate:.0f} "
                     f"| {row['ms_per_step']} | {rate / base:.2f}x | {row['epoch_36k_x21_s']} "
                     f"| {row['params']} | {run} | {row['machine']}, torch {row['torch']} |")
    if ACCURACY.is_file():
        with ACCURACY.open() as handle:
            fits = list(csv.DictReader(handle))
        lines += ["", "## Test accuracy of the same versions", "",
                  "`benchmarks/accuracy.py` under the TSLib protocol at the Forecaster's defaults "
                  "(s4d, batch 64, max_epochs 20, patience 3; lookback 336, ILI 104), one seed. "
                  "\"start kept\": no epoch beat the ridge start on validation, so the number is "
                  "the ridge regression's.", "",
                  "| dataset | horizon | version | MSE | MAE | epochs | train seconds | start kept |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['horizon']} | {r['version']} | {r['mse']} | {r['mae']} "
                  f"| {r['epochs']} | {r['train_seconds']} | {r['start_kept']} |" for r in fits]
    page = path.with_suffix(".md")
    page.write_text("\n".join(lines) + "\n")
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TSK_DATA_DIR", "../shared/data"))
    parser.add_argument("--backbones", nargs="+",
                        default=["s4d", "s4", "mamba", "lstm", "pgn", "spacetime", "tpgn"])
    parser.add_argument("--peers", nargs="*", default=["PatchTST", "DLinear"])
    parser.add_argument("--before", default=None, help="a checkout of the earlier tsk")
    parser.add_argument("--before-name", default="before")
    parser.add_argument("--after-name", default="after")
    parser.add_argument("--peer-python", default=None, help="a Python with neuralforecast")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--peer-steps", type=int, default=None,
                        help="timed steps of each peer (default: --steps; PatchTST's take ~4 s)")
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--after-batch-sizes", nargs="*", type=int, default=[],
                        help="also time the after version at these batch sizes (rows record "
                             "the batch; the default Forecaster's is always timed)")
    parser.add_argument("--after-patch-strides", nargs="*", type=int, default=[],
                        help="also time the newer tsk with patches this many steps apart, at "
                             "its default batch and each of --after-batch-sizes")
    parser.add_argument("--patch-stride", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of every measurement (the median is recorded)")
    parser.add_argument("--measure", choices=["tsk", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        result = measure_tsk(args) if args.measure == "tsk" else measure_peer(args)
        print(json.dumps(result))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from results_io import append_row, machine

    jobs = []  # (python, kind, model, version, tsk checkout, batch size, patch stride)
    batches = [None, *args.after_batch_sizes]
    for backbone in args.backbones:
        if args.before is not None:
            jobs.append((sys.executable, "tsk", backbone, args.before_name, args.before, None, None))
        jobs += [(sys.executable, "tsk", backbone, args.after_name, None, batch, None)
                 for batch in batches]
        jobs += [(sys.executable, "tsk", backbone, f"{args.after_name}, patch stride {stride}",
                  None, batch, stride) for stride in args.after_patch_strides for batch in batches]
    if args.peer_python:
        jobs += [(args.peer_python, "peer", peer, "neuralforecast", None, None, None)
                 for peer in args.peers]
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rounds: dict[tuple, list[dict]] = {}
    for _ in range(args.repeats):  # whole rounds: a slow spell of the machine hits every job
        for job in jobs:
            rounds.setdefault(job, []).append(run(*job[:3], args, *job[4:]))
    for (_, kind, model, version, *_), results in rounds.items():
        row = {"model": model, "version": version, "steps": timed_steps(kind, args),
               "machine": machine(),
               "date": dt.date.today().isoformat(), "run": started}
        failed = [r["error"] for r in results if "error" in r]
        if failed:
            print(f"{model} ({version}): failed: {failed[0]}", flush=True)
            continue
        result = sorted(results, key=lambda r: r["windows_per_s"])[len(results) // 2]
        row.update({key: result[key] for key in ("batch", "params", "torch")})
        row["windows_per_s"] = round(result["windows_per_s"], 1)
        row["ms_per_step"] = round(result["ms_per_step"], 2)
        row["epoch_36k_x21_s"] = round(WINDOWS_36K_X21 / result["windows_per_s"], 1)
        append_row(RESULTS, COLUMNS, row)
        print(f"{model:10s} {version:15s} {row['windows_per_s']:9.1f} windows/s "
              f"{row['ms_per_step']:8.2f} ms/step (batch {row['batch']}); a 36k x 21 epoch "
              f"~{row['epoch_36k_x21_s']:.0f} s", flush=True)
    if RESULTS.is_file():
        write_page()


if __name__ == "__main__":
    main()
