"""Noise for speech enhancement: coloured noise (white, pink, brown), babble made from other
speakers' recordings, and mixtures of clean speech and noise at a chosen SNR."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
"""Each colour's spectral slope: power falls as 1 / f^slope."""


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of Gaussian noise whose power spectrum falls as 1/f^slope (white 0, pink
    1, brown 2), unit variance. Shaped in the frequency domain: white noise's spectrum scaled by
    f^(-slope/2), the DC bin set to zero."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {sorted(COLOURS)}, got {colour!r}.")
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    gain = np.zeros_like(frequencies)
    gain[1:] = frequencies[1:] ** (-COLOURS[colour] / 2)
    noise = np.fft.irfft(spectrum * gain, n=length)
    return (noise / max(noise.std(), 1e-12)).astype(np.float32)


def babble(clips: Sequence[np.ndarray], length: int, talkers: int, rng: np.random.Generator
           ) -> np.ndarray:
    """`length` samples of babble: `talkers` recordings drawn from `clips` (other speakers'), each
    standardized, looped to the length from a random start, summed; unit variance."""
    if talkers < 1 or len(clips) == 0:
        raise ValueError("babble needs at least one talker and one clip to draw from.")
    total = np.zeros(length, dtype=np.float64)
    for index in rng.choice(len(clips), size=talkers, replace=len(clips) < talkers):
        clip = np.asarray(clips[index], dtype=np.float64)
        clip = (clip - clip.mean()) / max(clip.std(), 1e-12)
        start = int(rng.integers(len(clip)))
        total += np.resize(np.roll(clip, -start), length)  # np.resize repeats the clip
    return (total / max(total.std(), 1e-12)).astype(np.float32)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`clean + g * noise` with the gain g that puts the mixture at `snr_db` (power ratio of the
    clean signal to the scaled noise, over the clip)."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)[: len(clean)]
    if len(noise) != len(clean):
        raise ValueError(f"noise has {len(noise)} samples, the clean clip {len(clean)}.")
    gain = np.sqrt(np.mean(clean**2) / (max(np.mean(noise**2), 1e-20) * 10 ** (snr_db / 10)))
    return (clean + gain * noise).astype(np.float32)
