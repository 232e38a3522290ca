"""Audio: clips read, checked and brought to one sampling rate; the Free Spoken Digit Dataset.

A clip comes as a 1-D array or tensor of samples, a `[channels, samples]` array, or a path to an
audio file (read with `soundfile`, which bundles libsndfile: no system codec needed; torchaudio's
own `load` needs FFmpeg). Several channels are refused unless `mono="mean"` mixes them down;
empty, all-zero and non-finite clips are errors that name the clip. Resampling is torchaudio's
band-limited (sinc) `resample`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsk._extras import require
from tsk.datasets.files import find_file

MONO_POLICIES = ("raise", "mean", "first")
FSDD_SOURCE = "https://github.com/Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0)"


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The samples of an audio file as float32 `[channels, samples]` in [-1, 1], and its rate."""
    soundfile = require("soundfile", "speech", feature="reading audio files")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Audio file {path} not found.")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as err:  # not audio, or a format libsndfile cannot read
        raise ValueError(f"{path} is not an audio file libsndfile can read ({err}); use WAV, FLAC, "
                         "OGG or another format soundfile lists in soundfile.available_formats().") from err
    return np.ascontiguousarray(samples.T), int(rate)


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au")


def audio_files(path: str | os.PathLike) -> list[Path]:
    """An audio file itself, or the audio files in a folder (sorted; subfolders not searched)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an audio file nor a folder.")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"{path} holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    return files


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`waveform[..., samples]` from `rate` to `target` Hz (torchaudio's sinc interpolation)."""
    if rate == target:
        return waveform
    functional = require("torchaudio.functional", "speech", feature="resampling audio",
                         package="torchaudio")
    return functional.resample(torch.as_tensor(waveform), rate, target).numpy()


def as_waveforms(clips: Any, sample_rate: int | None, *, mono: str = "raise",
                 target_rate: int | None = None, mismatch_hint: str | None = None
                 ) -> tuple[list[np.ndarray], int]:
    """Read `clips` (a list of arrays, tensors or audio file paths; or one `[n, samples]` array)
    into 1-D float32 waveforms at one sampling rate, checked; returns them and that rate.

    Arrays are at `sample_rate`; files at their own rate. Every clip is brought to `target_rate`,
    or when it is None to the first clip's rate, by resampling; with `mismatch_hint`, a clip at
    another rate is refused instead (the hint says what to do).
    """
    if mono not in MONO_POLICIES:
        raise ValueError(f"mono must be one of {MONO_POLICIES}, got {mono!r}.")
    if isinstance(clips, str | os.PathLike):
        clips = [clips]
    if isinstance(clips, torch.Tensor | np.ndarray):
        if clips.ndim != 2:
            raise ValueError(f"Clips as one array must be [n_clips, samples], got shape "
                             f"{tuple(clips.shape)}; pass clips of different lengths as a list.")
        clips = list(clips)
    if not isinstance(clips, Sequence) or isinstance(clips, str):
        raise TypeError(f"Clips must be a list of 1-D arrays/tensors or audio file paths, got "
                        f"{type(clips).__name__}.")
    if len(clips) == 0:
        raise ValueError("No clips given.")
    for rate in (sample_rate, target_rate):
        if rate is not None and (not isinstance(rate, int | np.integer) or isinstance(rate, bool)
                                 or rate <= 0):
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {rate!r}.")
    read = []
    for i, clip in enumerate(clips):
        if isinstance(clip, str | os.PathLike):
            read.append(read_audio(clip))
        elif sample_rate is None:
            raise ValueError("sample_rate is required for clips given as arrays (e.g. "
                             "sample_rate=16000).")
        else:
            read.append((_samples(clip, i), int(sample_rate)))
    target = int(target_rate or read[0][1])
    waveforms = []
    for i, (samples, rate) in enumerate(read):
        name = _name(clips[i], i)
        if rate != target and mismatch_hint is not None:
            raise ValueError(f"{name} is at {rate} Hz, not {target} Hz: {mismatch_hint}.")
        waveform = _mono(samples, mono, name)
        _check(waveform, name)
        waveforms.append(np.ascontiguousarray(resample(waveform, rate, target), dtype=np.float32))
    return waveforms, target


