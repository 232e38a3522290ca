"""Speech front ends: a waveform `[B, samples, 1]` (right-padded, with `lengths`) -> frame tokens
`[B, frames, d_model]` and the frame counts, for the classification network
(`ClassifyNet(frontend=...)`), one frame every `hop` samples.

- `RawFrontend` learns its own filter bank from the waveform: a bank of diagonal state space
  filters (S4D's kernel) runs at the audio rate, GELU rectifies, and each frame's samples are
  averaged, then mapped to `d_model`. The filters are continuous-time systems, so audio at another
  rate is read by rescaling their step Delta and the frame length in samples (`step_scale`): the
  frames the backbone sees keep their duration, and nothing is resampled. S4 read Speech Commands
  at half the rate this way; this is the same change, made in the one layer that runs at the audio
  rate.
- `SpectralFrontend` computes torchaudio's log-mel spectrogram (`kind="mel"`) or MFCCs
  (`kind="mfcc"`), standardizes each band with the training clips' statistics, optionally masks
  bands and frames while training (SpecAugment) and maps each frame to `d_model`. It is tied to
  the rate it was built for.

Both are causal and masked: a frame reads only the samples of its own clip, and a clip's frames
do not change with the clips it is batched with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tsk._extras import require
from tsk.backbones.s4 import S4DKernel
from tsk.heads.classify import valid_mask

FRONTENDS = ("raw", "mel", "mfcc")


def frame_count(lengths: torch.Tensor | int, hop: int) -> torch.Tensor | int:
    """The raw front end's frames: `hop` samples each, covering each length (the last one may be
    partial)."""
    return (lengths + hop - 1) // hop


def window_count(lengths: torch.Tensor | int, window: int, hop: int) -> torch.Tensor | int:
    """The spectral front end's frames: windows of `window` samples every `hop`, none past a
    clip's end (a clip shorter than one window gets one, over its samples and zeros)."""
    if isinstance(lengths, torch.Tensor):
        return 1 + (lengths.clamp_min(window) - window) // hop
    return 1 + (max(lengths, window) - window) // hop


class RawFrontend(nn.Module):
    """Waveform -> frames through a learned state space filter bank (see the module docstring).

    `n_filters` diagonal SSMs of `d_state` states (S4D-Lin init, ZOH, Delta log-uniform in
    [dt_min, dt_max] steps of the training rate, S4D's defaults), one skip weight each; a frame is
    the mean of `hop` rectified samples.
    """

    def __init__(self, d_model: int, hop: int, n_filters: int = 64, d_state: int = 64,
                 dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        self.hop = hop
        self.filters = S4DKernel(n_filters, d_state, dt_min, dt_max, "lin", "zoh", 1e-3)
        self.D = nn.Parameter(torch.randn(n_filters))
        self.project = nn.Linear(n_filters, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, step_scale: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`x[B, L, 1]` (zeros past each clip's end) -> tokens `[B, T, d_model]` and frame counts
        `[B]`. `step_scale`: the training rate over this audio's rate (2.0 for 4 kHz audio read by
        an 8 kHz model)."""
        batch, length = x.shape[0], x.shape[1]
        hop = self.hop / step_scale
        if abs(hop - round(hop)) > 1e-6 or round(hop) < 1:
            raise ValueError(f"Audio at 1/{step_scale:g} of the training rate makes frames of {hop:g} "
                             f"samples; the raw front end needs a whole number (its frames are "
                             f"{self.hop} samples at the training rate). Resample the audio instead.")
        hop = round(hop)
        if lengths is None:
            lengths = torch.full((batch,), length, dtype=torch.long, device=x.device)
        n = 2 * length
        kernel = self.filters(length, step_scale)  # [H, L]
        u = x[..., 0]  # [B, L]
        spectrum = torch.fft.rfft(u.float(), n=n)[:, None, :] * torch.fft.rfft(kernel.float(), n=n)
        y = torch.fft.irfft(spectrum, n=n)[..., :length] + self.D[:, None] * u[:, None, :]  # [B, H, L]
        y = F.gelu(y) * valid_mask(lengths, batch, length, x.device)[:, None, :]
        frames = -(-length // hop)
        y = F.pad(y, (0, frames * hop - length)).unflatten(-1, (frames, hop)).sum(-1)  # [B, H, T]
        starts = torch.arange(frames, device=x.device) * hop
        counts = (lengths[:, None] - starts[None, :]).clamp(0, hop).clamp_min(1)  # [B, T]
        tokens = self.project((y / counts[:, None, :]).transpose(1, 2))
        return tokens, frame_count(lengths, hop)


class SpectralFrontend(nn.Module):
    """Waveform -> log-mel or MFCC frames (torchaudio), standardized, mapped to `d_model`.

    Frames of `window` samples every `hop` samples, not centred (`center=False`: a frame never
    reads past its clip); a clip shorter than one window gets one frame over its samples and
    zeros. Each band (or coefficient) is standardized with `feature_mean`/`feature_std`, buffers
    the estimator sets from its training clips (per-clip normalization would erase what a
    stationary sound is: its spectrum). `spec_augment=(F, T)`: while training, zero one run of
    up to F bands (or coefficients) and one of up to T frames per clip (SpecAugment's masks).
    """

    def __init__(self, kind: str, sample_rate: int, d_model: int, window: int, hop: int,
                 n_mels: int = 40, n_mfcc: int = 20, spec_augment: tuple[int, int] | None = None
                 ) -> None:
        super().__init__()
        if kind not in ("mel", "mfcc"):
            raise ValueError(f"kind must be 'mel' or 'mfcc', got {kind!r}.")
        transforms = require("torchaudio.transforms", "speech", feature="mel and MFCC front ends",
                             package="torchaudio")
        self.kind, self.window, self.hop = kind, window, hop
        mel = {"n_fft": window, "win_length": window, "hop_length": hop, "n_mels": n_mels,
               "center": False}
        if kind == "mel":
            self.transform = transforms.MelSpectrogram(sample_rate, **mel)
            n_features = n_mels
        else:
            self.transform = transforms.MFCC(sample_rate, n_mfcc=n_mfcc, log_mels=True, melkwargs=mel)
            n_features = n_mfcc
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.masks = None
        if spec_augment is not None:
            bands, steps = spec_augment
            self.masks = nn.Sequential(transforms.FrequencyMasking(bands, iid_masks=True),
                                       transforms.TimeMasking(steps, iid_masks=True))
        self.project = nn.Linear(n_features, d_model)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """`x[B, L, 1]` -> log-mel bands or MFCCs `[B, T, n]` (not standardized), frame counts."""
        batch, length = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((batch,), length, dtype=torch.long, device=x.device)
        wave = F.pad(x[..., 0].float(), (0, max(self.window - length, 0)))
        features = self.transform(wave)  # [B, n, T]
        if self.kind == "mel":
            features = torch.log(features + 1e-6)
        return features.transpose(1, 2), window_count(lengths, self.window, self.hop)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`x[B, L, 1]` -> tokens `[B, T, d_model]` and frame counts `[B]`."""
        features, counts = self.features(x, lengths)
        features = (features - self.feature_mean) / self.feature_std
        if self.masks is not None and self.training:
            features = self.masks(features.transpose(1, 2)[:, None])[:, 0].transpose(1, 2)
        return self.project(features), counts


def samples(sample_rate: int, milliseconds: float) -> int:
    """`milliseconds` of audio at `sample_rate`, in whole samples (at least one)."""
    return max(1, math.floor(sample_rate * milliseconds / 1000 + 0.5))
