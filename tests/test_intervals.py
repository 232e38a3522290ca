"""Split-conformal prediction intervals (`tsk.conformal`, `Forecaster(conformal=True)`) and the
interval metrics: the quantile rule by hand, the coverage guarantee measured where it holds
exactly (i.i.d. errors) and approximately (a trained network), the units, save/load, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import tsk
from tests.conftest import TINY, make_long, make_wide
from tsk.conformal import check_levels, conformal_quantile, interval_columns
from tsk.heads.forecast import ForecastLoss, SeasonalNaive
from tsk.metrics import coverage, interval_score

HORIZON = TINY["horizon"]


# ---- the quantile rule and the metrics, by hand ----------------------------------------------
def test_the_conformal_quantile_is_the_ceil_n_plus_one_level_th_smallest_score():
    scores = np.array([5.0, 3, 9, 1, 7, 2, 8, 4, 6])  # n = 9
    assert conformal_quantile(scores, 80) == 8  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 70) == 7  # exactly 7: 10 * 0.7 is 7.000000000000001 in floats
    assert conformal_quantile(scores, 50) == 5
    assert conformal_quantile(scores, 90) == 9  # ceil(9.0): the largest
    assert conformal_quantile(scores, 5) == 1  # ceil(0.5): the smallest
    with pytest.raises(ValueError, match=r"95% conformal interval needs at least 19 calibration "
                                         r"scores.*only 9 were scored"):
        conformal_quantile(scores, 95)  # ceil(9.5) = 10 > 9: the interval would be unbounded
    # per position (horizon step x channel), missing scores (NaN) left out of n
    columns = np.stack([scores, 10 * scores, np.r_[scores[:4], np.nan, scores[5:]]], axis=1)
    np.testing.assert_array_equal(conformal_quantile(columns, 80), [8, 80, 9])  # n = 8: ceil(7.2)


def test_levels_are_checked_and_named_as_nixtla_names_them():
    assert check_levels([95, 80, 80.0]) == [80.0, 95.0] and check_levels(90) == [90.0]
    assert interval_columns("y", [80, 95]) == ["y-lo-95", "y-lo-80", "y-hi-80", "y-hi-95"]
    assert interval_columns("OT", [97.5]) == ["OT-lo-97.5", "OT-hi-97.5"]
    for bad in (100, 0, [80, 120], [], True):
        with pytest.raises(ValueError, match="strictly between 0 and 100"):
            check_levels(bad)
    with pytest.raises(TypeError, match="a list of them"):
        check_levels("80")


def test_coverage_and_interval_score_by_hand():
    target, lower, upper = [1.0, 2, 3, 4], [0.0, 2.5, 3, 5], [2.0, 3, 3, 6]
    assert coverage(target, lower, upper) == 0.5  # 1 in [0, 2] and 3 in [3, 3]; 2 and 4 out
    # alpha = 0.2 at 80%: width + 10 x the miss; widths 2, 0.5, 0, 1, misses 0, 0.5, 0, 1
    assert interval_score(target, lower, upper, 80) == pytest.approx((2 + 5.5 + 0 + 11) / 4)
    assert interval_score(target, lower, upper, 50) == pytest.approx((2 + 2.5 + 0 + 5) / 4)
    with pytest.raises(ValueError, match="one shape"):
        coverage(target, lower[:3], upper)
    with pytest.raises(ValueError, match="leave them out first"):
        coverage([np.nan, 1.0], [0.0, 0.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="one level"):
        interval_score(target, lower, upper, [80, 95])


# ---- the guarantee, measured ----------------------------------------------------------------
class ConstantForecast(ForecastLoss, nn.Module):
    """One learned constant at every step: on i.i.d. noise around a level, its errors at each
    horizon step are i.i.d., so calibration and test windows are exchangeable."""

    def __init__(self, horizon: int, n_out: int) -> None:
        super().__init__()
        self.horizon, self.n_out = horizon, n_out
        self.level = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.horizon, self.n_out) + self.level


def noise_around_levels(length: int, scales=(1.0, 2.0, 5.0, 0.5), seed: int = 0) -> pd.DataFrame:
    """Series of i.i.d. Gaussian noise around a level (a known deterministic signal, constant),
    each of its own scale."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-01-01", periods=length, freq="h")
    return pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": ds,
                                    "y": 10.0 * i + scale * rng.standard_normal(length)})
                      for i, scale in enumerate(scales)], ignore_index=True)


