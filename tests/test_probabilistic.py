"""Probabilistic forecasts (`Forecaster(quantiles=...)`, `distribution="normal" | "student_t"`,
`tsk.heads.distributions`): the outputs' losses by hand, quantiles monotone by construction, the
nets' shapes and linear start, learned intervals that cover fresh data near their level and a
learned scale near the noise's, the frame's columns, save/load, backtests and the errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.base import clone

import tsk
from tests.conftest import TINY, make_long, make_wide
from tsk.heads.distributions import (
    POINT,
    NormalOutput,
    QuantileOutput,
    StudentTOutput,
    forecast_output,
    level_quantiles,
    masked_mse,
)
from tsk.heads.forecast import ForecastNet, GridForecastNet, VariateForecastNet, WindowScale
from tsk.metrics import coverage

SIGMA = 0.3  # the noise of `noisy_sines`
SMALL = dict(horizon=6, lookback=24, d_model=16, n_layers=1, max_epochs=3, batch_size=64,
             learning_rate=3e-3, enable_progress_bar=False, random_state=0)


# ---- the outputs, by hand ---------------------------------------------------------------------
def test_the_pinball_loss_by_hand_leaves_missing_targets_out():
    output = QuantileOutput([0.1, 0.9])  # 0.5 added: the median is the point forecast
    assert output.quantiles == (0.1, 0.5, 0.9) and output.k == 3 and output.center == 1
    params = torch.tensor([[[0.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]], [[5.0, 6.0, 7.0]]])  # [3, 1, 3]
    targets = torch.tensor([[3.0], [1.5], [float("nan")]])
    # y = 3: errors 3, 2, 1 -> 0.1*3, 0.5*2, 0.9*1; y = 1.5: 1.5, 0.5, -0.5 -> 0.15, 0.25, 0.05
    expected = (0.3 + 1.0 + 0.9 + 0.15 + 0.25 + 0.05) / 6
    assert float(output.loss(params, targets)) == pytest.approx(expected)
    # the NaN target's row neither counts nor reaches the gradient
    params.requires_grad_(True)
    output.loss(params, targets).backward()
    assert torch.isfinite(params.grad).all() and (params.grad[2] == 0).all()


def test_the_negative_log_likelihoods_by_hand():
    loc, scale, df = torch.tensor([[0.5], [1.0]]), torch.tensor([[2.0], [0.5]]), torch.tensor([[3.0], [7.0]])
    targets = torch.tensor([[1.5], [float("nan")]])
    z = (1.5 - 0.5) / 2.0
    normal = NormalOutput().loss(torch.stack([loc, scale], -1), targets)
    assert float(normal) == pytest.approx(0.5 * math.log(2 * math.pi) + math.log(2.0) + z**2 / 2)
    student = StudentTOutput().loss(torch.stack([loc, scale, df], -1), targets)
    assert float(student) == pytest.approx(-stats.t.logpdf(1.5, 3.0, 0.5, 2.0))
    # the point output is the masked MSE, as before
    point, truth = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, float("nan")]])
    assert float(POINT.loss(point, truth)) == float(masked_mse(point, truth)) == 1.0


def test_quantiles_are_monotone_for_any_raw_values_and_window_scale():
    output = QuantileOutput([0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99])
    raw = 20 * torch.randn(64, 6, 2, output.k, generator=torch.Generator().manual_seed(0))
    linear = torch.randn(64, 6, 2)
    params = output.parameters(raw, linear)
    assert (params.diff(dim=-1) >= 0).all()
    assert torch.allclose(params[..., output.center], raw[..., output.center] + linear)  # the median
    window = WindowScale(torch.randn(64, 1, 3), torch.rand(64, 1, 3) + 0.1)
    restored = output.restore(params, window)
    assert (restored.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(restored[..., 3], window.restore(params[..., 3]))
    # the head starts (raw = its bias) at a standard normal's quantiles around the linear forecast
    start = output.parameters(output.initial_raw().expand(1, 1, 1, -1), torch.full((1, 1, 1), 2.0))
    np.testing.assert_allclose(start[0, 0, 0].numpy(), 2 + stats.norm.ppf(output.quantiles), atol=1e-5)


def test_distributions_restore_scale_their_scale_and_keep_df():
    params = torch.tensor([[[[1.0, 2.0, 4.0]]]])  # loc, scale, df
    window = WindowScale(torch.tensor([[[10.0]]]), torch.tensor([[[3.0]]]))
    restored = StudentTOutput().restore(params, window)
    assert restored.flatten().tolist() == [13.0, 6.0, 4.0]
    assert NormalOutput().restore(params[..., :2], window).flatten().tolist() == [13.0, 6.0]
    start = StudentTOutput().parameters(StudentTOutput().initial_raw().expand(1, 1, 1, -1))
    assert start.flatten().tolist() == pytest.approx([0.0, 1.0, 5.0], abs=1e-5)


def test_quantiles_in_closed_form_and_the_levels_a_grid_gives():
    params = np.array([[1.0, 2.0, 5.0]])  # loc 1, scale 2, df 5
    probabilities = [0.025, 0.5, 0.9]
    np.testing.assert_allclose(StudentTOutput().quantile(params, probabilities)[0],
                               stats.t.ppf(probabilities, 5, 1.0, 2.0))
    np.testing.assert_allclose(NormalOutput().quantile(params[:, :2], probabilities)[0],
                               stats.norm.ppf(probabilities, 1.0, 2.0))
    assert StudentTOutput().point(params).tolist() == [1.0]
    grid = QuantileOutput([0.025, 0.1, 0.5, 0.9, 0.975])
    assert grid.levels() == [80.0, 95.0] and level_quantiles(80) == pytest.approx((0.1, 0.9))
    grid.check_levels([80, 95])
    with pytest.raises(ValueError, match=r"Level\(s\) \[90\].*gives the levels \[80.0, 95.0\]"):
        grid.check_levels([80, 90])
    with pytest.raises(ValueError, match="Quantile 0.3 was not trained"):
        grid.quantile(np.zeros((1, 5)), [0.3])


@pytest.mark.parametrize("output", [QuantileOutput([0.1, 0.9]), NormalOutput(), StudentTOutput()])
def test_the_generic_nets_emit_parameters_and_start_at_the_linear_forecast(output):
    """The probabilistic nets return `[B, H, n_out, k]`; with the deep part at its start, the
    location (median) parameter is the point net's forecast: the ridge skip feeds it."""
    x = torch.randn(5, 24, 2)

    def pair(build):
        torch.manual_seed(0)
        point, learned = build(POINT), build(output)
        shared = {k: v for k, v in point.state_dict().items()
                  if learned.state_dict()[k].shape == v.shape}
        learned.load_state_dict(shared, strict=False)
        return point.eval(), learned.eval()

    backbone = lambda: tsk.backbones.create("lstm", d_model=8, n_layers=1)  # noqa: E731
    point, learned = pair(lambda o: ForecastNet(backbone(), 24, 6, 2, 2, 8, output=o))
    with torch.no_grad():
        params = learned(x)
        assert params.shape == (5, 6, 2, output.k)
        torch.testing.assert_close(output.point(params), point(x))
    assert set(point.state_dict()) == set(learned.state_dict())  # the same parameter names
    grid = GridForecastNet(tsk.backbones.create("chimera", d_model=8, n_layers=1),
                           24, 6, 2, 2, 8, output=output)
    variates = VariateForecastNet(tsk.backbones.create("s4d", d_model=8, n_layers=1), 24, 6, 2, 8,
                                  output=output)
    for net in (grid, variates):
        with torch.no_grad():
            assert net(x).shape == (5, 6, 2, output.k)
        assert net.loss(net(x), {"targets": torch.randn(5, 6, 2)}).isfinite()


