"""`Classifier`: inputs of every form, labels of every type, the small-data default, scikit-learn's
tools, persistence and the errors a user meets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

import tsk
from tsk.estimators import classifier as classifier_module

FAST = dict(d_model=8, n_layers=1, max_epochs=15, batch_size=16, learning_rate=1e-2,
            enable_progress_bar=False, random_state=0)


def waves(n: int = 40, length: int = 30, channels: int = 1, seed: int = 0,
          lengths: tuple[int, int] | None = None) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray]:
    """Slow sines (label 0) and fast ones (label 1), random phase, level and scale."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    series = []
    for label in labels:
        size = length if lengths is None else int(rng.integers(*lengths))
        t = np.arange(size)
        period = 12 if label == 0 else 4
        base = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        rows = [rng.uniform(0.5, 3) * base + rng.normal() + 0.1 * rng.standard_normal(size)
                for _ in range(channels)]
        series.append(np.stack(rows))
    return (series if lengths is not None else np.stack(series)), labels


def test_learns_and_predicts_with_the_classifier_contract():
    X, y = waves(60)
    clf = tsk.Classifier("s4d", **FAST)
    assert clf.fit(X, y) is clf
    X_test, y_test = waves(40, seed=1)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert clf.classes_.tolist() == [0, 1]
    assert clf.score(X_test, y_test) >= 0.9
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[proba.argmax(1)])
    scores = clf.evaluate(X_test, y_test)
    assert scores["accuracy"] == pytest.approx(clf.score(X_test, y_test))
    assert set(scores) >= {"accuracy", "balanced_accuracy", "f1_macro", "log_loss", "confusion_matrix"}
    assert np.sum(scores["confusion_matrix"]) == 40


@pytest.mark.parametrize("labels", [np.array(["slow", "fast"]), np.array([True, False]),
                                    np.array([-1, 1])])
def test_string_integer_and_boolean_labels_come_back_as_given(tmp_path, labels):
    X, codes = waves(20)
    y = labels[codes]
    clf = tsk.Classifier("lstm", **{**FAST, "max_epochs": 2}).fit(X, y)
    assert clf.classes_.dtype == np.sort(labels).dtype and set(clf.classes_) == set(labels)
    assert set(clf.predict(X)) <= set(labels)
    clf.save(tmp_path / "model")
    again = tsk.load(tmp_path / "model")
    np.testing.assert_array_equal(again.classes_, clf.classes_)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_univariate_array_list_and_long_frame_are_the_same_data():
    X, y = waves(12, channels=2)
    frame = pd.concat([pd.DataFrame({"unique_id": f"id{i}", "ds": np.arange(30)[::-1],
                                     "a": X[i, 0, ::-1], "b": X[i, 1, ::-1]})
                       for i in range(12)], ignore_index=True)  # rows in reverse time order
    labels = pd.Series(y, index=[f"id{i}" for i in range(12)]).sample(frac=1, random_state=0)
    from_array = tsk.Classifier("s4d", **{**FAST, "max_epochs": 2}).fit(X, y)
    from_frame = tsk.Classifier("s4d", **{**FAST, "max_epochs": 2}).fit(frame, labels)
    np.testing.assert_allclose(from_frame.predict_proba(frame), from_array.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    as_list = [x for x in X]
    np.testing.assert_allclose(from_array.predict_proba(as_list), from_array.predict_proba(X))
    univariate = tsk.Classifier("s4d", **{**FAST, "max_epochs": 1}).fit(X[:, 0], y)
    assert univariate.n_channels_ == 1 and univariate.predict(X[:, 0]).shape == (12,)


def test_variable_lengths_train_and_predict_without_padding_artifacts():
    X, y = waves(30, lengths=(8, 40))
    clf = tsk.Classifier("mamba", **{**FAST, "max_epochs": 3}).fit(X, y)
    batched = clf.predict_proba(X)
    alone = np.concatenate([clf.predict_proba([x]) for x in X])
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-6)


def test_small_training_sets_train_a_fixed_budget_on_all_series(monkeypatch):
    X, y = waves(20)
    small = tsk.Classifier("s4d", **{**FAST, "max_epochs": 3}).fit(X, y)
    assert small.fit_summary_.epochs == 3 and small.fit_summary_.history == []
    monkeypatch.setattr(classifier_module, "AUTO_VALIDATION_MIN_SERIES", 20)
    large = tsk.Classifier("s4d", **{**FAST, "max_epochs": 3}).fit(X, y)
    assert len(large.fit_summary_.history) == 3  # a validation split, scored every epoch
    assert {"val_loss", "val_accuracy"} <= set(large.fit_summary_.history[0])
    fixed = tsk.Classifier("s4d", validation_size=0.25, **{**FAST, "max_epochs": 2}).fit(X, y)
    assert len(fixed.fit_summary_.history) == 2


