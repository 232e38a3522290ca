"""`SpeechClassifier`: clips as arrays or files, the front ends, other sampling rates, persistence,
the Classifier contract it shares, and the errors a user meets."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from sklearn.model_selection import cross_val_score

import tsk
from tests.speech_fixtures import RATE, tones

FAST = dict(d_model=16, n_layers=1, max_epochs=8, batch_size=8, enable_progress_bar=False,
            random_state=0)


@pytest.fixture(scope="module")
def fitted_mel():
    clips, labels = tones(30)
    return tsk.SpeechClassifier("s4d", frontend="mel", n_mels=20, **FAST).fit(
        clips, labels, sample_rate=RATE)


def test_learns_pitch_from_mel_frames(fitted_mel):
    clips, labels = tones(24, seed=1)
    proba = fitted_mel.predict_proba(clips)
    assert proba.shape == (24, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert fitted_mel.classes_.tolist() == ["high", "low", "mid"]
    assert fitted_mel.score(clips, labels) >= 0.9
    scores = fitted_mel.evaluate(clips, labels)
    assert scores["accuracy"] == pytest.approx(fitted_mel.score(clips, labels))
    assert fitted_mel.sample_rate_ == RATE


@pytest.mark.parametrize("frontend", ["mfcc", "raw"])
def test_every_front_end_trains_and_predicts(frontend):
    clips, labels = tones(12)
    clf = tsk.SpeechClassifier("lstm", frontend=frontend, n_filters=8, **{**FAST, "max_epochs": 1})
    clf.fit(clips, labels, sample_rate=RATE)
    assert clf.predict(clips).shape == (12,)
    assert clf.net_.embed.__class__.__name__ == ("RawFrontend" if frontend == "raw"
                                                 else "SpectralFrontend")


def test_files_in_and_a_saved_model_predicts_identically(fitted_mel, tmp_path):
    clips, labels = tones(6, seed=2)
    paths = []
    for i, clip in enumerate(clips):
        paths.append(tmp_path / f"clip{i}.wav")
        soundfile.write(paths[-1], clip, RATE, subtype="FLOAT")
    np.testing.assert_allclose(fitted_mel.predict_proba(paths), fitted_mel.predict_proba(clips),
                               atol=1e-6)
    fitted_mel.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    assert type(loaded) is tsk.SpeechClassifier and loaded.sample_rate_ == RATE
    np.testing.assert_array_equal(loaded.predict_proba(clips), fitted_mel.predict_proba(clips))


def test_audio_at_another_rate_is_resampled_or_refused_as_asked(fitted_mel):
    clips, labels = tones(12, seed=3, rate=16000)
    assert fitted_mel.score(tones(12, seed=3)[0], labels) >= 0.9
    resampled = fitted_mel.predict(clips, sample_rate=16000)  # "auto" resamples for mel
    assert (resampled == labels).mean() >= 0.9
    fitted_mel.set_params(rate_mismatch="raise")
    try:
        with pytest.raises(ValueError, match="at 16000 Hz, not 8000 Hz.*rate_mismatch='raise'"):
            fitted_mel.predict(clips, sample_rate=16000)
    finally:
        fitted_mel.set_params(rate_mismatch="auto")


def test_raw_front_end_adapts_its_step_to_another_rate():
    clips, labels = tones(12)
    clf = tsk.SpeechClassifier("s4d", frontend="raw", n_filters=8, **{**FAST, "max_epochs": 1})
    clf.fit(clips, labels, sample_rate=RATE)
    half = [c[::2] for c in clips]
    adapted = clf.predict_proba(half, sample_rate=4000)  # "auto" adapts for the raw front end
    clf.set_params(rate_mismatch="ignore")
    ignored = clf.predict_proba(half, sample_rate=4000)
    clf.set_params(rate_mismatch="resample")
    resampled = clf.predict_proba(half, sample_rate=4000)
    assert not np.allclose(adapted, ignored) and not np.allclose(adapted, resampled)
    clf.set_params(rate_mismatch="adapt")
    with pytest.raises(ValueError, match="whole number.*Resample"):
        clf.predict(clips, sample_rate=11025)


def test_scikit_learns_cross_validation_passes_the_rate_to_fit():
    clips, labels = tones(18)
    model = tsk.SpeechClassifier("s4d", frontend="mfcc", **{**FAST, "max_epochs": 2})
    scores = cross_val_score(model, clips, labels, cv=2, params={"sample_rate": RATE})
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)


@pytest.mark.parametrize("params, message", [
    ({"frontend": "wav2vec"}, "frontend must be one of"),
    ({"frontend": "mel", "rate_mismatch": "adapt"}, "needs frontend='raw'"),
    ({"rate_mismatch": "stretch"}, "rate_mismatch must be one of"),
    ({"mono": "left"}, "mono must be one of"),
    ({"hop_ms": 0}, "hop_ms must be positive"),
    ({"n_mels": 0}, "n_mels must be a positive integer"),
    ({"spec_augment": (3,)}, "spec_augment must be None or"),
])
def test_bad_parameters_are_refused_at_fit(params, message):
    clips, labels = tones(6)
    with pytest.raises(ValueError, match=message):
        tsk.SpeechClassifier(**{**FAST, **params}).fit(clips, labels, sample_rate=RATE)


def test_bad_audio_and_labels_get_clear_errors(fitted_mel, tmp_path):
    clips, labels = tones(6)
    model = tsk.SpeechClassifier(**FAST)
    with pytest.raises(ValueError, match="sample_rate is required"):
        model.fit(clips, labels)
    with pytest.raises(ValueError, match="6 series but y has 5 labels"):
        model.fit(clips, labels[:5], sample_rate=RATE)
    with pytest.raises(ValueError, match="Clip 2 has 1 NaN"):
        model.fit([*clips[:2], np.array([0.1, np.nan, 0.3]), *clips[3:]], labels, sample_rate=RATE)
    with pytest.raises(ValueError, match="Clip 0 is all zeros"):
        fitted_mel.predict([np.zeros(900)])
    with pytest.raises(ValueError, match="Clip 0 has 2 channels.*mono="):
        fitted_mel.predict([np.ones((2, 900))])
    (tmp_path / "x.wav").write_text("text")
    with pytest.raises(ValueError, match="not an audio file"):
        fitted_mel.predict([tmp_path / "x.wav"])
    with pytest.raises(ValueError, match="never saw in fit"):
        fitted_mel.score(clips, np.array(["low", "mid", "high", "low", "mid", "squeak"]))
