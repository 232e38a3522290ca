"""`SpeechClassifier`: spoken-word (and any sound) classification from raw audio, with a learned
state space filter bank or torchaudio's mel / MFCC front ends before any sequence backbone."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from tsk.datasets.audio import MONO_POLICIES, as_waveforms
from tsk.datasets.sequences import Sequences, align_labels, as_sequences
from tsk.estimators.base import FitData
from tsk.estimators.classifier import Classifier
from tsk.estimators.registry import register_estimator
from tsk.heads.speech import (
    FRONTENDS,
    RawFrontend,
    SpectralFrontend,
    frame_count,
    samples,
    window_count,
)
from tsk.metrics import classification_scores

RATE_POLICIES = ("auto", "adapt", "resample", "raise", "ignore")


@register_estimator
class SpeechClassifier(Classifier):
    """Classify audio clips (of different lengths) with any registered sequence backbone.

    X: a list of 1-D waveforms (arrays or tensors; integer PCM is scaled to [-1, 1]) with
    `sample_rate`, or of audio file paths (read with soundfile, resampled to the first clip's
    rate); y: one label per clip. Each clip is standardized (zero mean, unit variance: the
    recording level does not matter), then a front end turns it into frames every `hop_ms`:

    - `frontend="raw"`: a learned bank of `n_filters` state space filters (S4D kernels) runs
      over the samples themselves and each frame averages their rectified outputs
      (`tsk.heads.speech.RawFrontend`);
    - `"mel"` / `"mfcc"`: torchaudio's log-mel spectrogram (`n_mels` bands) or MFCCs (`n_mfcc`
      coefficients) over windows of `window_ms`, normalized per clip; `spec_augment=(F, T)`
      masks up to F bands and T frames of each clip while training (SpecAugment).

    The backbone reads the frames; pooling, `bidirectional`, `class_weight`, validation and the
    training budget work as in `Classifier`.

    Audio at another rate than the fit's (`rate_mismatch`): "resample" brings it to the fitted
    rate (torchaudio's sinc resampling); "adapt" (raw front end only) reads it at its own rate by
    rescaling the filters' continuous-time step and the frame length, so nothing is resampled
    (the frame length in samples at the new rate must be whole: 4, 8, 16 or 32 kHz for a model
    fit at 8 kHz with 10 ms frames); "raise" refuses it; "ignore" reads its samples as if they
    were at the fitted rate (what a discrete-time model does; for comparison). "auto" (default):
    "adapt" for the raw front end, "resample" for the others. Several channels: `mono` "raise"
    (default), "mean" or "first".
    """

    _backbone_kinds = ("sequence",)  # a clip is one channel: no grid of variates to read

    def __init__(
        self,
        backbone: str = "s4d",
        *,
        frontend: str = "mel",
        hop_ms: float = 10.0,
        window_ms: float = 25.0,
        n_mels: int = 40,
        n_mfcc: int = 20,
        n_filters: int = 64,
        spec_augment: tuple[int, int] | None = None,
        rate_mismatch: str = "auto",
        mono: str = "raise",
        d_model: int | None = None,
        n_layers: int | None = None,
        dropout: float | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pooling: str = "mean",
        bidirectional: bool = False,
        class_weight: str | dict | None = None,
        validation_size: float | None = None,
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.frontend = frontend
        self.hop_ms = hop_ms
        self.window_ms = window_ms
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.n_filters = n_filters
        self.spec_augment = spec_augment
        self.rate_mismatch = rate_mismatch
        self.mono = mono
        self.d_model = d_model
        self.n_layers = n_layers
        self.dropout = dropout
        self.backbone_kwargs = backbone_kwargs
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.class_weight = class_weight
        self.validation_size = validation_size
        self._set_training_params(training)

    # fixed for audio, not parameters: every clip is standardized (the recording level does not
    # matter), and the front end, not patches, makes the tokens
    normalize = "series"
    patch_len = None

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, sample_rate: int | None = None,
            validation_data: tuple[Any, Any] | None = None,
            checkpoint_dir: str | os.PathLike | None = None) -> SpeechClassifier:
        """Train on clips X (at `sample_rate` Hz, or files) with labels y.

        `validation_data=(X_val, y_val)` (at the same rate) early-stops on those clips;
        `checkpoint_dir` keeps checkpoints and resumes an interrupted fit, as in `Classifier`."""
        return self._fit(X, y, validation_data, sample_rate, checkpoint_dir=checkpoint_dir)

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {self.frontend!r}.")
        if self.rate_mismatch not in RATE_POLICIES:
            raise ValueError(f"rate_mismatch must be one of {RATE_POLICIES}, got "
                             f"{self.rate_mismatch!r}.")
        if self.rate_mismatch == "adapt" and self.frontend != "raw":
            raise ValueError("rate_mismatch='adapt' needs frontend='raw' (a spectrogram's filters "
                             "are fixed to the fitted rate): use 'resample'.")
        if self.mono not in MONO_POLICIES:
            raise ValueError(f"mono must be one of {MONO_POLICIES}, got {self.mono!r}.")
        for name in ("hop_ms", "window_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}.")
        self._check_positive_ints("n_mels", "n_mfcc", "n_filters")
        if self.spec_augment is not None and (
                len(self.spec_augment) != 2 or min(self.spec_augment) < 0):
            raise ValueError(f"spec_augment must be None or (bands, frames), two counts >= 0, got "
                             f"{self.spec_augment!r}.")

    def _prepare_fit(self, X: Any, y: Any, validation_data: tuple[Any, Any] | None,
                     sample_rate: int | None) -> FitData:
        waveforms, self.sample_rate_ = as_waveforms(X, sample_rate, mono=self.mono)
        if validation_data is not None:
            val_waveforms, _ = as_waveforms(validation_data[0], sample_rate, mono=self.mono,
                                            target_rate=self.sample_rate_)
            validation_data = (val_waveforms, validation_data[1])
        data = super()._prepare_fit(waveforms, y, validation_data)
        self.feature_mean_, self.feature_std_ = self._feature_statistics(data.train.values)
        return data

    def _feature_statistics(self, clips: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Each spectral band's (or coefficient's) mean and std over every frame of the training
        clips, which standardize the front end's features; empty for the raw front end."""
        if self.frontend == "raw":
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        front = self._frontend(1)
        frames = []
        with torch.no_grad():
            for clip in clips:  # [L, 1] each, standardized as the network will see it
                wave = (clip - clip.mean()) / clip.std(correction=0).clamp_min(1e-8)
                features, count = front.features(wave[None])
                frames.append(features[0, : int(count[0])])
        frames = torch.cat(frames).double()
        return (frames.mean(0).float().numpy(),
                frames.std(0, correction=0).clamp_min(1e-8).float().numpy())

    def _tokens(self, length: int) -> int:
        """Frames the backbone reads for a clip of `length` samples at the fitted rate."""
        hop = samples(self.sample_rate_, self.hop_ms)
        if self.frontend == "raw":
            return frame_count(length, hop)
        return window_count(length, self._window(), hop)

    def _window(self) -> int:
        return samples(self.sample_rate_, self.window_ms)

    def _frontend(self, d_model: int) -> nn.Module:
        hop = samples(self.sample_rate_, self.hop_ms)
        if self.frontend == "raw":
            return RawFrontend(d_model, hop, n_filters=self.n_filters)
        masks = None if self.spec_augment is None else tuple(int(v) for v in self.spec_augment)
        front = SpectralFrontend(self.frontend, self.sample_rate_, d_model, self._window(), hop,
                                 n_mels=self.n_mels, n_mfcc=self.n_mfcc, spec_augment=masks)
        if getattr(self, "feature_std_", None) is not None and len(self.feature_std_):
            front.feature_mean.copy_(torch.as_tensor(self.feature_mean_))
            front.feature_std.copy_(torch.as_tensor(self.feature_std_))
        return front

    # ---- predict --------------------------------------------------------------------------
    def predict_proba(self, X: Any, sample_rate: int | None = None) -> np.ndarray:
        """Class probabilities `[n, n_classes]` of clips X (arrays at `sample_rate`, by default
        the fitted rate, or files); other rates as `rate_mismatch` says."""
        self._check_fitted()
        waveforms, step_scale = self._read(X, sample_rate)
        return self._proba(self._check_sequences(as_sequences(waveforms)),
                           **({"step_scale": step_scale} if step_scale != 1.0 else {}))

    def predict(self, X: Any, sample_rate: int | None = None) -> np.ndarray:
        """The most probable label of each clip."""
        return self.classes_[self.predict_proba(X, sample_rate).argmax(1)]

    def evaluate(self, X: Any, y: Any, sample_rate: int | None = None) -> dict[str, Any]:
        """`Classifier.evaluate`'s scores of labelled clips (arrays at `sample_rate`, by default
        the fitted rate, or files)."""
        self._check_fitted()
        return classification_scores(self._known_labels(X, y), self.predict_proba(X, sample_rate),
                                     self.classes_)

    def _read(self, X: Any, sample_rate: int | None) -> tuple[list[np.ndarray], float]:
        """Clips as waveforms for the fitted model, and the front end's step scale for them."""
        fitted = self.sample_rate_
        policy = self.rate_mismatch
        if policy == "auto":
            policy = "adapt" if self.frontend == "raw" else "resample"
        arrays_rate = fitted if sample_rate is None else sample_rate
        target = fitted if policy in ("resample", "raise") else None
        waveforms, rate = as_waveforms(
            X, arrays_rate, mono=self.mono, target_rate=target,
            mismatch_hint=None if policy != "raise" else (
                f"the model was fit at {fitted} Hz and rate_mismatch='raise': resample the audio "
                "first, or set rate_mismatch to 'resample'" + (" or 'adapt'" if self.frontend == "raw"
                                                               else "")))
        return waveforms, (fitted / rate if policy == "adapt" else 1.0)

    def _known_labels(self, X: Any, y: Any) -> np.ndarray:
        count = len(X) if not isinstance(X, str | os.PathLike) else 1
        labels = align_labels(y, Sequences([np.empty((0, 1))] * count, list(range(count))))
        return self._check_known(labels)

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = super()._fitted_state()
        return ({**state, "sample_rate": self.sample_rate_},
                {**arrays, "feature_mean": self.feature_mean_, "feature_std": self.feature_std_})

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._restore_state(state, arrays)
        self.sample_rate_ = state["sample_rate"]
        self.feature_mean_, self.feature_std_ = arrays["feature_mean"], arrays["feature_std"]


__all__ = ["RATE_POLICIES", "SpeechClassifier"]