def test_forecast_output_picks_one():
    assert forecast_output() is POINT
    assert isinstance(forecast_output(distribution="student_t"), StudentTOutput)
    with pytest.raises(ValueError, match="not both"):
        forecast_output([0.5], "normal")


# ---- a Forecaster on noise of known size ------------------------------------------------------
def noisy_sines(length: int, seed: int, start: str = "2024-01-01") -> pd.DataFrame:
    """Four sines of period 12 at levels 0, 3, 6, 9 plus i.i.d. N(0, SIGMA^2) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return pd.concat([pd.DataFrame({
        "unique_id": f"s{i}", "ds": pd.date_range(start, periods=length, freq="h"),
        "y": 3.0 * i + np.sin(2 * np.pi * t / 12 + i) + SIGMA * rng.standard_normal(length)})
        for i in range(4)], ignore_index=True)


@pytest.fixture(scope="module")
def quantile_model() -> tsk.Forecaster:
    return tsk.Forecaster("lstm", quantiles=[0.1, 0.9], **SMALL).fit(noisy_sines(400, 0))


@pytest.fixture(scope="module")
def normal_model() -> tsk.Forecaster:
    return tsk.Forecaster("lstm", distribution="normal", **SMALL).fit(noisy_sines(400, 0))


def test_learned_quantiles_cover_fresh_data_near_their_level(quantile_model):
    """Trained 3 epochs on 4 x 400 noisy steps, the 80% interval (the 0.1 and 0.9 quantiles)
    covers 78.2% of 1,084 fresh windows' values (75-81% at the lengths and learning rates tried);
    near its start (a unit normal in each window's units, ~2.5x too wide here; one step) 99.4%."""
    fresh = noisy_sines(300, 1)
    metrics = quantile_model.evaluate(fresh, level=[80])
    assert 0.6 < metrics["coverage_80"] < 0.95, metrics
    assert {"crps", "wql", "interval_score_80"} <= set(metrics)
    assert metrics["wql"] < 0.2 and metrics["crps"] < metrics["mae"]  # 0.08 and 0.21 < 0.33 here
    # the backtest gives the same kind of intervals
    cv = quantile_model.cross_validation(noisy_sines(400, 2), n_windows=2, level=[80],
                                         quantiles=[0.1, 0.5])
    assert list(cv.columns[-5:]) == ["lstm", "lstm-lo-80", "lstm-hi-80", "lstm-q-10", "lstm-q-50"]
    np.testing.assert_allclose(cv["lstm-q-10"], cv["lstm-lo-80"])
    np.testing.assert_allclose(cv["lstm-q-50"], cv["lstm"])  # the point forecast is the median


def test_a_normal_head_learns_the_noise_scale_in_each_series_units(normal_model):
    fresh = noisy_sines(300, 1)
    one_sd = [stats.norm.cdf(-1), stats.norm.cdf(1)]
    frame = normal_model.predict(fresh, quantiles=one_sd)
    lower, upper = frame.columns[-2:]
    half = (frame[upper] - frame[lower]) / 2  # the learned scale, in the series' own units
    assert 0.67 * SIGMA < half.median() < 1.5 * SIGMA, half.median()
    metrics = normal_model.evaluate(fresh, level=[80, 95])
    assert 0.7 < metrics["coverage_80"] < 0.9 and 0.85 < metrics["coverage_95"] < 0.99, metrics


def test_the_frame_save_load_and_clone(normal_model, tmp_path):
    frame = normal_model.predict(level=[95, 80], quantiles=[0.05, 0.5])
    assert list(frame.columns) == ["unique_id", "ds", "y", "y-lo-95", "y-lo-80", "y-hi-80",
                                   "y-hi-95", "y-q-5", "y-q-50"]
    assert ((frame["y-lo-95"] < frame["y-lo-80"]) & (frame["y-lo-80"] < frame.y)
            & (frame.y < frame["y-hi-80"]) & (frame["y-hi-80"] < frame["y-hi-95"])).all()
    np.testing.assert_allclose(frame["y-q-50"], frame.y)
    np.testing.assert_allclose(frame["y-q-5"], normal_model.predict(level=[90])["y-lo-90"])
    normal_model.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    assert loaded.get_params() == normal_model.get_params()
    pd.testing.assert_frame_equal(loaded.predict(level=[95, 80], quantiles=[0.05, 0.5]), frame,
                                  check_exact=True)
    copy = clone(normal_model)
    assert copy.distribution == "normal" and not hasattr(copy, "net_")
    quantiles = tsk.Forecaster("s4d", quantiles=(0.1, 0.9))
    assert clone(quantiles).get_params()["quantiles"] == (0.1, 0.9)


def test_wide_data_missing_values_and_other_metric_units():
    """Every target channel gets its intervals; masked missing targets train and score; scores
    in another model's units (`metric_scalers`, here the same ones) repeat the model's own."""
    wide = make_wide(length=80)
    model = tsk.Forecaster("lstm", channel_independent=False, distribution="student_t",
                           **TINY).fit(wide)
    frame = model.predict(level=[80])
    assert list(frame.columns) == ["ds", "c0", "c1", "c2", "c0-lo-80", "c0-hi-80", "c1-lo-80",
                                   "c1-hi-80", "c2-lo-80", "c2-hi-80"]
    own = model.evaluate(wide, level=[80])
    other = model.evaluate(wide, level=[80], metric_scalers=model.scalers_)
    assert other == pytest.approx(own, rel=1e-5)
    history = make_long(length=80)
    history.loc[[5, 6, 70, 150], "y"] = np.nan
    masked = tsk.Forecaster("s4d", missing="mask", quantiles=[0.2, 0.8], **TINY).fit(history)
    assert np.isfinite(masked.predict(level=[60]).drop(columns=["unique_id", "ds"])).all().all()
    assert np.isfinite(masked.evaluate(history, level=[60])["crps"])


# ---- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "error", "message"), [
    (dict(quantiles=[0.1, 0.9], conformal=True), ValueError, "two ways to get intervals"),
    (dict(distribution="normal", conformal=True), ValueError, "Choose one"),
    (dict(quantiles=[0.1, 0.9], distribution="normal"), ValueError, "not both"),
    (dict(quantiles=[0.0, 0.5]), ValueError, "strictly between 0 and 1"),
    (dict(quantiles=[0.5, 1.2]), ValueError, "strictly between 0 and 1"),
    (dict(quantiles=[0.9, 0.1]), ValueError, r"sorted and without repeats.*\[0.1, 0.9\]"),
    (dict(quantiles=[0.1, 0.1]), ValueError, "without repeats"),
    (dict(quantiles=0.5), TypeError, "a list of probabilities"),
    (dict(quantiles="0.5"), TypeError, "a list of probabilities"),
    (dict(distribution="gamma"), ValueError, r"one of \['normal', 'student_t'\]"),
    (dict(distribution=["normal"]), TypeError, "'normal', 'student_t' or None"),
])
def test_bad_options_raise_before_the_data_is_read(options, error, message):
    with pytest.raises(error, match=message):
        tsk.Forecaster("s4d", **TINY, **options).fit(None)


