"""The Forecaster on messy data: `missing`, `duplicates` and `freq` at fit, predict, evaluate and
through save/load (the frame-level policies are in tests/datasets/test_messy_data.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import tsk
from tests.conftest import TINY, make_long
from tsk.heads.forecast import SeasonalNaive

LOOKBACK, HORIZON = TINY["lookback"], TINY["horizon"]


def nan_runs() -> pd.DataFrame:
    """Two hourly series of 80 steps: s0 misses steps 20-29 (training part), s1 misses its last
    10 steps (70-79, in its validation part: the last 16 steps, after 16 of context)."""
    df = make_long(n_series=2, length=80)
    step = df.groupby("unique_id").cumcount()
    df.loc[(df.unique_id == "s0") & step.between(20, 29), "y"] = np.nan
    df.loc[(df.unique_id == "s1") & (step >= 70), "y"] = np.nan
    return df


def fit_quietly(model: tsk.Forecaster, df: pd.DataFrame) -> tsk.Forecaster:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(df)


@pytest.fixture(scope="module")
def masked() -> tsk.Forecaster:
    return fit_quietly(tsk.Forecaster("s4d", missing="mask", **TINY), nan_runs())


def test_missing_values_still_raise_by_default_naming_the_policies():
    with pytest.raises(ValueError, match=r"missing or infinite value.*missing='mask'.*"
                                         r"missing='interpolate'"):
        tsk.Forecaster("s4d", **TINY).fit(nan_runs())


@pytest.mark.parametrize(("params", "error"), [
    ({"missing": "drop"}, "Unknown missing-value policy"),
    ({"duplicates": "last"}, "Unknown duplicates policy"),
    ({"freq": "ten minutes"}, "is not a positive pandas frequency"),
])
def test_unknown_policies_raise_before_any_data_is_read(params, error):
    with pytest.raises(ValueError, match=error):
        tsk.Forecaster("s4d", **params, **TINY).fit(None)


def test_mask_trains_on_a_nan_run_and_counts_the_windows_it_skips():
    # s0: the training windows whose 4-step horizon lies inside steps 20-29 start at 4..10 (7);
    # s1: the validation windows inside steps 70-79 start at 54..60 (7)
    with pytest.warns(UserWarning, match=r"Skipped 7 training and 7 validation window\(s\) whose "
                                         "targets are all missing"):
        model = tsk.Forecaster("s4d", missing="mask", **TINY).fit(nan_runs())
    assert model.missing_flags_ == ["y"] and model.n_inputs_ == 2  # the value and its flag
    losses = [h["val_loss"] for h in model.fit_summary_.history]
    assert losses and np.isfinite(losses).all() and np.isfinite(model.fit_summary_.best_val_loss)
    assert all(torch.isfinite(p).all() for p in model.net_.parameters())
    forecast = model.predict()
    assert np.isfinite(forecast.y).all() and len(forecast) == 2 * HORIZON


def test_a_nan_run_in_the_validation_part_only():
    df = nan_runs()
    df.loc[df.unique_id == "s0", "y"] = make_long(n_series=2, length=80).y[:80].to_numpy()
    with pytest.warns(UserWarning, match=r"Skipped 7 validation window\(s\)"):
        model = tsk.Forecaster("lstm", missing="mask", **TINY).fit(df)
    assert np.isfinite(model.fit_summary_.best_val_loss)
    assert np.isfinite(list(model.fit_summary_.baselines.values())).all()
    assert np.isfinite(model.predict().y).all()  # s1's context (its last 16 steps) is half missing


def test_evaluate_scores_only_the_observed_targets(masked):
    """With the last value as the forecast, the masked MSE is computable by hand: per series, the
    mean squared error over the observed targets of every window with one, weighted by windows."""
    df = nan_runs()
    model = masked
    network = model.net_
    try:
        model.net_ = SeasonalNaive(HORIZON, 1, 1)  # repeats the last input (a missing one: 0)
        scores = model.evaluate(df)
    finally:
        model.net_ = network
    per_series, windows = [], []
    for uid, part in df.groupby("unique_id"):
        scaler = model.scalers_[uid]
        z = (part.y.to_numpy() - scaler.mean[0]) / scaler.scale[0]
        errors, n = [], 0
        for start in range(len(z) - LOOKBACK - HORIZON + 1):
            truth = z[start + LOOKBACK : start + LOOKBACK + HORIZON]
            if np.isnan(truth).all():
                continue
            last = z[start + LOOKBACK - 1]
            guess = 0.0 if np.isnan(last) else last
            errors.extend((truth[~np.isnan(truth)] - guess) ** 2)
            n += 1
        per_series.append(np.mean(errors))
        windows.append(n)
    assert windows == [61 - 7, 61 - 7] and scores["n_windows"] == sum(windows)
    assert scores["mse"] == pytest.approx(np.average(per_series, weights=windows), rel=1e-5)
    assert np.isfinite([scores["mae"], scores["mase"], scores["smape"]]).all()


def test_predict_masks_missing_values_in_the_context(masked):
    df = make_long(n_series=2, length=40)
    df.loc[df.groupby("unique_id").cumcount() >= 37, "y"] = np.nan  # the last 3 context steps
    forecast = masked.predict(df)
    assert np.isfinite(forecast.y).all() and len(forecast) == 2 * HORIZON


def test_missing_covariates_get_their_own_flag():
    df = make_long(n_series=2, length=60, exogenous=1)
    df.loc[[10, 11, 70], "x0"] = np.nan
    model = fit_quietly(tsk.Forecaster("s4d", missing="mask", exogenous=["x0"],
                                       **{**TINY, "max_steps": 2}), df)
    assert model.missing_flags_ == ["x0"] and model.n_inputs_ == 3  # y, x0, x0's flag
    assert np.isfinite(model.predict().y).all()


def test_interpolate_and_drop_exact_fit_as_if_the_data_were_complete():
    df = make_long(n_series=2, length=60)
    filled = df.copy()
    step = df.groupby("unique_id").cumcount()
    rows = df.index[(df.unique_id == "s0") & step.between(20, 22)]
    df.loc[rows, "y"] = np.nan
    before, after = filled.y[rows[0] - 1], filled.y[rows[-1] + 1]
    filled.loc[rows, "y"] = before + (after - before) * np.arange(1, 4) / 4  # the line by hand
    messy = pd.concat([df, df.iloc[[45]]], ignore_index=True)  # and an exact duplicate row
    with pytest.warns(UserWarning) as caught:
        model = tsk.Forecaster("s4d", missing="interpolate", duplicates="drop_exact",
                               **TINY).fit(messy)
    messages = " | ".join(str(w.message) for w in caught)
    assert "Filled 3 missing value(s)" in messages and "Dropped 1 exact duplicate" in messages
    reference = tsk.Forecaster("s4d", **TINY).fit(filled)
    pd.testing.assert_frame_equal(model.predict(), reference.predict())
    with pytest.raises(ValueError, match="missing='mask'"):  # the fitted policy, at predict
        reference.predict(df)


def gappy_ten_minutes() -> pd.DataFrame:
    """A wide 10-minute series of 80 steps with 9 steps missing after 05:00 (a 100-minute step)."""
    t = np.arange(80)
    df = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=80, freq="10min"),
                       "a": np.sin(2 * np.pi * t / 12) + 0.01 * t})
    return df.drop(index=range(31, 40)).reset_index(drop=True)


def test_freq_gap_raises_under_the_default_missing_policy():
    with pytest.raises(ValueError, match=r"9 step\(s\) missing between 2024-01-01 05:00:00 and "
                                         r"2024-01-01 06:40:00.*missing='mask'"):
        tsk.Forecaster("s4d", freq="10min", **TINY).fit(gappy_ten_minutes())


def test_save_load_keeps_the_policies(tmp_path):
    with pytest.warns(UserWarning, match=r"inserting 9 missing step"):
        model = tsk.Forecaster("s4d", missing="mask", freq="10min", duplicates="mean",
                               **TINY).fit(gappy_ten_minutes())
    assert model.missing_flags_ == ["a"]
    model.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    params = loaded.get_params()
    assert (params["missing"], params["freq"], params["duplicates"]) == ("mask", "10min", "mean")
    assert loaded.missing_flags_ == ["a"] and loaded.n_inputs_ == model.n_inputs_ == 2
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    recent = gappy_ten_minutes().iloc[-30:].reset_index(drop=True)
    recent = recent.drop(index=[20, 21]).reset_index(drop=True)  # a gap in the context
    with pytest.warns(UserWarning, match=r"inserting 2 missing step"):
        forecast = loaded.predict(recent)
    assert np.isfinite(forecast.a).all()
    assert forecast.ds.iloc[0] == recent.ds.iloc[-1] + pd.Timedelta("10min")
