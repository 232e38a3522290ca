"""Covariates known ahead (`futr_exog`, `predict(futr_df=)`) and static covariates (`static_df`):
what the windows carry, that a network learns from them what it cannot learn without, the
errors that name what is missing, and that save/load, export and backtests keep them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tsk
import tsk.exported
from tests.conftest import TINY
from tsk.datasets.covariates import StaticCovariates, known_future
from tsk.datasets.frames import Series, infer_schema
from tsk.datasets.windows import WindowDataset
from tsk.heads.forecast import Covariates, WindowScale

LEARN = dict(horizon=6, lookback=24, d_model=16, n_layers=1, max_epochs=6, batch_size=32,
             enable_progress_bar=False, random_state=0)
FAST = dict(TINY, max_epochs=1, max_steps=3)


def promotions(n_series: int = 4, length: int = 400, seed: int = 0) -> pd.DataFrame:
    """Sales = a daily cycle + 1.5 x the promotion `x` of the same hour (random, planned ahead):
    from the past alone the promotions' part cannot be forecast."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        t, x = np.arange(length), rng.standard_normal(length)
        y = np.sin(2 * np.pi * t / 24 + i) + 1.5 * x + 0.1 * rng.standard_normal(length)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "y": y, "x": x, "ds": pd.date_range(
            "2024-01-01", periods=length, freq="h")}))
    return pd.concat(frames, ignore_index=True)


