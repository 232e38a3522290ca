"""Small synthetic audio for the speech tests: tones whose pitch is the label."""

from __future__ import annotations

import numpy as np

RATE = 8000
PITCHES = {"low": 300.0, "mid": 900.0, "high": 2000.0}


def tones(n: int = 30, seed: int = 0, rate: int = RATE, lengths: tuple[int, int] = (800, 2400)
          ) -> tuple[list[np.ndarray], np.ndarray]:
    """`n` clips of different lengths, each a tone (random level and phase, a little noise) at the
    pitch its label names, sampled at `rate`."""
    rng = np.random.default_rng(seed)
    names = np.array(list(PITCHES))
    labels = names[np.arange(n) % len(names)]
    clips = []
    for label in labels:
        size = int(rng.integers(*lengths) * rate / RATE)
        t = np.arange(size) / rate
        wave = rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * PITCHES[label] * t + rng.uniform(0, 6.3))
        clips.append((wave + 0.01 * rng.standard_normal(size)).astype(np.float32))
    return clips, labels


def voices(n: int = 24, seed: int = 0, rate: int = RATE) -> list[np.ndarray]:
    """`n` voiced sounds of 0.2-0.4 s: a harmonic series on a gliding pitch under a smooth
    envelope, speech-like enough to be told apart from broadband noise."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        size = int(rng.uniform(0.2, 0.4) * rate)
        t = np.arange(size) / rate
        pitch = rng.uniform(100, 220) * (1 + rng.uniform(-0.2, 0.2) * t / t[-1])
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        wave = sum(np.sin(k * phase) / k for k in range(1, 8))
        clips.append((np.hanning(size) * wave * rng.uniform(0.1, 0.5)).astype(np.float32))
    return clips