def test_coverage_is_nominal_where_the_errors_are_exchangeable(monkeypatch):
    """Four series of i.i.d. noise (scales 0.5 to 5), a model forecasting a constant: the
    backtest's one fit (on the first 2000 rows of each series) calibrates on its 4 x 997
    validation windows, pooled over series in standardized units; the intervals of 1997 fresh
    windows per series (31,952 values) cover 79.5% and 95.0% of them (seeds 0-5: 79.1-80.7%
    and 94.3-95.6%, a standard deviation of 0.5 points)."""
    monkeypatch.setattr(tsk.Forecaster, "_network",
                        lambda self: ConstantForecast(self.horizon, self.n_outputs_))
    df = noise_around_levels(4000)
    model = tsk.Forecaster("s4d", conformal=True, validation_size=0.5, ridge_init=False, **TINY)
    cv = model.cross_validation(df, n_windows=1997, step_size=1, level=[80, 95])
    assert len(cv) == 4 * 1997 * HORIZON and cv.cutoff.min() == pd.Timestamp("2024-03-24 07:00")
    for level, tolerance in ((80, 0.02), (95, 0.015)):
        covered = coverage(cv.y, cv[f"s4d-lo-{level}"], cv[f"s4d-hi-{level}"])
        assert abs(covered - level / 100) < tolerance, (level, covered)
    assert (cv["s4d-lo-95"] < cv["s4d-lo-80"]).all() and (cv["s4d-hi-80"] < cv["s4d-hi-95"]).all()
    assert ((cv["s4d-lo-80"] < cv.s4d) & (cv.s4d < cv["s4d-hi-80"])).all()
    # the half-width is one standardized quantile times each series' own scale: 10x from the
    # series of scale 0.5 to the one of scale 5 (up to their scales' estimation from 1000 rows)
    half = (cv["s4d-hi-80"] - cv.s4d).groupby(cv.unique_id).median()
    assert half["s2"] / half["s3"] == pytest.approx(10, rel=0.1)
    assert half["s3"] == pytest.approx(0.5 * 1.2816, rel=0.1)  # N(0, 0.5^2)'s 80% half-width


def test_a_trained_network_covers_fresh_windows_near_the_level():
    """Noisy sines (a known periodic signal plus i.i.d. noise of std 0.3) and a fitted s4d
    forecaster (this fit keeps its closed-form linear start): on 1,021 fresh windows per series
    (new noise), its intervals cover 80.5% and 95.5% at 80 and 95, near nominal, as its errors
    are about stationary (other seeds, some training off the start: 80.2-80.6%, 94.6-95.4%)."""
    def sines(length: int, seed: int, start: str = "2024-01-01") -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        t = np.arange(length)
        return pd.concat([pd.DataFrame({
            "unique_id": f"s{i}", "ds": pd.date_range(start, periods=length, freq="h"),
            "y": 5.0 * i + (i + 1) * np.sin(2 * np.pi * t / 12 + i) + 0.3 * rng.standard_normal(length),
        }) for i in range(3)], ignore_index=True)

    train = sines(600, seed=0)
    params = {**TINY, "lookback": 24, "max_epochs": 4}
    model = tsk.Forecaster("s4d", conformal=True, validation_size=0.3, **params).fit(train)
    assert model.conformal_scores_.shape == (3 * (180 - HORIZON + 1), HORIZON, 1)
    test = sines(1024 + 24, seed=1, start="2024-01-26")  # continues the phase: 600 h = 25 days
    scores = model.evaluate(test, level=[80, 95])
    assert scores["n_windows"] == 3 * (1048 - 24 - HORIZON + 1)
    assert abs(scores["coverage_80"] - 0.80) < 0.03 and abs(scores["coverage_95"] - 0.95) < 0.02
    assert scores["interval_score_80"] < scores["interval_score_95"]  # wider, fewer misses


# ---- the units, by hand; save/load; errors -----------------------------------------------------
@pytest.fixture(scope="module")
def calibrated() -> tsk.Forecaster:
    return tsk.Forecaster("s4d", conformal=True, **TINY).fit(make_long(n_series=2, length=100))


