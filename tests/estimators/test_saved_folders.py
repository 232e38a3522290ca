"""Folders saved by tsk 0.1.0 (the forecasting-only release) still load and predict as they did.

`tests/data/saved_0.1.0/*` were written by that release (`est.save`), each with the forecast it
made (`expected_forecast.csv`): a generic-head s4d model and the two papers' own networks
(SpaceTime, TPGN), whose builders moved from the backbones to the heads since.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

import tsk

SAVED = Path(__file__).resolve().parents[1] / "data" / "saved_0.1.0"


@pytest.mark.parametrize("name", ["forecaster_s4d", "forecaster_spacetime", "forecaster_tpgn"])
def test_a_folder_saved_by_the_first_release_loads_and_predicts_as_it_did(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saved by another tsk/torch version: a warning, not an error
        model = tsk.load(SAVED / name)
    expected = pd.read_csv(SAVED / name / "expected_forecast.csv", parse_dates=["ds"])
    pd.testing.assert_frame_equal(model.predict(), expected, check_exact=False, rtol=1e-5, atol=1e-6)