def _samples(clip: Any, i: int) -> np.ndarray:
    if isinstance(clip, torch.Tensor):
        clip = clip.detach().cpu().numpy()
    array = np.asarray(clip)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"Clip {i} must hold numbers (or be a file path), got dtype {array.dtype}.")
    if np.issubdtype(array.dtype, np.integer):  # PCM: scale to [-1, 1] by the type's range
        array = array / float(np.iinfo(array.dtype).max + 1)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"Clip {i} must be [samples] or [channels, samples], got shape "
                         f"{array.shape}.")
    return array.astype(np.float32, copy=False)


def _mono(samples: np.ndarray, policy: str, name: str) -> np.ndarray:
    if samples.shape[0] == 1:
        return samples[0]
    if policy == "raise":
        raise ValueError(f"{name} has {samples.shape[0]} channels; the models read one. Mix it down "
                         "first (e.g. clip.mean(0)), or pass mono='mean' (average the channels) or "
                         "mono='first'.")
    return samples.mean(0) if policy == "mean" else samples[0]


def _check(waveform: np.ndarray, name: str) -> None:
    if waveform.size == 0:
        raise ValueError(f"{name} is empty: every clip needs at least one sample.")
    bad = ~np.isfinite(waveform)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite sample(s), the first at "
                         f"sample {int(np.argmax(bad))}.")
    if not np.any(waveform):
        raise ValueError(f"{name} is all zeros (silence): there is nothing to classify or enhance.")


def _name(clip: Any, i: int) -> str:
    return f"Clip {i} ({clip})" if isinstance(clip, str | os.PathLike) else f"Clip {i}"


# ---- the Free Spoken Digit Dataset ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpokenDigits:
    """FSDD: 3,000 clips of the digits 0-9 by 6 speakers, 50 repetitions each, 8 kHz mono.

    `waveforms`: float32 arrays in [-1, 1] (1,148-18,262 samples); `digits`, `speakers` (names),
    `repetitions` (0-49) per clip.
    """

    waveforms: list[np.ndarray]
    digits: np.ndarray
    speakers: np.ndarray
    repetitions: np.ndarray
    sample_rate: int

    def official_split(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and test clip indices of the dataset's own split: repetitions 0-4 test (300
        clips), 5-49 train (2,700). Every speaker is in both: speaker-dependent."""
        test = self.repetitions < 5
        return np.flatnonzero(~test), np.flatnonzero(test)

    def speaker_split(self, speaker: str) -> tuple[np.ndarray, np.ndarray]:
        """Train and test indices with `speaker` held out (speaker-independent)."""
        if speaker not in set(self.speakers.tolist()):
            raise ValueError(f"Unknown speaker {speaker!r}; FSDD's are "
                             f"{sorted(set(self.speakers.tolist()))}.")
        test = self.speakers == speaker
        return np.flatnonzero(~test), np.flatnonzero(test)

    def take(self, rows: Sequence[int]) -> list[np.ndarray]:
        """The waveforms at `rows`."""
        return [self.waveforms[i] for i in rows]


def load_fsdd(root: str | os.PathLike | None = None) -> SpokenDigits:
    """The Free Spoken Digit Dataset from `<root>/speech/fsdd/fsdd_8k.npz` (every clip in one
    int16 array with offsets; `root`, else `$TSK_DATA_DIR`)."""
    path = find_file(root, ["speech/fsdd/fsdd_8k.npz"], what="The Free Spoken Digit Dataset",
                     source=f"{FSDD_SOURCE}: its recordings/*.wav packed as an npz with audio "
                     "(int16, every clip concatenated), offsets, digit, speaker, index, "
                     "speaker_names and sample_rate")
    with np.load(path) as data:
        audio = data["audio"].astype(np.float32) / 32768.0
        offsets = data["offsets"]
        waveforms = [audio[offsets[i]:offsets[i + 1]].copy() for i in range(len(offsets) - 1)]
        names = data["speaker_names"].astype(str)
        return SpokenDigits(waveforms, data["digit"].astype(np.int64), names[data["speaker"]],
                            data["index"].astype(np.int64), int(data["sample_rate"]))
