"""Every registered estimator keeps scikit-learn's contract and tsk's: `__init__` only stores its
parameters (the shared training ones included), get/set_params and clone, NotFittedError before
fit, `fit` returns self, and a save/load round trip predicts identically."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import tsk
from tests.conftest import make_long
from tests.estimators.test_classifier import waves
from tests.estimators.test_points import shapes
from tests.estimators.test_video import squares
from tests.speech_fixtures import RATE, tones, voices
from tsk.estimators import TRAINING_PARAMS, estimators

# per estimator: (a small instance, its fit arguments and keyword arguments, a prediction of the
# fitted model)
EXAMPLES: dict[str, tuple[Callable[[], Any], Callable[[], tuple[tuple, dict]], Callable[[Any], Any]]] = {
    "Forecaster": (
        lambda: tsk.Forecaster("s4d", horizon=4, lookback=16, d_model=8, n_layers=1, max_epochs=1,
                               enable_progress_bar=False, random_state=0),
        lambda: ((make_long(),), {}),
        lambda model: model.predict(),
    ),
    "Classifier": (
        lambda: tsk.Classifier("s4d", d_model=8, n_layers=1, max_epochs=1,
                               enable_progress_bar=False, random_state=0),
        lambda: (waves(12), {}),
        lambda model: model.predict_proba(waves(6, seed=3)[0]),
    ),
    "SpeechClassifier": (
        lambda: tsk.SpeechClassifier("s4d", d_model=8, n_layers=1, max_epochs=1,
                                     enable_progress_bar=False, random_state=0),
        lambda: (tones(9), {"sample_rate": RATE}),
        lambda model: model.predict_proba(tones(4, seed=3)[0]),
    ),
    "SpeechEnhancer": (
        lambda: tsk.SpeechEnhancer("s4d", d_model=8, n_layers=1, max_epochs=1,
                                   enable_progress_bar=False, random_state=0),
        lambda: ((voices(6), "pink"), {"sample_rate": RATE}),
        lambda model: np.concatenate(model.enhance(voices(2, seed=3))),
    ),
    "VideoPredictor": (
        lambda: tsk.VideoPredictor("convs5", d_model=8, n_layers=1, max_epochs=1,
                                   enable_progress_bar=False, random_state=0),
        lambda: ((squares(8),), {}),
        lambda model: model.predict(squares(3, seed=3)[:, :4], n_frames=3),
    ),
    "PointCloudClassifier": (
        lambda: tsk.PointCloudClassifier("s4d", d_model=8, grid_size=8, stages=2, group_size=8,
                                         max_epochs=1, enable_progress_bar=False, random_state=0),
        lambda: (shapes(12), {}),
        lambda model: model.predict_proba(shapes(6, seed=3)[0]),
    ),
}


def test_every_registered_estimator_has_an_example():
    assert set(EXAMPLES) == set(estimators())


@pytest.fixture(params=sorted(EXAMPLES))
def example(request):
    return EXAMPLES[request.param]


def test_init_only_stores_parameters_with_the_shared_training_ones(example):
    model = example[0]()
    params = model.get_params()
    assert {p.name for p in TRAINING_PARAMS} <= set(params)
    assert set(vars(model)) == set(params)  # nothing else, nothing fitted
    signature = inspect.signature(type(model))
    assert all(signature.parameters[p.name].kind == inspect.Parameter.KEYWORD_ONLY
               for p in TRAINING_PARAMS)
    assert "Training parameters" in type(model).__doc__
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    model.set_params(max_epochs=7, batch_size=3)
    assert model.max_epochs == 7 and model.batch_size == 3
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        type(model)(max_epoch=3)


def test_methods_before_fit_raise_not_fitted(example, tmp_path):
    model = example[0]()
    with pytest.raises(NotFittedError):
        example[2](model)
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "never")


def test_fit_returns_self_and_a_saved_model_predicts_identically(example, tmp_path):
    make, data, predict = example
    model = make()
    args, kwargs = data()
    assert model.fit(*args, **kwargs) is model
    assert model.fit_summary_.epochs == 1
    model.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    before, after = predict(model), predict(loaded)
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(before, after)
    else:
        np.testing.assert_array_equal(before, after)
    other = next(cls for name, cls in estimators().items() if cls is not type(model))
    with pytest.raises(ValueError, match=f"not a {other.__name__}"):
        other.load(tmp_path / "model")


@pytest.mark.parametrize(("params", "error", "message"), [
    ({"learning_rate": "0.001"}, TypeError, "learning_rate must be a number"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number above 0"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay must be a finite number of at least 0"),
    ({"d_model": 0}, ValueError, "d_model must be a positive integer"),
    ({"n_layers": 0}, ValueError, "n_layers must be a positive integer"),
    ({"dropout": 1.5}, ValueError, r"dropout must be in \[0, 1\)"),
    ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer"),
    ({"patience": 0}, ValueError, "patience must be a positive integer"),
])
def test_bad_shared_parameters_are_refused_before_any_work(example, params, error, message):
    make, data, _ = example
    args, kwargs = data()
    with pytest.raises(error, match=message):
        make().set_params(**params).fit(*args, **kwargs)