def test_class_weight_balanced_and_by_label():
    X, y = waves(24)
    y = np.where(np.arange(24) < 18, "a", "b")  # 18 / 6
    clf = tsk.Classifier("s4d", class_weight="balanced", **{**FAST, "max_epochs": 1}).fit(X, y)
    np.testing.assert_allclose(clf.class_weights_, [24 / (2 * 18), 24 / (2 * 6)])
    np.testing.assert_allclose(clf.net_.class_weights.numpy(), clf.class_weights_)
    clf = tsk.Classifier("s4d", class_weight={"b": 3.0}, **{**FAST, "max_epochs": 1}).fit(X, y)
    np.testing.assert_allclose(clf.class_weights_, [1.0, 3.0])
    with pytest.raises(ValueError, match="class_weight names labels not in y"):
        tsk.Classifier("s4d", class_weight={"c": 2.0}, **FAST).fit(X, y)


def test_scikit_learn_cross_validation_and_grid_search():
    X, y = waves(24)
    scores = cross_val_score(tsk.Classifier("s4d", **{**FAST, "max_epochs": 2}), X, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    search = GridSearchCV(tsk.Classifier("s4d", **{**FAST, "max_epochs": 2}),
                          {"pooling": ["mean", "last"]}, cv=2).fit(X, y)
    assert search.best_params_["pooling"] in ("mean", "last")
    assert search.predict(X).shape == (24,)


def test_bidirectional_and_non_causal_backbones_fit():
    X, y = waves(16, lengths=(10, 30))
    for backbone, extra in (("s4d", {"bidirectional": True}), ("tpgn", {"backbone_kwargs": {"period": 5}})):
        clf = tsk.Classifier(backbone, **{**FAST, "max_epochs": 1}, **extra).fit(X, y)
        alone = np.concatenate([clf.predict_proba([x]) for x in X[:4]])
        np.testing.assert_allclose(clf.predict_proba(X[:4]), alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda X, y: (X, np.zeros(len(y))), ValueError, "single class"),
    (lambda X, y: (X, y[:-1]), ValueError, "40 series but y has 39 labels"),
    (lambda X, y: (np.where(np.arange(30) == 7, np.nan, X), y), ValueError,
     "Series 0 has 1 missing or infinite value.*step 7"),
    (lambda X, y: ([x for x in X[:-1]] + [np.zeros((1, 0))], y), ValueError, "Series 39 is empty"),
    (lambda X, y: ([x for x in X[:-1]] + [np.zeros((2, 5))], y), ValueError, "same number of channels"),
    (lambda X, y: (X, np.array(["a", 1] * 20, dtype=object)), TypeError, "mixes label types"),
    (lambda X, y: (X, np.where(y == 0, np.nan, 1.0)), ValueError, "missing label"),
    (lambda X, y: ("not data", y), TypeError, "X must be an array"),
])
def test_bad_input_is_refused_with_a_clear_message(make, error, match):
    X, y = waves(40)
    X, y = make(X, y)
    with pytest.raises(error, match=match):
        tsk.Classifier("s4d", **FAST).fit(X, y)


def test_predict_and_score_check_channels_and_labels():
    X, y = waves(20, channels=2)
    clf = tsk.Classifier("s4d", **{**FAST, "max_epochs": 1}).fit(X, y)
    with pytest.raises(ValueError, match="X has 1 channel.*fit on 2"):
        clf.predict(X[:, :1])
    with pytest.raises(ValueError, match="labels the model never saw in fit: \\[7\\]"):
        clf.score(X, np.where(y == 0, 7, 1))


@pytest.mark.parametrize(("params", "match"), [
    ({"pooling": "max"}, "pooling must be one of"),
    ({"validation_size": 1.5}, "validation_size must be None or in"),
    ({"class_weight": "auto"}, "class_weight must be None"),
    ({"backbone": "s4dd"}, "Did you mean 's4d'"),
])
def test_bad_parameters(params, match):
    X, y = waves(10)
    with pytest.raises(ValueError, match=match):
        tsk.Classifier(**{**FAST, **params}).fit(X, y)


def test_validation_data_is_what_early_stopping_follows():
    X, y = waves(20)
    X_val, y_val = waves(10, seed=5)
    clf = tsk.Classifier("s4d", validation_size=0.5, **{**FAST, "max_epochs": 3}).fit(
        X, y, validation_data=(X_val, y_val))
    assert len(clf.fit_summary_.history) == 3
    best = min(h["val_loss"] for h in clf.fit_summary_.history)
    assert clf.fit_summary_.best_val_loss == pytest.approx(best)
    assert clf.evaluate(X_val, y_val)["log_loss"] == pytest.approx(best, rel=1e-4)
    with pytest.raises(ValueError, match="never saw in fit"):
        clf.fit(X, y, validation_data=(X_val, np.full(10, 9)))


