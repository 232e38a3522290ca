"""`SpeechEnhancer`: it learns to remove noise, keeps every clip's length and rate, reads and
writes files whole, saves and loads, and refuses bad input clearly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

import tsk
from tests.speech_fixtures import RATE, voices
from tsk.cli import main
from tsk.datasets.noise import coloured_noise, mix
from tsk.metrics import si_snr

FAST = dict(d_model=32, n_layers=2, max_epochs=12, batch_size=8, enable_progress_bar=False,
            random_state=0)


def noisy_pairs(n: int, seed: int, snr: float = 0.0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    clean = voices(n, seed=seed)
    return [mix(c, coloured_noise(len(c), "white", rng), snr) for c in clean], clean


@pytest.fixture(scope="module")
def fitted():
    return tsk.SpeechEnhancer("s4d", **FAST).fit(voices(40), "white", snr_db=(-5, 5),
                                                 sample_rate=RATE)


def test_it_learns_to_remove_white_noise(fitted):
    noisy, clean = noisy_pairs(10, seed=7)
    before = np.mean([si_snr(c, x) for c, x in zip(clean, noisy, strict=True)])
    enhanced = fitted.enhance(noisy)
    after = np.mean([si_snr(c, e) for c, e in zip(clean, enhanced, strict=True)])
    assert after > before + 3.0  # dB
    assert [len(e) for e in enhanced] == [len(x) for x in noisy]
    scores = fitted.evaluate(noisy, clean, metrics=("si_snr",))
    assert scores["si_snr"] == pytest.approx(after, abs=1e-3) and scores["n"] == 10
    history = fitted.fit_summary_.history
    assert history[-1]["val_si_snr"] > history[0]["val_si_snr"]


def test_one_clip_in_one_clip_out_and_other_rates_come_back_at_theirs(fitted):
    noisy, _ = noisy_pairs(2, seed=3)
    single = fitted.enhance(noisy[0])
    assert isinstance(single, np.ndarray) and single.shape == noisy[0].shape
    np.testing.assert_allclose(single, fitted.enhance([noisy[0]])[0], atol=1e-6)
    up = np.repeat(noisy[1], 2)  # "16 kHz"
    assert fitted.enhance(up, sample_rate=16000).shape == up.shape


def test_files_are_enhanced_whole_and_a_saved_model_enhances_identically(fitted, tmp_path):
    noisy, _ = noisy_pairs(3, seed=5)
    folder = tmp_path / "noisy"
    folder.mkdir()
    for i, clip in enumerate(noisy):
        soundfile.write(folder / f"{i}.wav", clip, RATE, subtype="FLOAT")
    fitted.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    assert type(loaded) is tsk.SpeechEnhancer and loaded.sample_rate_ == RATE
    np.testing.assert_array_equal(loaded.enhance(noisy[0]), fitted.enhance(noisy[0]))
    out = fitted.enhance_file(folder / "0.wav", tmp_path / "clean" / "0.flac")
    written, rate = soundfile.read(out)
    assert rate == RATE and len(written) == len(noisy[0])
    assert [p.name for p in out.parent.iterdir()] == ["0.flac"]  # no temporary file left
    assert main(["enhance", "--model", str(tmp_path / "model"), str(folder),
                 str(tmp_path / "all"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["0.wav", "1.wav", "2.wav"]
    again, _ = soundfile.read(tmp_path / "all" / "1.wav")
    np.testing.assert_allclose(again, fitted.enhance(noisy[1]), atol=1e-6)


def test_babble_from_recordings_and_explicit_validation_pairs():
    talkers = voices(6, seed=11)
    model = tsk.SpeechEnhancer("lstm", **{**FAST, "max_epochs": 1}, babble_talkers=3)
    noisy, clean = noisy_pairs(4, seed=12)
    model.fit(voices(8), talkers, sample_rate=RATE, validation_data=(noisy, clean))
    assert model.fit_summary_.epochs == 1 and "val_si_snr" in model.fit_summary_.history[0]


@pytest.mark.parametrize("call, message", [
    (lambda m: m.fit(voices(6), "purple", sample_rate=RATE), "noise must be None, one of"),
    (lambda m: m.fit(voices(6), snr_db=(10, 0), sample_rate=RATE), "low <= high"),
    (lambda m: m.fit(voices(6), snr_db=5, sample_rate=RATE), r"snr_db must be \(low, high\)"),
    (lambda m: m.fit(voices(6)), "sample_rate is required"),
    (lambda m: m.set_params(hop_ms=20).fit(voices(6), sample_rate=RATE), "at most half"),
    (lambda m: m.fit(voices(6), sample_rate=RATE,
                     validation_data=(voices(2), voices(3))), "2 noisy clips but 3 clean"),
])
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call(tsk.SpeechEnhancer(**{**FAST, "max_epochs": 1}))


def test_bad_audio_at_enhance_and_tuning_say_what_is_wrong(fitted, tmp_path):
    with pytest.raises(ValueError, match="Clip 0 is all zeros"):
        fitted.enhance(np.zeros(500))
    with pytest.raises(ValueError, match="Pair 0: the noisy clip has 500 samples, the clean one 400"):
        fitted.evaluate([np.ones(500)], [np.ones(400)])
    with pytest.raises(TypeError, match="not supported yet"):
        tsk.tune(fitted, voices(4), n_trials=1)
