"""`Forecaster.cross_validation`: Nixtla's backtest, checked by hand on tiny series whose
forecast is known (every fit's network replaced by the last value), and how often it refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsk
from tsk.heads.forecast import SeasonalNaive

PARAMS = dict(horizon=2, lookback=4, d_model=8, n_layers=1, max_epochs=1, batch_size=32,
              enable_progress_bar=False, random_state=0)
HOUR = pd.Timedelta("1h")
START = pd.Timestamp("2024-01-01")


def two_series() -> pd.DataFrame:
    """s0: hours 0-15, y = 100 + hour; s1: hours 4-17 (14 rows, ends 2 h later), y = 50 - 2 row."""
    s0 = pd.DataFrame({"unique_id": "s0", "ds": START + HOUR * np.arange(16),
                       "y": 100.0 + np.arange(16)})
    s1 = pd.DataFrame({"unique_id": "s1", "ds": START + HOUR * np.arange(4, 18),
                       "y": 50.0 - 2 * np.arange(14)})
    return pd.concat([s1, s0], ignore_index=True)  # unsorted: the backtest sorts


@pytest.fixture
def last_value_fits(monkeypatch):
    """Every fit trains as usual, then forecasts the last value; the frames fits were given,
    and which fitted model forecast which windows, are recorded."""
    fits, windows = [], []
    fit, backtest = tsk.Forecaster.fit, tsk.Forecaster._backtest

    def fit_then_last_value(self, df, *args, **kwargs):
        fit(self, df, *args, **kwargs)
        fits.append(df)
        self.net_ = SeasonalNaive(self.horizon, 1, self.n_outputs_)
        return self

    def recorded(self, series, ends, *options):  # options: level, quantiles
        windows.append((len(fits), [list(stops) for stops in ends]))
        return backtest(self, series, ends, *options)

    monkeypatch.setattr(tsk.Forecaster, "fit", fit_then_last_value)
    monkeypatch.setattr(tsk.Forecaster, "_backtest", recorded)
    return fits, windows


def expected_backtest() -> pd.DataFrame:
    """By hand: 3 windows 2 steps apart, the last ending at each series' end. s0 (16 rows) cuts
    after its rows 9, 11, 13 (hours 9, 11, 13); s1 (14 rows from hour 4) after its rows 7, 9,
    11 (hours 11, 13, 15). Each forecast repeats the value at its cutoff."""
    rows = []
    for uid, first_hour, value, cutoff_rows in (("s0", 0, lambda r: 100.0 + r, (9, 11, 13)),
                                                 ("s1", 4, lambda r: 50.0 - 2 * r, (7, 9, 11))):
        for cut in cutoff_rows:
            for step in (1, 2):
                rows.append({"unique_id": uid, "ds": START + HOUR * (first_hour + cut + step),
                             "cutoff": START + HOUR * (first_hour + cut), "y": value(cut + step),
                             "s4d": value(cut)})
    return pd.DataFrame(rows)


def test_cutoffs_actuals_and_forecasts_by_hand(last_value_fits):
    fits, _ = last_value_fits
    model = tsk.Forecaster("s4d", **PARAMS)
    cv = model.cross_validation(two_series(), n_windows=3, step_size=2)
    expected = expected_backtest()
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "s4d"]
    pd.testing.assert_frame_equal(cv.drop(columns="s4d"), expected.drop(columns="s4d"))
    np.testing.assert_allclose(cv.s4d, expected.s4d, rtol=1e-6)  # float32 scaling round trip
    # one fit, on each series up to its first cutoff; the estimator itself is left unfitted
    assert len(fits) == 1 and not hasattr(model, "net_")
    assert fits[0].groupby("unique_id").ds.max().to_dict() == {"s0": START + 9 * HOUR,
                                                               "s1": START + 11 * HOUR}


@pytest.mark.parametrize(("refit", "fit_ends", "groups"), [
    (False, [(9, 11)], [[0, 1, 2]]),
    (True, [(9, 11), (11, 13), (13, 15)], [[0], [1], [2]]),
    (2, [(9, 11), (13, 15)], [[0, 1], [2]]),
])
def test_refit_fits_at_every_kth_cutoff_on_the_data_up_to_it(last_value_fits, refit, fit_ends,
                                                            groups):
    fits, windows = last_value_fits
    cv = tsk.Forecaster("s4d", **PARAMS).cross_validation(two_series(), n_windows=3,
                                                          step_size=2, refit=refit)
    assert [tuple((f.groupby("unique_id").ds.max() - START) // HOUR) for f in fits] == fit_ends
    # fit i forecast the windows of group i: the rows of s0 (16) and s1 (14) up to each cutoff
    s0_ends, s1_ends = [10, 12, 14], [8, 10, 12]
    assert windows == [(i + 1, [[s0_ends[k] for k in group], [s1_ends[k] for k in group]])
                       for i, group in enumerate(groups)]
    np.testing.assert_allclose(cv.s4d, expected_backtest().s4d, rtol=1e-6)


def test_default_step_is_the_horizon_and_wide_data_keeps_its_layout(last_value_fits):
    wide = pd.DataFrame({"ds": START + HOUR * np.arange(12), "a": np.arange(12.0),
                         "b": 10.0 * np.arange(12)})
    cv = tsk.Forecaster("s4d", **PARAMS).cross_validation(wide, n_windows=2)
    assert list(cv.columns) == ["ds", "cutoff", "a", "b", "s4d-a", "s4d-b"]
    # step = horizon = 2: cutoffs after rows 7 and 9, forecasting rows 8-9 and 10-11
    assert list(cv.cutoff) == [START + 7 * HOUR] * 2 + [START + 9 * HOUR] * 2
    assert list(cv.ds) == list(START + HOUR * np.arange(8, 12))
    np.testing.assert_array_equal(cv.a, [8, 9, 10, 11])
    np.testing.assert_allclose(cv["s4d-a"], [7, 7, 9, 9], rtol=1e-6)
    np.testing.assert_allclose(cv["s4d-b"], [70, 70, 90, 90], rtol=1e-6)


def test_intervals_match_predict_on_the_data_up_to_the_cutoff(last_value_fits):
    fits, _ = last_value_fits
    df = two_series()
    model = tsk.Forecaster("s4d", conformal=True, validation_size=0.4, **PARAMS)
    # the fit before the first cutoff validates on 3 windows of s0 (s1 is too short to hold
    # some out): enough for levels up to 75 (ceil(4 a) <= 3)
    cv = model.cross_validation(df, n_windows=3, step_size=2, level=[50, 70])
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "s4d", "s4d-lo-70", "s4d-lo-50",
                                "s4d-hi-50", "s4d-hi-70"]
    # the backtest's one fit replayed (same parameters, seed and data: the rows up to the first
    # cutoff), and its predict from that data: the first window's forecast and intervals
    replay = tsk.Forecaster("s4d", conformal=True, validation_size=0.4, **PARAMS).fit(fits[0])
    assert replay.conformal_scores_.shape == (3, 2, 1)
    forecast = replay.predict(fits[0], level=[50, 70])
    first = cv[cv.cutoff == cv.groupby("unique_id").cutoff.transform("min")]
    np.testing.assert_allclose(first.iloc[:, 4:], forecast.iloc[:, 2:], rtol=1e-6)
    assert (first["s4d-lo-70"] < first["s4d-lo-50"]).all()


def test_interpolation_fills_a_context_from_the_past_only(last_value_fits):
    """s0 misses hours 9 (its first cutoff) and 10: the first window's context ends with the
    last value before (108, repeated), not a value interpolated towards hour 11; its actual at
    hour 10 stays missing."""
    df = two_series()
    df.loc[(df.unique_id == "s0") & df.ds.isin([START + 9 * HOUR, START + 10 * HOUR]), "y"] = np.nan
    with pytest.warns(UserWarning, match="Filled 1 missing value"):
        cv = tsk.Forecaster("s4d", missing="interpolate", **PARAMS).cross_validation(
            df, n_windows=3, step_size=2)
    s0 = cv[cv.unique_id == "s0"]
    np.testing.assert_allclose(s0.s4d, [108, 108, 111, 111, 113, 113], rtol=1e-6)
    assert np.isnan(s0.y.iloc[0]) and s0.y.iloc[1] == 111


def test_series_too_short_and_bad_arguments_raise_clearly():
    model = tsk.Forecaster("s4d", **PARAMS)
    with pytest.raises(ValueError, match=r"2 series are too short to backtest: 6 window\(s\) of "
                                         r"horizon 2, 2 step\(s\) apart, hold out the last 12 rows "
                                         r".*lookback \+ horizon = 6 rows, 18 in all: 's0' \(16 "
                                         r"rows\), 's1' \(14 rows\)"):
        model.cross_validation(two_series(), n_windows=6, step_size=2)
    with pytest.raises(ValueError, match="n_windows must be a positive integer"):
        model.cross_validation(two_series(), n_windows=0)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        model.cross_validation(two_series(), n_windows=2, step_size=0)
    with pytest.raises(ValueError, match=r"refit must be a positive number of windows"):
        model.cross_validation(two_series(), n_windows=2, refit=0)
    with pytest.raises(TypeError, match="refit must be True, False or a number"):
        model.cross_validation(two_series(), n_windows=2, refit="always")