def test_intervals_are_the_score_quantile_times_each_series_scale(calibrated):
    """Known scores and the last value as the forecast: the 80% bounds are the last value
    -/+ 0.8 (h + 1) x the series' scale, and evaluate's coverage counts by hand."""
    model = calibrated
    network, scores = model.net_, model.conformal_scores_
    try:
        model.net_ = SeasonalNaive(HORIZON, 1, 1)  # repeats the last value
        # 9 windows; at step h the scores are 0.1 (h + 1) x 1..9, so the 80% quantile (the 8th)
        # is 0.8 (h + 1) in standardized units
        model.conformal_scores_ = (np.arange(1, 10)[:, None, None] * 0.1
                                   * np.arange(1, HORIZON + 1)[None, :, None])
        df = make_long(n_series=2, length=60)
        forecast = model.predict(df, level=[80])
        evaluated = model.evaluate(df, level=[80])
    finally:
        model.net_, model.conformal_scores_ = network, scores
    assert list(forecast.columns) == ["unique_id", "ds", "y", "y-lo-80", "y-hi-80"]
    covered, windows = [], []
    for uid, part in forecast.groupby("unique_id"):
        history = df[df.unique_id == uid].y.to_numpy()
        scale = model.scalers_[uid].scale[0]
        half = 0.8 * np.arange(1, HORIZON + 1) * scale
        np.testing.assert_allclose(part.y, history[-1], rtol=1e-6)
        np.testing.assert_allclose(part["y-lo-80"], history[-1] - half, rtol=1e-6)
        np.testing.assert_allclose(part["y-hi-80"], history[-1] + half, rtol=1e-6)
        starts = np.arange(len(history) - 16 - HORIZON + 1)
        truth = history[starts[:, None] + 16 + np.arange(HORIZON)]
        last = history[starts + 15][:, None]
        covered.append(np.mean(np.abs(truth - last) <= half))
        windows.append(len(starts))
    assert evaluated["coverage_80"] == pytest.approx(np.average(covered, weights=windows), abs=1e-9)


def test_save_and_load_keep_the_intervals_identical(calibrated, tmp_path):
    forecast = calibrated.predict(level=[80, 95])
    assert list(forecast.columns) == ["unique_id", "ds", "y", "y-lo-95", "y-lo-80", "y-hi-80",
                                      "y-hi-95"]
    assert (forecast["y-lo-95"] < forecast["y-lo-80"]).all()
    assert (forecast["y-hi-80"] < forecast["y-hi-95"]).all()
    loaded = tsk.load(calibrated.save(tmp_path / "model"))
    assert loaded.conformal is True
    np.testing.assert_array_equal(loaded.conformal_scores_, calibrated.conformal_scores_)
    pd.testing.assert_frame_equal(loaded.predict(level=[80, 95]), forecast)
    pd.testing.assert_frame_equal(loaded.predict(), calibrated.predict())  # the same point forecast


def test_wide_data_gets_intervals_per_target():
    model = tsk.Forecaster("lstm", conformal=True, channel_independent=False, **TINY)
    forecast = model.fit(make_wide(length=120, channels=2)).predict(level=80)
    assert list(forecast.columns) == ["ds", "c0", "c1", "c0-lo-80", "c0-hi-80", "c1-lo-80", "c1-hi-80"]
    assert model.conformal_scores_.shape[1:] == (HORIZON, 2)  # per step and channel


def test_level_without_calibration_says_how_to_get_it(calibrated):
    df = make_long(n_series=2, length=100)
    plain = tsk.Forecaster("s4d", **TINY).fit(df)
    for call in (lambda: plain.predict(level=[80]), lambda: plain.evaluate(df, level=80),
                 lambda: plain.cross_validation(df, n_windows=2, level=80)):
        with pytest.raises(ValueError, match=r"only with conformal=True: create it with"):
            call()
    assert not hasattr(plain, "conformal_scores_")
    with pytest.warns(UserWarning, match="conformal=True found no validation window"):
        unvalidated = tsk.Forecaster("s4d", conformal=True, validation_size=0, **TINY).fit(df)
    with pytest.raises(ValueError, match="no conformal calibration.*validation_size"):
        unvalidated.predict(level=[80])
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        calibrated.predict(level=[80, 100])
    with pytest.raises(TypeError, match="conformal must be True or False"):
        tsk.Forecaster("s4d", conformal="yes", **TINY).fit(df)
    refit = tsk.Forecaster("s4d", conformal=True, **TINY).fit(df)
    refit.set_params(conformal=False).fit(df)  # a refit without conformal drops the calibration
    assert not hasattr(refit, "conformal_scores_")


def test_check_intervals_says_before_a_fit_what_a_model_cannot_give():
    tsk.Forecaster(conformal=True).check_intervals([80, 95])
    tsk.Forecaster(quantiles=[0.1, 0.5, 0.9]).check_intervals(80, quantiles=[0.1])
    tsk.Forecaster(distribution="normal").check_intervals([50, 99], quantiles=[0.01])
    with pytest.raises(ValueError, match="conformal=True"):
        tsk.Forecaster().check_intervals([80])
    with pytest.raises(ValueError, match="80"):
        tsk.Forecaster(quantiles=[0.1, 0.5, 0.9]).check_intervals([95])
    with pytest.raises(ValueError, match="conformal"):
        tsk.Forecaster(quantiles=[0.5], conformal=True).check_intervals()