@pytest.mark.parametrize("backbone", ["spacetime", "tpgn"])
def test_a_paper_network_refuses_quantiles_and_distributions(backbone):
    for options in (dict(quantiles=[0.1, 0.9]), dict(distribution="student_t", ridge_init=True)):
        with pytest.raises(ValueError, match=rf"'{backbone}' forecasts with its paper's own network"
                                             r".*backbones .*lstm.*s4d.* use"):
            tsk.Forecaster(backbone, **TINY, **options).fit(make_long())


def test_levels_and_quantiles_a_model_cannot_give(quantile_model):
    with pytest.raises(ValueError, match=r"Level\(s\) \[95.0\].*gives the levels \[80.0\]"):
        quantile_model.predict(level=[80, 95])
    with pytest.raises(ValueError, match=r"Level\(s\) \[95.0\]"):
        quantile_model.evaluate(noisy_sines(100, 1), level=95)
    with pytest.raises(ValueError, match=r"Level\(s\) \[90.0\]"):
        quantile_model.cross_validation(noisy_sines(400, 2), n_windows=1, level=90)
    with pytest.raises(ValueError, match="Quantile 0.25 was not trained"):
        quantile_model.predict(quantiles=[0.25])
    point = tsk.Forecaster("s4d", **TINY)  # what it is asked is checked before anything runs
    with pytest.raises(ValueError, match="quantiles= asks for the quantiles of a model that learns"):
        point._check_intervals(None, [0.5])
    with pytest.raises(ValueError, match="conformal=True.*or learn them with quantiles="):
        point._check_intervals([80])


def test_coverage_of_the_trained_grid_matches_the_metric(quantile_model):
    """`evaluate`'s coverage is the share of fresh values between the predicted bounds."""
    fresh = noisy_sines(24 + 6, 3)  # one window per series: predict() forecasts the same one
    context = fresh.groupby("unique_id").head(24)
    actual = fresh.groupby("unique_id").tail(6).y.to_numpy()
    frame = quantile_model.predict(context, level=[80])
    expected = coverage(actual, frame["y-lo-80"], frame["y-hi-80"])
    assert quantile_model.evaluate(fresh, level=[80])["coverage_80"] == pytest.approx(expected)
