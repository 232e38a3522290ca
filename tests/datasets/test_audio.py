"""Audio reading: clips from arrays and files, one rate, the errors a user meets; FSDD's loader."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from tsk.datasets import as_waveforms, load_fsdd, read_audio
from tsk.datasets.audio import resample


def test_fsdd_loads_every_clip_with_its_split(data_dir):
    digits = load_fsdd(data_dir)
    assert len(digits.waveforms) == 3000 and digits.sample_rate == 8000
    lengths = [len(w) for w in digits.waveforms]
    assert min(lengths) == 1148 and max(lengths) == 18262
    assert all(w.dtype == np.float32 and np.abs(w).max() <= 1.0 for w in digits.waveforms[:50])
    train, test = digits.official_split()
    assert len(train) == 2700 and len(test) == 300
    assert set(digits.repetitions[test]) == set(range(5))
    assert sorted(set(digits.speakers)) == ["george", "jackson", "lucas", "nicolas", "theo",
                                             "yweweler"]
    train, test = digits.speaker_split("theo")
    assert len(test) == 500 and set(digits.speakers[test]) == {"theo"}
    assert "theo" not in set(digits.speakers[train])
    with pytest.raises(ValueError, match="Unknown speaker"):
        digits.speaker_split("alice")


def test_fsdd_missing_names_the_file_and_its_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="fsdd_8k.npz.*free-spoken-digit-dataset"):
        load_fsdd(tmp_path)


def test_arrays_tensors_and_pcm_become_float_waveforms():
    pcm = np.array([0, 16384, -32768], dtype=np.int16)
    waves, rate = as_waveforms([pcm, torch.tensor([0.5, -0.25]), np.ones(4)], 8000)
    assert rate == 8000
    np.testing.assert_allclose(waves[0], [0.0, 0.5, -1.0])
    np.testing.assert_allclose(waves[1], [0.5, -0.25])
    assert all(w.dtype == np.float32 and w.ndim == 1 for w in waves)
    waves, _ = as_waveforms(np.ones((3, 5)), 8000)  # one [n, samples] array
    assert len(waves) == 3


def test_files_are_read_and_brought_to_one_rate(tmp_path):
    t = np.arange(8000) / 8000
    soundfile.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 8000)
    t16 = np.arange(16000) / 16000
    soundfile.write(tmp_path / "b.flac", 0.5 * np.sin(2 * np.pi * 440 * t16), 16000)
    samples, rate = read_audio(tmp_path / "b.flac")
    assert rate == 16000 and samples.shape == (1, 16000)
    waves, rate = as_waveforms([tmp_path / "a.wav", str(tmp_path / "b.flac")], None)
    assert rate == 8000 and len(waves[1]) == 8000  # resampled to the first clip's rate
    # the same tone, whichever rate it was stored at (away from the edges)
    np.testing.assert_allclose(waves[1][200:-200], waves[0][200:-200], atol=2e-3)
    waves, rate = as_waveforms([tmp_path / "a.wav"], None, target_rate=16000)
    assert rate == 16000 and len(waves[0]) == 16000
    with pytest.raises(ValueError, match="at 16000 Hz, not 8000 Hz: resample it"):
        as_waveforms([tmp_path / "b.flac"], None, target_rate=8000, mismatch_hint="resample it")


def test_resampling_keeps_a_band_limited_tone():
    t8, t16 = np.arange(4000) / 8000, np.arange(8000) / 16000
    up = resample(np.sin(2 * np.pi * 500 * t8).astype(np.float32), 8000, 16000)
    np.testing.assert_allclose(up[400:-400], np.sin(2 * np.pi * 500 * t16)[400:-400], atol=2e-3)


def test_stereo_is_refused_or_mixed_down_as_asked(tmp_path):
    stereo = np.stack([np.full(100, 0.2), np.full(100, 0.4)])
    with pytest.raises(ValueError, match="2 channels.*mono='mean'"):
        as_waveforms([stereo], 8000)
    np.testing.assert_allclose(as_waveforms([stereo], 8000, mono="mean")[0][0], 0.3, rtol=1e-6)
    np.testing.assert_allclose(as_waveforms([stereo], 8000, mono="first")[0][0], 0.2, rtol=1e-6)
    soundfile.write(tmp_path / "stereo.wav", stereo.T, 8000)
    with pytest.raises(ValueError, match="stereo.wav.*2 channels"):
        as_waveforms([tmp_path / "stereo.wav"], None)


@pytest.mark.parametrize("clip, message", [
    (np.array([], dtype=np.float32), "Clip 1 is empty"),
    (np.zeros(50), "Clip 1 is all zeros"),
    (np.array([0.1, np.nan, 0.2]), "Clip 1 has 1 NaN or infinite sample.*sample 1"),
    (np.array(["a", "b"]), "Clip 1 must hold numbers"),
    (np.ones((2, 2, 2)), r"Clip 1 must be \[samples\] or \[channels, samples\]"),
])
def test_bad_clips_are_named(clip, message):
    with pytest.raises((ValueError, TypeError), match=message):
        as_waveforms([np.ones(10), clip], 8000)


def test_bad_calls_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="sample_rate is required"):
        as_waveforms([np.ones(10)], None)
    with pytest.raises(ValueError, match="positive integer"):
        as_waveforms([np.ones(10)], 8000.5)
    with pytest.raises(ValueError, match="No clips"):
        as_waveforms([], 8000)
    with pytest.raises(ValueError, match="mono must be"):
        as_waveforms([np.ones(10)], 8000, mono="left")
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(ValueError, match="notes.wav is not an audio file"):
        as_waveforms([tmp_path / "notes.wav"], None)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        as_waveforms([tmp_path / "missing.wav"], None)
