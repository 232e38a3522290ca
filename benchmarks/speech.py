"""Speech on the Free Spoken Digit Dataset (3,000 clips, 6 speakers, 8 kHz): `SpeechClassifier`
and `SpeechEnhancer` against baselines run in the same script, recorded to
benchmarks/results/speech_*.csv and rendered to benchmarks/results/speech.md.

Parts (each sized to stay under 30 minutes on a 2-core CPU; two one-thread fits at a time):

- `classify`: the official split (repetitions 0-4 test: speaker-dependent) for {mel, mfcc} x
  {s4d, mamba, lstm} and the raw front end with s4d and mamba, seed 0;
- `seeds`: the best two configurations of `classify` again with seeds 1 and 2;
- `speakers`: leave-one-speaker-out (speaker-independent) with the best configuration, one fit
  per held-out speaker;
- `rates`: the raw s4d model of `classify` (trained at 8 kHz) scored at 8 kHz, at 4 kHz
  (decimated with torchaudio's band-limited resampling) and at 16 kHz (resampled up): with the
  step adapted (continuous time), read as if at 8 kHz ("ignore"), and resampled to 8 kHz;
- `enhance`: s4d and lstm enhancers x {babble, coloured noise}; clean speech of george, jackson,
  lucas and nicolas trains, theo and yweweler test (100 clips each); training babble comes from
  the training speakers' other clips, test babble from the other test speaker; SNRs uniform in
  [-5, 10] dB. Beside them, the noisy input and power spectral subtraction; PESQ (narrow-band)
  and STOI score the test clips joined end to end (`tsk.estimators.enhancer.speech_scores`).
  The s4d babble enhancer also cleans the 16 kHz PESQ reference pair (0 dB babble).

Sizes: the estimators' defaults (d_model 64, 2 layers), with the epochs bounded to fit the
budget: spectral classifiers at most 30 epochs, raw ones 8 (early stopping on a stratified 20%
of the training clips in both), enhancers 60 (on 10%; at 15 every enhancer was still improving).

    uv run python benchmarks/speech.py --parts classify seeds speakers rates enhance
    uv run python benchmarks/speech.py --report
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
from tsk.datasets import load_fsdd
from tsk.datasets.audio import resample
from tsk.datasets.noise import COLOURS, babble, coloured_noise, mix
from tsk.estimators.enhancer import speech_scores
from tsk.metrics import pesq, si_snr, stoi

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CLASSIFY_CSV = RESULTS / "speech_classification.csv"
RATES_CSV = RESULTS / "speech_rates.csv"
ENHANCE_CSV = RESULTS / "speech_enhancement.csv"
REPORT = RESULTS / "speech.md"
RUN = ["machine", "threads", "torch", "tsk", "date"]
CLASSIFY_COLUMNS = ["part", "split", "frontend", "backbone", "seed", "accuracy", "balanced_accuracy",
                    "f1_macro", "log_loss", "epochs", "train_seconds", "params", "n_train", "n_test",
                    *RUN]
RATES_COLUMNS = ["rate", "policy", "accuracy", *RUN]
ENHANCE_COLUMNS = ["noise", "method", "si_snr", "pesq", "stoi", "epochs", "train_seconds", "n_test",
                   *RUN]
SPECTRAL_EPOCHS, RAW_EPOCHS, ENHANCE_EPOCHS = 30, 8, 60
TRAIN_SPEAKERS = ("george", "jackson", "lucas", "nicolas")
TEST_SPEAKERS = ("theo", "yweweler")


def run_info() -> dict:
    return {"machine": machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "tsk": tsk.__version__, "date": dt.date.today().isoformat()}


def recorded(path: Path, keys: list[str]) -> set[tuple[str, ...]]:
    if not path.is_file():
        return set()
    with path.open() as handle:
        return {tuple(row[k] for k in keys) for row in csv.DictReader(handle)}


# ---- classification ------------------------------------------------------------------------
def classify_cell(cell: tuple) -> dict:
    """Fit one (split, frontend, backbone, seed) configuration; its CSV row. `split` is
    "official" or a held-out speaker's name."""
    part, split, frontend, backbone, seed, data_dir, models_dir = cell
    digits = load_fsdd(data_dir)
    train, test = (digits.official_split() if split == "official"
                   else digits.speaker_split(split))
    epochs = RAW_EPOCHS if frontend == "raw" else SPECTRAL_EPOCHS
    model = tsk.SpeechClassifier(backbone, frontend=frontend, max_epochs=epochs, random_state=seed,
                                 enable_progress_bar=False)
    model.fit(digits.take(train), digits.digits[train], sample_rate=digits.sample_rate)
    scores = model.evaluate(digits.take(test), digits.digits[test])
    if models_dir is not None and frontend == "raw" and backbone == "s4d" and split == "official":
        model.save(Path(models_dir) / f"raw-s4d-{seed}")
    return {"part": part, "split": split, "frontend": frontend, "backbone": backbone, "seed": seed,
            **{k: scores[k] for k in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")},
            "epochs": model.fit_summary_.epochs,
            "train_seconds": round(model.fit_summary_.train_seconds, 1),
            "params": sum(p.numel() for p in model.net_.parameters()), "n_train": len(train),
            "n_test": len(test), **run_info()}


def best_configurations(count: int) -> list[tuple[str, str]]:
    """The `count` (frontend, backbone) pairs of the official split with the best seed-0 accuracy."""
    results = pd.read_csv(CLASSIFY_CSV)
    first = results[(results.part == "classify") & (results.seed == 0)]
    if first.empty:
        raise SystemExit("Run the 'classify' part first: the later parts take its best configurations.")
    ranked = first.sort_values("accuracy", ascending=False)
    return list(ranked[["frontend", "backbone"]].itertuples(index=False, name=None))[:count]


def classify_cells(part: str, args: argparse.Namespace) -> list[tuple]:
    if part == "classify":
        configs = [(f, b) for f in ("mel", "mfcc") for b in ("s4d", "mamba", "lstm")]
        configs += [("raw", "s4d"), ("raw", "mamba")]
        cells = [("official", f, b, 0) for f, b in configs]
    elif part == "seeds":
        cells = [("official", f, b, s) for f, b in best_configurations(2) for s in (1, 2)]
    else:  # speakers
        frontend, backbone = best_configurations(1)[0]
        speakers = sorted(set(load_fsdd(args.data_dir).speakers.tolist()))
        cells = [(speaker, frontend, backbone, 0) for speaker in speakers]
    done = recorded(CLASSIFY_CSV, ["split", "frontend", "backbone", "seed"])
    return [(part, split, f, b, s, args.data_dir, str(args.models_dir))
            for split, f, b, s in cells if (split, f, b, str(s)) not in done]


# ---- sampling-rate transfer -----------------------------------------------------------------
def run_rates(args: argparse.Namespace) -> None:
    digits = load_fsdd(args.data_dir)
    path = args.models_dir / "raw-s4d-0"
    if not path.is_dir():
        raise SystemExit(f"{path} not found: run the 'classify' part first (it saves the raw s4d "
                         "model there).")
    model = tsk.load(path)
    _, test = digits.official_split()
    clips, truth = digits.take(test), digits.digits[test]
    done = recorded(RATES_CSV, ["rate", "policy"])
    for rate in (8000, 4000, 16000):
        audio = [resample(c, digits.sample_rate, rate) for c in clips]
        for policy in (["adapt"] if rate == 8000 else ["adapt", "ignore", "resample"]):
            if (str(rate), policy) in done:
                continue
            model.set_params(rate_mismatch=policy)
            accuracy = float((model.predict(audio, sample_rate=rate) == truth).mean())
            append_row(RATES_CSV, RATES_COLUMNS, {"rate": rate, "policy": policy,
                                                  "accuracy": accuracy, **run_info()})
            print(f"rate {rate:5d} {policy:8s}: accuracy {accuracy:.3f}", flush=True)


# ---- enhancement ----------------------------------------------------------------------------
def enhancement_data(data_dir: str | None, noise: str) -> dict:
    """Training clean clips and noise recordings, and the test mixtures (fixed by seed 0)."""
    digits = load_fsdd(data_dir)
    by_speaker = {s: np.flatnonzero(digits.speakers == s) for s in set(digits.speakers.tolist())}
    train = np.concatenate([by_speaker[s] for s in TRAIN_SPEAKERS])
    rng = np.random.default_rng(0)
    clean, noisy = [], []
    for speaker, other in zip(TEST_SPEAKERS, TEST_SPEAKERS[::-1], strict=True):
        for index in rng.choice(by_speaker[speaker], 100, replace=False):
            clip = digits.waveforms[index]
            if noise == "babble":  # the other test speaker's clips: voices never heard in training
                segment = babble(digits.take(by_speaker[other]), len(clip), 4, rng)
            else:
                segment = coloured_noise(len(clip), str(rng.choice(sorted(COLOURS))), rng)
            clean.append(clip)
            noisy.append(mix(clip, segment, float(rng.uniform(-5, 10))))
    return {"train": digits.take(train), "clean": clean, "noisy": noisy,
            "rate": digits.sample_rate}


def spectral_subtraction(noisy: np.ndarray, n_fft: int = 256, hop: int = 64,
                         quiet: float = 0.2, floor: float = 0.1) -> np.ndarray:
    """Power spectral subtraction: the noise power per frequency is the mean over the quietest
    `quiet` share of frames; each bin's gain is sqrt(max(1 - noise / power, floor^2)); the
    noisy phase is kept."""
    wave = torch.as_tensor(noisy, dtype=torch.float64)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spectrum = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
    power = spectrum.abs().square()  # [F, T]
    energy = power.sum(0)
    frames = max(1, int(quiet * power.shape[1]))
    noise = power[:, energy.argsort()[:frames]].mean(1, keepdim=True)
    gain = (1 - noise / power.clamp_min(1e-12)).clamp_min(floor**2).sqrt()
    return torch.istft(spectrum * gain, n_fft, hop, window=window, length=len(wave)).float().numpy()


def enhance_cell(cell: tuple) -> dict:
    """Fit one enhancer (or run a baseline) on one noise type; its CSV row."""
    noise, method, data_dir, models_dir = cell
    data = enhancement_data(data_dir, noise)
    epochs, seconds = "", 0.0
    if method == "noisy":
        estimates = data["noisy"]
    elif method == "spectral subtraction":
        estimates = [spectral_subtraction(x) for x in data["noisy"]]
    else:
        model = tsk.SpeechEnhancer(method, max_epochs=ENHANCE_EPOCHS, random_state=0,
                                   enable_progress_bar=False)
        recordings = data["train"] if noise == "babble" else None
        model.fit(data["train"], recordings, sample_rate=data["rate"])
        epochs, seconds = model.fit_summary_.epochs, round(model.fit_summary_.train_seconds, 1)
        estimates = model.enhance(data["noisy"])
        if models_dir is not None:
            model.save(Path(models_dir) / f"enhance-{method}-{noise}")
    scores = speech_scores(data["clean"], estimates, data["rate"])
    return {"noise": noise, "method": method, **{k: scores[k] for k in ("si_snr", "pesq", "stoi")},
            "epochs": epochs, "train_seconds": seconds, "n_test": scores["n"], **run_info()}


def enhance_cells(args: argparse.Namespace) -> list[tuple]:
    done = recorded(ENHANCE_CSV, ["noise", "method"])
    methods = ["s4d", "lstm", "noisy", "spectral subtraction"]  # the long fits first
    return [(noise, method, args.data_dir, str(args.models_dir)) for method in methods
            for noise in ("babble", "coloured") if (noise, method) not in done]


def reference_pair(args: argparse.Namespace) -> list[str]:
    """The s4d babble enhancer on the 16 kHz PESQ reference pair (noisy vs clean, then enhanced
    vs clean): wide-band PESQ, STOI, SI-SNR."""
    import soundfile

    path = args.models_dir / "enhance-s4d-babble"
    folder = Path(args.data_dir or "data") / "speech" / "pesq_sample"
    if not path.is_dir() or not folder.is_dir():
        return []
    clean, rate = soundfile.read(folder / "speech.wav")
    noisy, _ = soundfile.read(folder / "speech_bab_0dB.wav")
    enhanced = tsk.load(path).enhance(noisy, sample_rate=rate)
    rows = []
    for name, estimate in (("noisy", noisy), ("s4d enhancer (babble, trained at 8 kHz)", enhanced)):
        rows.append(f"| {name} | {pesq(clean, estimate, rate, 'wb'):.3f} | "
                    f"{stoi(clean, estimate, rate):.3f} | {si_snr(clean, estimate):.2f} |")
    return rows


# ---- running and reporting ------------------------------------------------------------------
def _worker_setup(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


def run_pool(function, cells: list[tuple], path: Path, columns: list[str], args) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_worker_setup, initargs=(args.threads,)) as pool:
        for row in pool.imap_unordered(function, cells):
            append_row(path, columns, row)
            shown = {k: row[k] for k in columns[:7] if k in row}
            print(shown, flush=True)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|---" * len(frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def write_report(args: argparse.Namespace) -> None:
    parts = ["# Speech on the Free Spoken Digit Dataset", "",
             "Produced by `benchmarks/speech.py` (its docstring gives the protocol and sizes).", ""]
    if CLASSIFY_CSV.is_file():
        results = pd.read_csv(CLASSIFY_CSV)
        info = results.iloc[-1]
        parts += [f"Machine: {info.machine}; torch {info.torch}; one thread per fit; "
                  f"{info.date}.", "", "## Classification, official split (seed 0)", ""]
        first = results[(results.part == "classify")]
        table = first[["frontend", "backbone", "accuracy", "balanced_accuracy", "f1_macro",
                       "log_loss", "epochs", "train_seconds", "params"]].copy()
        table[["accuracy", "balanced_accuracy", "f1_macro"]] *= 100
        parts += [markdown(table.sort_values("accuracy", ascending=False)), ""]
        official = results[results.split == "official"]
        grouped = official.groupby(["frontend", "backbone"]).accuracy
        stats = pd.DataFrame({"seeds": grouped.count(), "mean accuracy (%)": 100 * grouped.mean(),
                              "std": 100 * grouped.std(ddof=0)}).reset_index()
        stats = stats[stats.seeds >= 3]
        if not stats.empty:
            parts += ["## The best two configurations over seeds 0-2 (official split)", "",
                      markdown(stats), ""]
        speakers = results[results.part == "speakers"]
        if not speakers.empty:
            config = f"{speakers.frontend.iloc[0]} + {speakers.backbone.iloc[0]}"
            table = speakers[["split", "accuracy", "balanced_accuracy", "epochs"]].rename(
                columns={"split": "held-out speaker"})
            table[["accuracy", "balanced_accuracy"]] *= 100
            parts += [f"## Leave one speaker out ({config}, seed 0)", "", markdown(table), "",
                      f"Mean over speakers: {100 * speakers.accuracy.mean():.1f}% (official split, "
                      f"same configuration, seed 0: "
                      f"{100 * official[(official.frontend == speakers.frontend.iloc[0]) & (official.backbone == speakers.backbone.iloc[0]) & (official.seed == 0)].accuracy.mean():.1f}%).",  # noqa: E501
                      ""]
    if RATES_CSV.is_file():
        rates = pd.read_csv(RATES_CSV).pivot_table(index="rate", columns="policy", values="accuracy")
        rates = (100 * rates).reset_index()
        parts += ["## Sampling-rate transfer (raw front end + s4d, trained at 8 kHz; test accuracy %)",
                  "", markdown(rates), "",
                  "adapt: the filters' step and the frame length rescaled to the audio's rate; "
                  "ignore: the samples read as if at 8 kHz; resample: brought to 8 kHz first.", ""]
    if ENHANCE_CSV.is_file():
        enhance = pd.read_csv(ENHANCE_CSV)[["noise", "method", "si_snr", "pesq", "stoi", "epochs",
                                            "train_seconds"]]
        parts += ["## Enhancement (200 held-out-speaker mixtures, SNR -5..10 dB)", "",
                  markdown(enhance.sort_values(["noise", "si_snr"], ascending=[True, False])), "",
                  "SI-SNR (dB): mean over clips; PESQ (narrow-band) and STOI: the test clips joined "
                  "end to end.", ""]
        pair = reference_pair(args)
        if pair:
            parts += ["### The PESQ reference pair (16 kHz, babble at 0 dB)", "",
                      "| input | PESQ (wb) | STOI | SI-SNR (dB) |", "|---|---|---|---|", *pair, ""]
    REPORT.write_text("\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["classify", "seeds", "speakers", "rates",
                                                        "enhance"],
                        choices=["classify", "seeds", "speakers", "rates", "enhance"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/tsk-speech-models"),
                        help="where the raw s4d classifier and the enhancers are kept between parts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only render the markdown report")
    args = parser.parse_args(argv)
    if not args.report:
        for part in args.parts:
            begun = time.perf_counter()
            if part in ("classify", "seeds", "speakers"):
                run_pool(classify_cell, classify_cells(part, args), CLASSIFY_CSV, CLASSIFY_COLUMNS, args)
            elif part == "rates":
                torch.set_num_threads(args.threads * args.workers)
                run_rates(args)
            else:
                run_pool(enhance_cell, enhance_cells(args), ENHANCE_CSV, ENHANCE_COLUMNS, args)
            print(f"part {part}: {(time.perf_counter() - begun) / 60:.1f} minutes", flush=True)
    write_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
