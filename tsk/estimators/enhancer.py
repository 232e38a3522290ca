"""`SpeechEnhancer`: single-channel speech enhancement by complex ratio masking on the STFT, with
any registered sequence backbone over the frames."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from tsk import backbones
from tsk._extras import require
from tsk.datasets.audio import MONO_POLICIES, as_waveforms, resample
from tsk.datasets.noise import COLOURS, babble, coloured_noise, mix
from tsk.datasets.sequences import SequenceDataset, pad_collate
from tsk.estimators.base import FitData, SequenceEstimator
from tsk.estimators.registry import register_estimator
from tsk.heads.enhance import ENHANCE_KINDS, EnhanceNet
from tsk.heads.registry import check_backbone_kind
from tsk.heads.speech import samples
from tsk.metrics import pesq, si_snr, stoi

SPEECH_METRICS = ("si_snr", "pesq", "stoi")


class PairDataset(Dataset):
    """Noisy/clean pairs as batch mappings: `{"inputs": noisy [L, 1], "targets": clean [L, 1]}`."""

    def __init__(self, noisy: list[np.ndarray], clean: list[np.ndarray]) -> None:
        self.noisy = [torch.as_tensor(x)[:, None] for x in noisy]
        self.clean = [torch.as_tensor(x)[:, None] for x in clean]

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.noisy[item], "targets": self.clean[item]}


@register_estimator
class SpeechEnhancer(SequenceEstimator):
    """Remove noise from single-channel speech (`tsk.heads.enhance`: a bounded complex ratio mask
    on the STFT, FRCRN's loss), any registered sequence backbone reading the frames.

    `fit(clean, noise)` mixes its own training pairs: each clean clip with a noise segment at an
    SNR drawn uniformly from `snr_db`, `n_mixtures` times (drawn once per fit, seeded by
    `random_state`). `noise`: None (white, pink or brown noise, drawn per mixture), one of those
    colours, or recordings (a list of waveforms or files at the clean clips' rate; "babble":
    `babble_talkers` of them summed, so other speakers' clips make babble).

    STFT: Hann windows of `window_ms` every `hop_ms`. `bidirectional=False` (default) keeps the
    enhancer causal with a causal backbone (each output frame from the frames up to it: it could
    stream); True adds a backward reader. `validation_size` of the clean clips (mixed the same
    way) early-stops on the validation loss; 0 trains every epoch and keeps the last weights.
    """

    _training_defaults = {"max_epochs": 30, "patience": 5, "batch_size": 16, "learning_rate": 1e-3}
    _scores = {"si_snr": "maximize", "pesq": "maximize", "stoi": "maximize"}
    _epoch_scores = {"minimize": "val_loss", "maximize": "val_si_snr"}

    def __init__(
        self,
        backbone: str = "s4d",
        *,
        window_ms: float = 32.0,
        hop_ms: float = 8.0,
        d_model: int | None = None,
        n_layers: int | None = None,
        dropout: float | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        bidirectional: bool = False,
        n_mixtures: int = 1,
        babble_talkers: int = 4,
        validation_size: float = 0.1,
        mono: str = "raise",
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.window_ms = window_ms
        self.hop_ms = hop_ms
        self.d_model = d_model
        self.n_layers = n_layers
        self.dropout = dropout
        self.backbone_kwargs = backbone_kwargs
        self.bidirectional = bidirectional
        self.n_mixtures = n_mixtures
        self.babble_talkers = babble_talkers
        self.validation_size = validation_size
        self.mono = mono
        self._set_training_params(training)

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, clean: Any, noise: Any = None, *, snr_db: tuple[float, float] = (-5.0, 10.0),
            sample_rate: int | None = None, validation_data: tuple[Any, Any] | None = None,
            checkpoint_dir: str | os.PathLike | None = None) -> SpeechEnhancer:
        """Train on clean clips (at `sample_rate` Hz, or files) mixed with `noise` (see the class
        docstring) at SNRs in `snr_db`. `validation_data=(noisy, clean)` early-stops on those
        pairs instead of a split of `clean`."""
        return self._fit(clean, noise, snr_db, sample_rate, validation_data,
                         checkpoint_dir=checkpoint_dir)

    def _validate_params(self) -> None:
        check_backbone_kind(self.backbone, ENHANCE_KINDS, "enhancement head")
        self._check_positive_ints("n_mixtures", "babble_talkers")
        for name in ("hop_ms", "window_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}.")
        if self.hop_ms > self.window_ms / 2:
            raise ValueError(f"hop_ms ({self.hop_ms}) must be at most half of window_ms "
                             f"({self.window_ms}): Hann windows need that overlap for the inverse "
                             "STFT to rebuild the waveform.")
        if not 0 <= self.validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1), got {self.validation_size!r}.")
        if self.mono not in MONO_POLICIES:
            raise ValueError(f"mono must be one of {MONO_POLICIES}, got {self.mono!r}.")

    def _prepare_fit(self, clean: Any, noise: Any, snr_db: tuple[float, float],
                     sample_rate: int | None, validation_data: tuple[Any, Any] | None) -> FitData:
        low, high = _snr_range(snr_db)
        waveforms, self.sample_rate_ = as_waveforms(clean, sample_rate, mono=self.mono)
        recordings = self._noise_recordings(noise, sample_rate)
        rng = np.random.default_rng(self.random_state)
        rows = rng.permutation(len(waveforms))
        held = 0 if validation_data is not None else int(round(self.validation_size * len(rows)))
        train_rows, val_rows = np.sort(rows[held:]), np.sort(rows[:held])
        train = self._mixtures([waveforms[i] for i in train_rows], recordings, noise, low, high, rng)
        validation = None
        if validation_data is not None:
            noisy, clean_val = (as_waveforms(part, sample_rate, mono=self.mono,
                                             target_rate=self.sample_rate_)[0]
                                for part in validation_data)
            _check_pairs(noisy, clean_val)
            validation = PairDataset(noisy, clean_val)
        elif len(val_rows):
            validation = self._mixtures([waveforms[i] for i in val_rows], recordings, noise, low,
                                        high, rng)
        digest = hashlib.sha256(repr((self.sample_rate_, low, high, len(rows))).encode())
        for dataset in (train, validation):
            for x in [] if dataset is None else dataset.noisy:
                digest.update(x.numpy().tobytes())
        self.max_length_ = max(len(w) for w in waveforms)
        return FitData(train, validation, collate=pad_collate, digest=digest.hexdigest())

    def _noise_recordings(self, noise: Any, sample_rate: int | None) -> list[np.ndarray] | None:
        if noise is None:
            return None
        if isinstance(noise, str) and noise in COLOURS:
            return None
        if isinstance(noise, str) and not Path(noise).exists():
            raise ValueError(f"noise must be None, one of {sorted(COLOURS)}, or noise recordings "
                             f"(waveforms or files); got {noise!r}.")
        return as_waveforms(noise, sample_rate, mono=self.mono, target_rate=self.sample_rate_)[0]

    def _mixtures(self, clean: list[np.ndarray], recordings: list[np.ndarray] | None, noise: Any,
                  low: float, high: float, rng: np.random.Generator) -> PairDataset:
        noisy, targets = [], []
        for _ in range(self.n_mixtures):
            for clip in clean:
                if recordings is None:
                    colour = noise if isinstance(noise, str) else rng.choice(sorted(COLOURS))
                    segment = coloured_noise(len(clip), str(colour), rng)
                else:
                    segment = babble(recordings, len(clip), self.babble_talkers, rng)
                noisy.append(mix(clip, segment, float(rng.uniform(low, high))))
                targets.append(clip)
        return PairDataset(noisy, targets)

    def _stft_sizes(self) -> tuple[int, int]:
        return samples(self.sample_rate_, self.window_ms), samples(self.sample_rate_, self.hop_ms)

    def _build_net(self) -> nn.Module:
        n_fft, hop = self._stft_sizes()
        config = self._backbone_config(self.max_length_ // hop + 1)
        backbone = backbones.create(self.backbone, **config)
        backward = backbones.create(self.backbone, **config) if self.bidirectional else None
        return EnhanceNet(backbone, backbone.config.d_model, n_fft, hop, backward=backward)

    # ---- enhance --------------------------------------------------------------------------
    def enhance(self, waveform: Any, sample_rate: int | None = None) -> np.ndarray | list[np.ndarray]:
        """The enhanced clip(s), each as long as its input: one waveform (array or file) -> one
        array; a list -> a list. Arrays are at `sample_rate` (default: the fitted rate); audio at
        another rate is resampled to the fitted rate and the result back to its own."""
        self._check_fitted()
        single = isinstance(waveform, str | os.PathLike) or (
            not isinstance(waveform, list | tuple) and np.ndim(waveform) == 1)
        clips = [waveform] if single else waveform
        rate = self.sample_rate_ if sample_rate is None else sample_rate
        read = [as_waveforms([clip], rate, mono=self.mono) for clip in clips]  # (waves, own rate)
        fitted = [resample(waves[0], own, self.sample_rate_)[:, None] for waves, own in read]
        # one clip per batch: a clip's frames never meet another clip's padding
        batches = self._predict_outputs(SequenceDataset(fitted), batch_size=1, collate=pad_collate)
        outputs = []
        for (waves, own), batch in zip(read, batches, strict=True):
            cleaned = resample(batch["waveform"][0].numpy(), self.sample_rate_, own)[: len(waves[0])]
            outputs.append(np.pad(cleaned, (0, len(waves[0]) - len(cleaned))).astype(np.float32))
        return outputs[0] if single else outputs

    def enhance_file(self, source: str | os.PathLike, target: str | os.PathLike) -> Path:
        """Enhance an audio file into `target` (at the source's rate and, where the target's format
        allows it, its sample format; written to a temporary file beside it and moved into place
        only when complete)."""
        soundfile = require("soundfile", "speech", feature="writing audio files")
        waves, rate = as_waveforms([source], None, mono=self.mono)
        enhanced = self.enhance(waves[0], rate)
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.",
                                             suffix=target.suffix)
        os.close(handle)
        subtype = soundfile.info(str(source)).subtype  # keep the source's sample format
        kind = target.suffix.lstrip(".").upper()
        if not soundfile.check_format(kind, subtype):
            subtype = None  # the target format's default (e.g. 16-bit PCM)
        try:
            soundfile.write(temporary, enhanced, rate, subtype=subtype)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def evaluate(self, noisy: Any, clean: Any, sample_rate: int | None = None,
                 metrics: tuple[str, ...] = SPEECH_METRICS) -> dict[str, float]:
        """Mean SI-SNR (dB), PESQ and STOI of the enhanced `noisy` clips against `clean` (PESQ
        narrow-band at 8 kHz, wide-band at 16 kHz; other rates are resampled to 16 kHz for it)."""
        self._check_fitted()
        rate = self.sample_rate_ if sample_rate is None else sample_rate
        noisy_waves, rate = as_waveforms(noisy, rate, mono=self.mono)
        clean_waves, _ = as_waveforms(clean, rate, mono=self.mono, target_rate=rate)
        _check_pairs(noisy_waves, clean_waves)
        enhanced = self.enhance(noisy_waves, rate)
        return speech_scores(clean_waves, enhanced, rate, metrics)

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        summary = vars(self.fit_summary_) if hasattr(self, "fit_summary_") else None
        return {"sample_rate": self.sample_rate_, "max_length": self.max_length_,
                "fit_summary": summary}, {}

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.sample_rate_, self.max_length_ = state["sample_rate"], state["max_length"]


def speech_scores(clean: list[np.ndarray], estimates: list[np.ndarray], sample_rate: int,
                  metrics: tuple[str, ...] = SPEECH_METRICS) -> dict[str, float]:
    """SI-SNR (dB; the mean over clips), PESQ and STOI of `estimates` against `clean` (pairs of
    equal length).

    PESQ and STOI score the clips joined end to end, one long recording: both are defined on
    utterances of seconds (PESQ asks for 8-20 s; STOI needs 30 frames of 384 ms with speech in
    them, and scores shorter clips 1e-5), while a spoken digit lasts half a second. PESQ is
    narrow-band at 8 kHz and wide-band at 16 kHz (other rates are resampled to 16 kHz for it).
    """
    unknown = sorted(set(metrics) - set(SPEECH_METRICS))
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}; choose from {SPEECH_METRICS}.")
    if len(clean) != len(estimates):
        raise ValueError(f"{len(clean)} clean clips but {len(estimates)} estimates.")
    scores: dict[str, float] = {}
    if "si_snr" in metrics:
        scores["si_snr"] = float(np.mean([si_snr(c, e) for c, e in zip(clean, estimates, strict=True)]))
    reference, estimate = np.concatenate(clean), np.concatenate(estimates)
    if "pesq" in metrics:
        mode, rate = ("nb", 8000) if sample_rate == 8000 else ("wb", 16000)
        scores["pesq"] = pesq(resample(reference, sample_rate, rate),
                              resample(estimate, sample_rate, rate), rate, mode)
    if "stoi" in metrics:
        scores["stoi"] = stoi(reference, estimate, sample_rate)
    return {**scores, "n": len(clean)}


def _snr_range(snr_db: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        raise ValueError(f"snr_db must be (low, high) in dB, got {snr_db!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"snr_db must be (low, high) with low <= high, got {snr_db!r}.")
    return low, high


def _check_pairs(noisy: list[np.ndarray], clean: list[np.ndarray]) -> None:
    if len(noisy) != len(clean):
        raise ValueError(f"{len(noisy)} noisy clips but {len(clean)} clean ones: one clean clip "
                         "per noisy one.")
    for i, (a, b) in enumerate(zip(noisy, clean, strict=True)):
        if len(a) != len(b):
            raise ValueError(f"Pair {i}: the noisy clip has {len(a)} samples, the clean one "
                             f"{len(b)}; they must be aligned.")
