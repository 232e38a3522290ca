"""Messy data: missing values, duplicate rows and gaps, under each policy, on small frames whose
right answer is known by hand (`tsk.datasets.frames`, the masked loss, scaler and RevIN)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import make_long, make_wide
from tsk import backbones
from tsk.datasets.frames import infer_schema, to_series
from tsk.datasets.scaling import StandardScaler
from tsk.datasets.windows import WindowDataset
from tsk.heads.distributions import masked_mse
from tsk.heads.forecast import (
    ForecastLoss,
    ForecastNet,
    InstanceNorm,
    RidgeForecast,
    SeasonalNaive,
    fit_skip_ridge,
    mask_missing_inputs,
)
from tsk.metrics import gluonts_scores


def ten_minutes(length: int = 20) -> pd.DataFrame:
    """A wide 10-minute series whose value is its step number: 0, 1, 2, ..."""
    return pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=length, freq="10min"),
                         "a": np.arange(length, dtype=float)})


def series_of(df: pd.DataFrame, **policies) -> list:
    return to_series(df, infer_schema(df), **policies)


# ---- the defaults raise, naming the policies ---------------------------------------------------
def test_missing_values_raise_by_default_naming_the_policies():
    df = ten_minutes()
    df.loc[7, "a"] = np.nan
    with pytest.raises(ValueError, match=r"1 missing or infinite value\(s\), e.g. row 7 .*"
                                         r"missing='mask'.*missing='interpolate'"):
        series_of(df)


def test_duplicates_raise_by_default_naming_the_policies():
    df = ten_minutes()
    dup = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 duplicate timestamp.*2024-01-01 00:30:00.*"
                                         r"duplicates='drop_exact'.*duplicates='mean'"):
        series_of(dup)


@pytest.mark.parametrize(("policies", "error"), [
    ({"missing": "drop"}, r"Unknown missing-value policy \(missing=\) 'drop'.*interpolate, mask"),
    ({"duplicates": "first"}, r"Unknown duplicates policy.*drop_exact, mean, raise"),
    ({"freq": "every ten minutes"}, r"freq='every ten minutes' is not a positive pandas frequency"),
    ({"freq": "0min"}, r"freq='0min' is not a positive pandas frequency"),
])
def test_unknown_policies_say_what_is_known(policies, error):
    with pytest.raises(ValueError, match=error):
        series_of(ten_minutes(), **policies)


def test_infinite_values_are_not_missing_values():
    df = ten_minutes()
    df.loc[4, "a"] = np.inf
    for missing in ("mask", "interpolate"):
        with pytest.raises(ValueError, match=r"1 infinite value\(s\), e.g. row 4 .*Only NaN counts "
                                             r"as missing.*df.replace"):
            series_of(df, missing=missing)


def test_a_column_with_no_observed_value_raises():
    df = make_long(n_series=2, length=10, exogenous=1)
    df.loc[df.unique_id == "s1", "x0"] = np.nan
    with pytest.raises(ValueError, match=r"Series 's1' has no observed value in column\(s\) \['x0'\]"):
        to_series(df, infer_schema(df, ["x0"]), missing="mask")


# ---- gaps and the time grid --------------------------------------------------------------------
def with_gap() -> pd.DataFrame:
    """A 10-minute series with a 100-minute step (00:40 -> 02:20): 9 steps are missing."""
    return ten_minutes().drop(index=range(5, 14)).reset_index(drop=True)


def test_a_gap_on_the_grid_inserts_the_missing_steps_and_says_how_many():
    with pytest.warns(UserWarning, match=r"inserting 9 missing step\(s\).*'series': 9 \(first gap "
                                         r"after 2024-01-01 00:40:00\)"):
        (series,) = series_of(with_gap(), freq="10min", missing="mask")
    assert len(series) == 20 and series.freq == "10min"
    assert list(series.ds) == list(pd.date_range("2024-01-01", periods=20, freq="10min"))
    expected = np.arange(20.0)
    expected[5:14] = np.nan  # the inserted steps are missing, not invented
    np.testing.assert_array_equal(series.values[:, 0], expected)


def test_a_gap_under_missing_raise_names_the_series_the_place_and_the_count():
    with pytest.raises(ValueError, match=r"Series 'series' has 1 gap\(s\) in its '10min' grid, 9 "
                                         r"missing step\(s\) in all, e.g. 9 step\(s\) missing between "
                                         r"2024-01-01 00:40:00 and 2024-01-01 02:20:00.*"
                                         r"missing='mask'.*missing='interpolate'"):
        series_of(with_gap(), freq="10min")


def test_without_freq_an_irregular_series_warns_and_points_to_freq():
    with pytest.warns(UserWarning, match=r"irregular time steps.*Pass freq='10min'"):
        (series,) = series_of(with_gap())
    assert len(series) == 11  # today's behaviour: nothing inserted, the gap is stepped over


def test_a_timestamp_off_the_grid_raises():
    df = ten_minutes()
    df.loc[4, "ds"] = pd.Timestamp("2024-01-01 00:43")
    with pytest.raises(ValueError, match=r"Series 'series' has 1 timestamp\(s\) off its '10min' grid"
                                         r".*e.g. 2024-01-01 00:43:00"):
        series_of(df, freq="10min", missing="mask")


def test_gaps_are_found_per_series_of_a_long_frame():
    df = make_long(n_series=2, length=12)
    df = df.drop(index=df.index[(df.unique_id == "s1") & df.ds.isin(df.ds.iloc[[3, 4]])])
    with pytest.warns(UserWarning, match=r"inserting 2 missing step\(s\).*'s1': 2") as caught:
        s0, s1 = to_series(df, infer_schema(df), freq="h", missing="mask")
    assert "'s0'" not in str(caught[0].message)
    assert len(s0) == len(s1) == 12 and np.isnan(s1.values[3:5, 0]).all()
    assert not np.isnan(s0.values).any()


# ---- interpolate and mask ----------------------------------------------------------------------
def test_interpolate_fills_the_line_and_repeats_the_edges():
    df = ten_minutes(10)
    df["a"] = 2.0 * np.arange(10) + 1.0  # 1, 3, 5, ...
    df.loc[[0, 4, 5, 9], "a"] = np.nan
    with pytest.warns(UserWarning, match=r"Filled 4 missing value\(s\).*'series': 4"):
        (series,) = series_of(df, missing="interpolate")
    np.testing.assert_allclose(series.values[:, 0],
                               [3.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 17.0])


def test_interpolate_across_a_gap_is_linear_in_time():
    with pytest.warns(UserWarning) as caught:
        (series,) = series_of(with_gap(), freq="10min", missing="interpolate")
    messages = " | ".join(str(w.message) for w in caught)
    assert "inserting 9 missing step" in messages and "Filled 9 missing value" in messages
    np.testing.assert_allclose(series.values[:, 0], np.arange(20.0))  # the value is the step


def test_mask_keeps_missing_values_as_nan():
    df = make_wide(length=12)
    df.loc[[2, 3], "c1"] = np.nan
    (series,) = series_of(df, missing="mask")
    expected = df[["c0", "c1", "c2"]].to_numpy()
    np.testing.assert_array_equal(series.values, expected)  # NaN where missing, nothing filled


# ---- duplicates --------------------------------------------------------------------------------
def test_drop_exact_drops_exactly_the_duplicated_row():
    df = make_long(n_series=2, length=10)
    dup = pd.concat([df, df.iloc[[13]]], ignore_index=True).sample(frac=1.0, random_state=0)
    with pytest.warns(UserWarning, match=r"Dropped 1 exact duplicate row\(s\).*'s1': 1"):
        got = to_series(dup, infer_schema(dup), duplicates="drop_exact")
    for series, uid in zip(got, ["s0", "s1"], strict=True):
        np.testing.assert_array_equal(series.values[:, 0], df[df.unique_id == uid].y.to_numpy())


def test_drop_exact_refuses_rows_that_differ():
    df = ten_minutes()
    other = df.iloc[[3]].assign(a=100.0)
    dup = pd.concat([df, other], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 timestamp\(s\) have rows with different values, e.g. "
                                         r"series 'series' at 2024-01-01 00:30:00: \{'a': 3.0\} and "
                                         r"\{'a': 100.0\}.*duplicates='mean'"):
        series_of(dup, duplicates="drop_exact")


def test_mean_averages_the_rows_of_one_timestamp():
    df = make_wide(length=6, channels=2)
    extra = df.iloc[[2, 2]].copy()
    extra["c0"] = [10.0, 20.0]
    extra["c1"] = [np.nan, 7.0]  # a missing value is left out of the mean
    dup = pd.concat([df, extra], ignore_index=True)
    with pytest.warns(UserWarning, match=r"Averaged 8 rows into 6.*'series': 2"):
        (series,) = series_of(dup, duplicates="mean", missing="mask")
    expected = df[["c0", "c1"]].to_numpy()
    expected[2] = [(df.c0[2] + 10.0 + 20.0) / 3, (df.c1[2] + 7.0) / 2]
    np.testing.assert_allclose(series.values, expected)


# ---- the scaler, the windows, the loss and RevIN with missing values ----------------------------
def test_the_scaler_leaves_missing_values_out():
    values = np.array([[1.0, 2.0], [np.nan, 4.0], [5.0, np.nan], [6.0, 10.0]])
    scaler = StandardScaler.fit(values)
    np.testing.assert_allclose(scaler.mean, [4.0, 16.0 / 3])  # (1 + 5 + 6) / 3, (2 + 4 + 10) / 3
    np.testing.assert_allclose(scaler.scale, [np.sqrt((9 + 1 + 4) / 3),
                                              np.sqrt(((10 / 3) ** 2 + (4 / 3) ** 2 + (14 / 3) ** 2) / 3)])
    scaled = scaler.transform(values)
    assert np.isnan(scaled[1, 0]) and np.isnan(scaled[2, 1]) and np.isfinite(scaled[0]).all()
    with pytest.raises(ValueError, match=r"Channel\(s\) \[1\] have no observed value"):
        StandardScaler.fit(np.array([[1.0, np.nan], [2.0, np.nan]]))


def test_windows_flag_missing_inputs_and_skip_windows_with_no_observed_target():
    values = np.arange(12, dtype=np.float32).reshape(6, 2)  # target column 0, exogenous column 1
    values[1, 1] = np.nan  # a missing covariate
    values[3:5, 0] = np.nan  # two missing targets
    data = WindowDataset([values], lookback=2, horizon=2, n_targets=1, channel_independent=False,
                         flags=[0, 1])
    # window starts 0, 1, 2: the one starting at 1 forecasts steps 3-4, both missing
    assert data.index[:, 1].tolist() == [0, 2] and data.n_unobserved == 1
    batch = data.__getitems__([0, 1])
    np.testing.assert_array_equal(batch["inputs"][0].numpy(), [[0, 1, 0, 0], [2, np.nan, 0, 1]])
    np.testing.assert_array_equal(batch["inputs"][1].numpy(), [[4, 5, 0, 0], [np.nan, 7, 1, 0]])
    np.testing.assert_array_equal(batch["targets"][1].numpy(), [[np.nan], [10]])


def test_channel_independent_windows_flag_their_own_target_channel():
    values = np.arange(15, dtype=np.float32).reshape(5, 3)  # targets 0 and 1, exogenous 2
    values[1, 0] = values[2, 2] = np.nan
    data = WindowDataset([values], lookback=3, horizon=1, n_targets=2, channel_independent=True,
                         flags=[0, 1])  # the sample's target column, then the exogenous one
    batch = data.__getitems__([0, 1])  # window 0, channels 0 and 1
    np.testing.assert_array_equal(batch["inputs"][0].numpy(),
                                  [[0, 2, 0, 0], [np.nan, 5, 1, 0], [6, np.nan, 0, 1]])
    np.testing.assert_array_equal(batch["inputs"][1].numpy(),
                                  [[1, 2, 0, 0], [4, 5, 0, 0], [7, np.nan, 0, 1]])


def test_the_masked_loss_is_the_mse_over_observed_targets():
    output = torch.tensor([[[2.0], [0.0]], [[3.0], [6.0]]], requires_grad=True)
    targets = torch.tensor([[[1.0], [np.nan]], [[3.0], [4.0]]])
    loss = ForecastLoss().loss(output, {"targets": targets})
    assert loss.item() == pytest.approx((1.0 + 0.0 + 4.0) / 3)  # (2-1)^2, (3-3)^2, (6-4)^2
    loss.backward()
    np.testing.assert_allclose(output.grad.numpy().ravel(), [2 / 3, 0.0, 0.0, 4 / 3])
    complete = torch.tensor([[[1.0], [5.0]], [[3.0], [4.0]]])
    assert masked_mse(output, complete).item() == pytest.approx((1 + 25 + 0 + 4) / 4)
    assert masked_mse(output, torch.full_like(targets, np.nan)).item() == 0.0


def test_revin_normalizes_by_the_observed_steps_only():
    x = torch.tensor([[[1.0, np.nan], [np.nan, np.nan], [5.0, np.nan], [3.0, np.nan]]])  # [1, 4, 2]
    norm = mask_missing_inputs(InstanceNorm(True))
    out, window = norm(x)
    # channel 0: observed 1, 5, 3 -> mean 3, population std sqrt(8 / 3); channel 1: none seen
    std = np.sqrt(8 / 3 + norm.eps)
    np.testing.assert_allclose(window.mean.numpy().ravel(), [3.0, 0.0])
    np.testing.assert_allclose(window.std.numpy().ravel(), [std, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 0].numpy(), [-2 / std, 0.0, 2 / std, 0.0], rtol=1e-6)
    assert (out[0, :, 1] == 0).all()  # missing steps enter as 0, the window's mean
    plain, _ = mask_missing_inputs(InstanceNorm(False))(x)
    np.testing.assert_array_equal(plain[0, :, 0].numpy(), [1.0, 0.0, 5.0, 3.0])
    unmasked, _ = InstanceNorm(True)(x)  # the default reads NaN as a value: NaN everywhere
    assert unmasked.isnan().all()


def test_the_ridge_start_leaves_out_windows_with_a_missing_target():
    rng = np.random.default_rng(0)
    lookback, horizon = 6, 3
    inputs = torch.from_numpy(rng.normal(size=(40, lookback, 1)))
    targets = torch.from_numpy(rng.normal(size=(40, horizon, 1)))
    extra_inputs = torch.from_numpy(rng.normal(size=(5, lookback, 1)))
    extra_targets = torch.from_numpy(rng.normal(size=(5, horizon, 1)) * 100)
    extra_targets[:, 1] = np.nan  # every extra window misses one target
    complete = [{"inputs": inputs, "targets": targets}]
    messy = [{"inputs": torch.cat([inputs, extra_inputs]),
              "targets": torch.cat([targets, extra_targets])}]
    weights = []
    for batches in (complete, messy):
        skip = torch.nn.Linear(lookback, horizon).double()
        fit_skip_ridge(skip, mask_missing_inputs(InstanceNorm(True)), 1, batches)
        weights.append(torch.cat([skip.weight, skip.bias[:, None]], 1))
    torch.testing.assert_close(weights[1], weights[0])
    nothing_complete = [{"inputs": extra_inputs, "targets": extra_targets}]
    with pytest.raises(ValueError, match="No training window has a fully observed horizon"):
        fit_skip_ridge(torch.nn.Linear(lookback, horizon).double(), InstanceNorm(True), 1,
                       nothing_complete)


def test_seasonal_naive_forecasts_the_mean_for_a_missing_value():
    x = torch.tensor([[[1.0], [np.nan], [3.0]]])
    np.testing.assert_array_equal(SeasonalNaive(4, 2, 1)(x).numpy().ravel(), [0.0, 3.0, 0.0, 3.0])


def test_gluonts_metrics_skip_missing_targets():
    history = np.arange(10.0).reshape(1, 10, 1)  # seasonal (1-step) error 1
    target = np.array([10.0, np.nan, 12.0]).reshape(1, 3, 1)
    forecast = np.array([11.0, 99.0, 12.0]).reshape(1, 3, 1)
    scores = gluonts_scores(history, target, forecast, "h")
    assert scores["mase"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["smape"] == pytest.approx(2 * (1 / 21 + 0.0) / 2)


def test_the_ridge_start_normalizes_targets_as_the_network_does_before_its_flags():
    """The flag (and calendar) channels after the targets are left alone by the window
    normalization; the ridge start must still normalize the targets themselves (it once applied
    `keep_last` to the targets alone, leaving them raw)."""
    torch.manual_seed(0)
    lookback, horizon = 12, 3
    x = torch.randn(48, lookback, 2) * 3 + 2
    x[..., 1] = (torch.rand(48, lookback) < 0.2).float()  # a 0/1 flag channel
    batches = [{"inputs": x, "targets": torch.randn(48, horizon, 1) * 3 + 2}]
    net = ForecastNet(backbones.create("lstm", d_model=8, n_layers=1), lookback, horizon, 2, 1,
                      d_model=8, n_calendar=1)
    net.init_skip_ridge(batches)
    alone = RidgeForecast(lookback, horizon, 1)
    alone.fit(batches)
    torch.testing.assert_close(net.skip.weight, alone.skip.weight, atol=1e-5, rtol=1e-5)
