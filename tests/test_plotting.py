"""Forecast plots (`tsk.plotting`, `Forecaster.plot`): what each panel draws is the data, the
forecast and the intervals, point for point; the layouts, the choice of series, `ax`, and the
errors."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

import tsk
from tests.conftest import TINY, make_long, make_wide
from tsk.plotting import plot_cross_validation, plot_forecast

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.dates import date2num  # noqa: E402

PARAMS = {**TINY, "max_epochs": 1}
HORIZON = TINY["horizon"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def long_data() -> pd.DataFrame:
    return make_long(n_series=3, length=100)


@pytest.fixture(scope="module")
def calibrated(long_data) -> tsk.Forecaster:
    return tsk.Forecaster("lstm", conformal=True, **PARAMS).fit(long_data)


@pytest.fixture(scope="module")
def wide_model() -> tuple[tsk.Forecaster, pd.DataFrame]:
    df = make_wide(length=120, channels=3)
    return tsk.Forecaster("lstm", channel_independent=False, **PARAMS).fit(df), df


def lines(ax) -> dict[str, object]:
    """The labelled lines of a panel by label (history / actual, forecast)."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def assert_band(band: PolyCollection, ds: pd.Series, lower: np.ndarray, upper: np.ndarray) -> None:
    """The band's outline runs along `lower` and `upper` at the times `ds`: at each time, its
    lowest vertex is the lower bound and its highest the upper one."""
    vertices = band.get_paths()[0].vertices
    for x, lo, hi in zip(date2num(ds.to_numpy()), lower, upper, strict=True):
        at = vertices[np.isclose(vertices[:, 0], x, rtol=0, atol=1e-9), 1]
        assert at.min() == pytest.approx(lo) and at.max() == pytest.approx(hi)


# ---- Forecaster.plot ----------------------------------------------------------------------
def test_each_panel_draws_the_history_the_forecast_and_its_intervals(calibrated, long_data):
    fig = calibrated.plot(long_data, n_series=2, level=[80, 95])
    assert len(fig.axes) == 2
    forecast = calibrated.predict(long_data, level=[80, 95])
    for ax, uid in zip(fig.axes, ["s0", "s1"], strict=True):  # the first two ids, in order
        assert ax.get_title(loc="left") == uid
        drawn = lines(ax)
        rows = forecast[forecast.unique_id == uid]
        np.testing.assert_array_equal(drawn["forecast"].get_xdata(), rows.ds.to_numpy())
        np.testing.assert_allclose(drawn["forecast"].get_ydata(), rows.y)
        # the history: the last two lookbacks of the series
        past = long_data[long_data.unique_id == uid].tail(2 * calibrated.lookback_)
        np.testing.assert_array_equal(drawn["history"].get_xdata(), past.ds.to_numpy())
        np.testing.assert_allclose(drawn["history"].get_ydata(), past.y)
        wide, narrow = bands(ax)  # the widest underneath, and lighter
        assert wide.get_label() == "95% interval" and narrow.get_label() == "80% interval"
        assert wide.get_alpha() < narrow.get_alpha()
        assert_band(wide, rows.ds, rows["y-lo-95"], rows["y-hi-95"])
        assert_band(narrow, rows.ds, rows["y-lo-80"], rows["y-hi-80"])
    assert fig.axes[0].get_legend() is not None and fig.axes[1].get_legend() is None


def test_without_data_it_draws_the_training_tail_and_more_series_than_there_are_is_fine(
        calibrated, long_data):
    fig = calibrated.plot(n_series=10)  # 3 series: 3 panels
    assert len(fig.axes) == 3 and not bands(fig.axes[0])  # no level, no band
    forecast = calibrated.predict()
    for ax, uid in zip(fig.axes, ["s0", "s1", "s2"], strict=True):
        drawn = lines(ax)
        np.testing.assert_allclose(drawn["forecast"].get_ydata(), forecast[forecast.unique_id == uid].y)
        past = long_data[long_data.unique_id == uid].tail(calibrated.lookback_)  # all it keeps
        np.testing.assert_array_equal(drawn["history"].get_xdata(), past.ds.to_numpy())
        np.testing.assert_allclose(drawn["history"].get_ydata(), past.y)


def test_it_forecasts_only_the_series_it_draws_picked_by_id(calibrated, long_data, monkeypatch):
    shuffled = long_data.sample(frac=1, random_state=0)  # s2's rows may come first
    asked = []
    original = tsk.Forecaster.predict

    def predict(self, df=None, **kwargs):
        asked.append(sorted(df.unique_id.unique()))
        return original(self, df, **kwargs)

    monkeypatch.setattr(tsk.Forecaster, "predict", predict)
    fig = calibrated.plot(shuffled, n_series=1)
    assert asked == [["s0"]] and [ax.get_title(loc="left") for ax in fig.axes] == ["s0"]


def test_history_steps_and_axes_to_draw_into(calibrated, long_data):
    fig = calibrated.plot(long_data, n_series=1, history=5)
    assert len(lines(fig.axes[0])["history"].get_xdata()) == 5
    assert "history" not in lines(calibrated.plot(long_data, n_series=1, history=0).axes[0])
    figure, axes = plt.subplots(1, 3)
    assert calibrated.plot(long_data, n_series=1, ax=axes[1]) is figure
    assert axes[1].get_lines() and not axes[0].get_lines()
    assert calibrated.plot(long_data, ax=axes) is figure  # one Axes per series
    with pytest.raises(ValueError, match=r"ax holds 1 Axes but there are 3 panels.*n_series=1"):
        calibrated.plot(long_data, ax=axes[0])
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        calibrated.plot(long_data, n_series=1, ax="left")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_a_bad_n_series_says_what_it_must_be(calibrated, bad):
    with pytest.raises(ValueError, match="n_series must be a positive integer"):
        calibrated.plot(n_series=bad)