def ar_by_kind(n_series: int = 8, length: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AR(1) series whose coefficient is +0.9 or -0.9 by their `kind`: from one past value the
    sign cannot be told, from the static `kind` it can."""
    rng = np.random.default_rng(seed)
    frames, static = [], []
    for i in range(n_series):
        phi, y, noise = (0.9 if i % 2 == 0 else -0.9), np.zeros(length), rng.standard_normal(length)
        for t in range(1, length):
            y[t] = phi * y[t - 1] + noise[t]
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": pd.date_range(
            "2024-01-01", periods=length, freq="h"), "y": y}))
        static.append({"unique_id": f"s{i}", "kind": "up" if phi > 0 else "down", "size": i})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(static)


def future_of(data: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data without each series' last `horizon` rows, and those rows (the known future)."""
    last = data.groupby("unique_id").cumcount(ascending=False) < horizon
    return data[~last].reset_index(drop=True), data[last].reset_index(drop=True)


# ---- the windows ----------------------------------------------------------------------------
@pytest.mark.parametrize("independent", [True, False])
def test_windows_carry_the_known_future_and_each_series_static_row(independent):
    a = np.arange(30, dtype=np.float32).reshape(10, 3)  # two targets, one known-ahead column
    b = 100 + np.arange(36, dtype=np.float32).reshape(12, 3)
    static = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    data = WindowDataset([a, b], lookback=4, horizon=2, n_targets=2, channel_independent=independent,
                         futr_from=2, static=static)
    for item in range(len(data)):
        series, start, _ = data.window_of(item)
        values = (a, b)[series]
        sample = data[item]
        np.testing.assert_array_equal(sample["futr"].numpy(), values[start + 4:start + 6, 2:])
        np.testing.assert_array_equal(sample["static"].numpy(), static[series])
    assert "futr" not in WindowDataset([a], 4, 2, 2, independent)[0]


def test_all_windows_keeps_a_horizon_of_unknown_targets():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    values[6:, 0] = np.nan  # the future: targets unknown, the covariate known
    assert len(WindowDataset([values], 6, 4, 1, True)) == 0
    kept = WindowDataset([values], 6, 4, 1, True, futr_from=1, all_windows=True)
    assert len(kept) == 1
    np.testing.assert_array_equal(kept[0]["futr"].numpy()[:, 0], values[6:, 1])


def test_covariates_module_normalizes_the_future_as_the_window_and_starts_at_zero():
    covariates = Covariates(n_futr=2, n_static=3, horizon=4, n_out=1, d_model=8, futr_first=1)
    window = WindowScale(torch.tensor([[[5.0, 10.0, -2.0]]]), torch.tensor([[[2.0, 4.0, 0.5]]]))
    futr = torch.tensor([[[14.0, -1.0]] * 4])
    # channel 1 of the window: (14 - 10) / 4; channel 2: (-1 + 2) / 0.5
    embed = covariates.futr_embed[0]
    expected = torch.nn.functional.gelu(embed(torch.tensor([1.0, 2.0])))
    features = covariates.features(futr, window)
    torch.testing.assert_close(features.view(4, -1), expected.expand(4, -1))
    assert torch.count_nonzero(covariates.forecast(features)) == 0  # zero at first: the start kept
    tokens = torch.zeros(6, 5, 8)  # three variates of a batch of two
    static = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    conditioned = covariates.condition(tokens, features.expand(2, -1), static)
    assert not torch.equal(conditioned[0], conditioned[3])  # each sample its own vector
    torch.testing.assert_close(conditioned[0], conditioned[2])  # shared by its variates
    with pytest.raises(ValueError, match="static"):
        covariates.condition(tokens, features.expand(2, -1), None)
    assert not list(Covariates(0, 0, 4, 1, 8).parameters())  # none: old models load as before


# ---- what a network learns from them --------------------------------------------------------
@pytest.mark.parametrize("backbone, options", [
    ("s4d", {}), ("lstm", {}), ("chimera", {"max_epochs": 3}),  # a grid of variates x time
    ("s4d", {"tokens": "variates", "channel_independent": False}),  # channels as tokens
], ids=["s4d", "lstm", "chimera", "s4d-variates"])
def test_known_ahead_covariates_forecast_what_the_past_cannot(backbone, options):
    train, test = promotions(), promotions(seed=1)
    past_only = tsk.Forecaster(backbone, exogenous=["x"], **{**LEARN, **options}).fit(train)
    ahead = tsk.Forecaster(backbone, futr_exog=["x"], **{**LEARN, **options}).fit(train)
    without, with_futr = past_only.evaluate(test)["mse"], ahead.evaluate(test)["mse"]
    assert without > 0.6  # the promotions' share of the variance stays unexplained
    assert with_futr < 0.35 * without  # s4d 0.06, lstm 0.2, s4d over variates 0.28
    # predict reads them from futr_df: its forecast of the last steps is as much better
    context, future = future_of(test, LEARN["horizon"])
    forecast = ahead.predict(context, futr_df=future.drop(columns="y"))
    blind = past_only.predict(context)
    assert (np.mean((forecast.y - future.y) ** 2) < 0.5 * np.mean((blind.y - future.y) ** 2))


def test_static_covariates_tell_series_apart_that_their_past_does_not():
    (train, static), (test, _) = ar_by_kind(), ar_by_kind(seed=1)
    options = dict(LEARN, horizon=1, lookback=1, instance_norm=False, max_epochs=10,
                   backbone="lstm")
    blind = tsk.Forecaster(**options).fit(train).evaluate(test)["mse"]
    model = tsk.Forecaster(**options).fit(train, static_df=static)
    assert model.static_.names == ["size", "kind=down", "kind=up"]
    told = model.evaluate(test, static_df=static)["mse"]
    assert blind > 0.9  # one past value cannot tell +0.9 from -0.9: ~the variance
    assert told < 0.5 * blind
    # the fit's own series need no static_df at predict
    pd.testing.assert_frame_equal(model.predict(test), model.predict(test, static_df=static))


# ---- errors that name what is missing ---------------------------------------------------------
def test_a_forecast_without_its_known_future_raises_naming_what_lacks():
    data = promotions(n_series=2, length=80)
    model = tsk.Forecaster("s4d", futr_exog=["x"], **FAST).fit(data)
    with pytest.raises(ValueError, match=r"futr_exog=\['x'\].*pass futr_df"):
        model.predict()
    context, future = future_of(data, 4)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['x'\]"):
        model.predict(context, futr_df=future.drop(columns="x"))
    short = future[~((future.unique_id == "s1") & (future.ds == future.ds.max()))]
    with pytest.raises(ValueError, match=r"1 series.*'s1': 1 step\(s\) from 2024-01-04 07:00"):
        model.predict(context, futr_df=short)
    gappy = future.assign(x=future.x.where(future.index != 2))
    with pytest.raises(ValueError, match="missing or infinite"):
        model.predict(context, futr_df=gappy)
    extra = pd.concat([future, future.assign(ds=future.ds + pd.Timedelta(hours=4))])
    pd.testing.assert_frame_equal(model.predict(context, futr_df=extra),
                                  model.predict(context, futr_df=future))  # later rows unread
    plain = tsk.Forecaster("s4d", **FAST).fit(data.drop(columns="x"))
    with pytest.raises(ValueError, match="reads no covariates known ahead"):
        plain.predict(futr_df=future)


def test_covariate_options_raise_clearly():
    data = promotions(n_series=2, length=80)
    with pytest.raises(ValueError, match="in both exogenous"):
        infer_schema(data, ["x"], ["x"])
    with pytest.raises(TypeError, match="futr_exog must be a list"):
        infer_schema(data, None, "x")
    with pytest.raises(ValueError, match=r"paper's own network.*not futr_exog.*s4d"):
        tsk.Forecaster("spacetime", futr_exog=["x"], **FAST).fit(data)
    (ar, static) = ar_by_kind(n_series=2, length=60)
    with pytest.raises(ValueError, match="not static_df"):
        tsk.Forecaster("tpgn", **FAST).fit(ar, static_df=static)
    with pytest.raises(ValueError, match=r"no row for 1 series: \['s1'\]"):
        tsk.Forecaster("s4d", **FAST).fit(ar, static_df=static[:1])
    model = tsk.Forecaster("s4d", **FAST).fit(ar, static_df=static)
    renamed = ar.assign(unique_id=ar.unique_id + "-new")
    with pytest.raises(ValueError, match=r"\['s0-new', 's1-new'\] were not in the fit"):
        model.predict(renamed)
    other = static.assign(unique_id=static.unique_id + "-new", kind="sideways")
    with pytest.raises(ValueError, match=r"categories the fit never saw: \['sideways'\]"):
        model.predict(renamed, static_df=other)
    with pytest.raises(ValueError, match="missing values"):
        model.predict(ar, static_df=static.assign(size=np.nan))
    with pytest.raises(ValueError, match="fit without static"):
        tsk.Forecaster("s4d", **FAST).fit(ar).predict(static_df=static)
    wide = ar[ar.unique_id == "s0"].drop(columns="unique_id").rename(columns={"y": "level"})
    with pytest.raises(ValueError, match="wide data is one series"):
        tsk.Forecaster("s4d", **FAST).fit(wide, static_df=static)


def test_static_encoding_standardizes_numbers_and_one_hots_categories():
    table = pd.DataFrame({"unique_id": ["a", "b", "c"], "size": [1.0, 2.0, 3.0],
                          "kind": pd.Categorical(["x", "y", "x"]), "open": [True, False, True]})
    encoder = StaticCovariates.fit(table, ["c", "a", "b"])
    assert encoder.names == ["size", "open", "kind=x", "kind=y"]
    encoded = encoder.encode(table, ["b", "c"])
    std = np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose(encoded, [[0.0, (0 - 2 / 3) / np.std([1, 0, 1]), 0, 1],
                                         [1 / std, (1 - 2 / 3) / np.std([1, 0, 1]), 1, 0]],
                               rtol=1e-6)
    assert StaticCovariates.from_dict(encoder.to_dict()) == encoder


def test_known_future_reads_each_context_s_next_steps():
    futr = pd.DataFrame({"unique_id": ["a"] * 3 + ["b"] * 2, "x": [1.0, 2.0, 3.0, 4.0, 5.0],
                         "ds": pd.to_datetime(["2024-01-01 03:00", "2024-01-01 02:00",
                                               "2024-01-01 04:00", "2024-01-01 01:00",
                                               "2024-01-01 02:00"])})
    contexts = [Series(uid, pd.date_range(end, periods=1, freq="h"), np.zeros((1, 2)), "h")
                for uid, end in (("b", "2024-01-01 00:00"), ("a", "2024-01-01 01:00"))]
    values = known_future(futr, contexts, ["x"], 2, "long")
    np.testing.assert_array_equal(np.stack(values)[..., 0], [[4.0, 5.0], [2.0, 1.0]])


# ---- save/load, export, backtests -----------------------------------------------------------
def test_save_load_and_export_keep_both_kinds(tmp_path):
    data = promotions(n_series=3, length=90)
    static = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "region": ["n", "s", "n"],
                           "size": [1.0, 5.0, 2.0]})
    model = tsk.Forecaster("lstm", futr_exog=["x"], time_features=True, **FAST).fit(
        data, static_df=static)
    assert model.futr_calendar_ and model._n_futr() == 1 + len(model.time_feature_names_)
    context, future = future_of(data, 4)
    futr = future.drop(columns="y")
    expected = model.predict(context, futr_df=futr)
    loaded = tsk.load(model.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(loaded.predict(context, futr_df=futr), expected)
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    pd.testing.assert_frame_equal(exported.predict(context, futr_df=futr), expected,
                                  check_exact=False, rtol=1e-5, atol=1e-5)
    moved = futr.assign(x=futr.x + 3.0)  # other plans, other forecasts: the program reads them
    assert not np.allclose(exported.predict(context, futr_df=moved).y, expected.y)
    pd.testing.assert_frame_equal(exported.predict(context, futr_df=moved),
                                  model.predict(context, futr_df=moved),
                                  check_exact=False, rtol=1e-5, atol=1e-5)


def test_a_backtest_reads_the_known_future_from_the_data():
    data = promotions(n_series=2, length=90)
    model = tsk.Forecaster("s4d", futr_exog=["x"], **FAST)
    backtest = model.cross_validation(data, n_windows=2)
    context, future = future_of(data, 4)
    fitted = tsk.Forecaster("s4d", futr_exog=["x"], **FAST).fit(future_of(data, 8)[0])
    last = backtest[backtest.cutoff == backtest.cutoff.max()].reset_index(drop=True)
    forecast = fitted.predict(context, futr_df=future.drop(columns="y"))
    np.testing.assert_allclose(last.s4d, forecast.y, rtol=1e-5, atol=1e-5)


def test_a_quantile_model_reads_covariates_and_its_quantiles_move_with_them(tmp_path):
    """The covariates' forecast moves the median, and the quantiles with it (never crossing)."""
    data = promotions(n_series=2, length=90)
    model = tsk.Forecaster("s4d", futr_exog=["x"], quantiles=[0.1, 0.5, 0.9], **FAST).fit(data)
    context, future = future_of(data, 4)
    futr = future.drop(columns="y")
    forecast = model.predict(context, futr_df=futr, level=[80])
    assert (forecast["y-lo-80"] <= forecast.y).all() and (forecast.y <= forecast["y-hi-80"]).all()
    with torch.no_grad():  # a covariate effect: the horizon path, once it is not zero
        model.net_.covariates.futr_proj.bias.fill_(0.5)
    moved = model.predict(context, futr_df=futr, level=[80])
    np.testing.assert_allclose((moved.y - forecast.y).to_numpy(),
                               (moved["y-hi-80"] - forecast["y-hi-80"]).to_numpy(), rtol=1e-6)
    assert (moved.y - forecast.y).abs().min() > 0
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    pd.testing.assert_frame_equal(exported.predict(context, futr_df=futr), moved[["unique_id", "ds", "y"]],
                                  check_exact=False, rtol=1e-5, atol=1e-5)