def test_normalization_is_per_series_for_one_channel_and_per_channel_across_the_set(tmp_path):
    X, y = waves(20, channels=3)
    X[:, 1] += 10.0  # channel levels a per-series normalization would erase
    multi = tsk.Classifier("s4d", **{**FAST, "max_epochs": 1}).fit(X, y)
    assert multi.normalize_ == "global"
    steps = X.transpose(0, 2, 1).reshape(-1, 3)
    np.testing.assert_allclose(multi.channel_mean_, steps.mean(0), rtol=1e-5)
    np.testing.assert_allclose(multi.net_.input_std.numpy(), steps.std(0), rtol=1e-5)
    shifted = X + np.array([0.0, 5.0, 0.0])[None, :, None]  # a level shift changes the input
    assert not np.allclose(multi.predict_proba(shifted), multi.predict_proba(X))
    multi.save(tmp_path / "multi")
    np.testing.assert_array_equal(tsk.load(tmp_path / "multi").predict_proba(X), multi.predict_proba(X))
    uni = tsk.Classifier("s4d", **{**FAST, "max_epochs": 1}).fit(X[:, :1], y)
    assert uni.normalize_ == "series"  # a level shift of a series changes nothing
    np.testing.assert_allclose(uni.predict_proba(X[:, :1] * 3 + 7), uni.predict_proba(X[:, :1]),
                               rtol=1e-4, atol=1e-6)
    raw = tsk.Classifier("s4d", normalize=None, **{**FAST, "max_epochs": 1}).fit(X, y)
    assert raw.normalize_ == "none"
    with pytest.raises(ValueError, match="normalize must be 'auto', 'series', 'global' or None"):
        tsk.Classifier("s4d", normalize=True, **FAST).fit(X, y)


def test_a_grid_backbone_reads_the_channels_as_variates():
    """Chimera: channels of different-length series, each embedded on its own; a series'
    probabilities do not depend on its batch-mates, and it learns the waves."""
    X, y = waves(40, channels=3, lengths=(20, 30))
    clf = tsk.Classifier("chimera", **{**FAST, "max_epochs": 30}, normalize="series",
                         backbone_kwargs={"d_state": 2}).fit(X, y)
    alone = np.concatenate([clf.predict_proba([x]) for x in X[:4]])
    np.testing.assert_allclose(clf.predict_proba(X[:4]), alone, rtol=1e-4, atol=1e-6)
    X_test, y_test = waves(40, channels=3, lengths=(20, 30), seed=1)
    assert clf.score(X_test, y_test) >= 0.8


def test_auto_patches_only_a_grid_backbones_long_series(tmp_path):
    """patch_len="auto": patches of 8 for Chimera on series of 64 steps or more, one step a
    token below that and for every sequence backbone; a number or None is kept as given, and a
    saved model reads its tokens as it was fit."""
    from tsk.heads.classify import PatchTokens

    tiny = {**FAST, "max_epochs": 1, "backbone_kwargs": {"d_state": 2}}
    X, y = waves(8, length=classifier_module.GRID_PATCH_MIN_LENGTH, channels=2)
    grid = tsk.Classifier("chimera", **tiny).fit(X, y)
    assert grid.patch_len_ == classifier_module.GRID_PATCH_LEN
    assert isinstance(grid.net_.embed.embed, PatchTokens)
    short = tsk.Classifier("chimera", **tiny).fit(X[..., :-1], y)
    assert short.patch_len_ is None
    assert tsk.Classifier("s4d", **{**FAST, "max_epochs": 1}).fit(X, y).patch_len_ is None
    assert tsk.Classifier("chimera", patch_len=None, **tiny).fit(X, y).patch_len_ is None
    assert tsk.Classifier("s4d", patch_len=4, **{**FAST, "max_epochs": 1}).fit(X, y).patch_len_ == 4
    loaded = tsk.load(grid.save(tmp_path / "grid"))
    assert loaded.patch_len_ == grid.patch_len_
    np.testing.assert_allclose(loaded.predict_proba(X), grid.predict_proba(X), rtol=1e-5)
    with pytest.raises(ValueError, match="patch_len"):
        tsk.Classifier("s4d", patch_len="8", **FAST).fit(X, y)


def test_a_speech_classifier_refuses_a_grid_backbone():
    with pytest.raises(ValueError, match="chimera' is a grid backbone"):
        tsk.SpeechClassifier("chimera").fit([np.zeros(1600)] * 2, [0, 1], sample_rate=16000)