def test_a_bad_history_says_what_it_must_be(calibrated):
    with pytest.raises(ValueError, match="history must be an integer >= 0"):
        calibrated.plot(history=-1)


def test_the_wide_layout_draws_a_panel_per_channel(wide_model):
    model, df = wide_model
    forecast = model.predict(df)
    fig = model.plot(df, n_series=2)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["c0", "c1"]
    for ax, channel in zip(fig.axes, ["c0", "c1"], strict=True):
        drawn = lines(ax)
        np.testing.assert_array_equal(drawn["forecast"].get_xdata(), forecast.ds.to_numpy())
        np.testing.assert_allclose(drawn["forecast"].get_ydata(), forecast[channel])
        np.testing.assert_allclose(drawn["history"].get_ydata(), df[channel].tail(2 * model.lookback_))
    assert len(model.plot().axes) == 3


def test_a_level_needs_a_model_with_intervals(wide_model):
    model, df = wide_model
    with pytest.raises(ValueError, match="only with conformal=True"):  # predict's own error
        model.plot(df, level=[80])


def test_without_matplotlib_it_says_which_extra_installs_it(calibrated, monkeypatch):
    for name in ("matplotlib", "matplotlib.dates", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "tsk\[plot\]"'):
        calibrated.plot()


# ---- from frames --------------------------------------------------------------------------
def forecast_frame(levels=(80,)) -> pd.DataFrame:
    """A wide forecast of two channels with intervals, made by hand."""
    ds = pd.date_range("2024-01-02", periods=HORIZON, freq="h")
    frame = pd.DataFrame({"ds": ds, "a": np.arange(HORIZON, dtype=float), "b": -np.arange(HORIZON)})
    for channel in ("a", "b"):
        for level in levels:
            frame[f"{channel}-lo-{level}"] = frame[channel] - level / 100
            frame[f"{channel}-hi-{level}"] = frame[channel] + level / 10
    return frame


def test_any_frame_in_predicts_layout_draws():
    forecast = forecast_frame()
    history = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=24, freq="h").astype(str),
                            "a": 1.0, "b": 2.0})  # text timestamps, as read from a CSV
    fig = plot_forecast(forecast, history, level=80)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["a", "b"]  # targets: inferred
    (band,) = bands(fig.axes[1])
    assert_band(band, forecast.ds, forecast["b-lo-80"], forecast["b-hi-80"])
    history_line = lines(fig.axes[0])["history"]
    assert len(history_line.get_xdata()) == 24 and history_line.get_xdata().dtype.kind == "M"
    with pytest.raises(ValueError, match=r"no column\(s\) \['a-lo-95', 'a-hi-95'.*level=\.\.\.\) adds"):
        plot_forecast(forecast, level=[80, 95])
    with pytest.raises(ValueError, match=r"data has no column\(s\) \['b'\]"):
        plot_forecast(forecast, history.drop(columns="b"))
    with pytest.raises(TypeError, match="forecast must be a pandas DataFrame"):
        plot_forecast(forecast.to_numpy())


def backtest_frame() -> pd.DataFrame:
    """`cross_validation`'s long layout, by hand: 2 series, 2 cutoffs, 80% intervals."""
    rows = []
    for i, uid in enumerate(["s0", "s1"]):
        for cutoff in pd.to_datetime(["2024-01-01 03:00", "2024-01-01 07:00"]):
            ds = pd.date_range(cutoff, periods=HORIZON + 1, freq="h")[1:]
            y = 10 * i + np.arange(HORIZON, dtype=float)
            rows.append(pd.DataFrame({"unique_id": uid, "ds": ds, "cutoff": cutoff, "y": y,
                                      "s4d": y + 0.5, "s4d-lo-80": y - 1, "s4d-hi-80": y + 2}))
    return pd.concat(rows, ignore_index=True)


def test_a_backtest_draws_each_window_from_its_cutoff():
    cv = backtest_frame()
    fig = plot_cross_validation(cv, level=[80], n_series=5)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["s0", "s1"]
    ax = fig.axes[1]
    rows = cv[cv.unique_id == "s1"]
    cutoffs = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert [date2num(line.get_xdata()[0]) for line in cutoffs] == list(date2num(rows.cutoff.unique()))
    actual = lines(ax)["actual"]
    np.testing.assert_array_equal(actual.get_xdata(), rows.ds.to_numpy())
    forecasts = [line for line in ax.get_lines() if line.get_color() == "C1"]
    assert len(forecasts) == 2 and len(bands(ax)) == 2  # one per window
    for line, band, (_, window) in zip(forecasts, bands(ax), rows.groupby("cutoff"), strict=True):
        np.testing.assert_allclose(line.get_ydata(), window.s4d)
        assert_band(band, window.ds, window["s4d-lo-80"], window["s4d-hi-80"])
    # the wide layout: `<model>-<channel>` beside each channel
    wide = cv[cv.unique_id == "s0"].drop(columns="unique_id").rename(
        columns={"y": "OT", "s4d": "s4d-OT", "s4d-lo-80": "s4d-OT-lo-80", "s4d-hi-80": "s4d-OT-hi-80"})
    fig = plot_cross_validation(wide, level=80)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["OT"]
    with pytest.raises(ValueError, match=r"forecasts of 2 models \['s4d', 'lstm'\].*model='s4d'"):
        plot_cross_validation(cv.assign(lstm=cv.s4d))
    assert len(plot_cross_validation(cv.assign(lstm=cv.s4d), model="lstm").axes) == 2
