"""`Forecaster.export` / `tsk export` and `tsk.exported.load`: the exported forecaster predicts as
the model does, for every registered forecasting backbone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import tsk
import tsk.exported
from tests.conftest import TINY, make_long, make_wide
from tsk import backbones
from tsk.cli import main
from tsk.heads.forecast import GRID_KINDS, SEQUENCE_KINDS

FORECASTING = sorted(name for kind in (*SEQUENCE_KINDS, *GRID_KINDS)
                     for name in backbones.available(kind))
NOT_EXPORTABLE: dict[str, str] = {}
"""Backbones whose network torch.export cannot trace, with the reason; `export` raises
`tsk.exported.ExportError` for them. None at present: S4's stored kernel length (a buffer read as
a Python int) is a constant of the program, Chimera's scan skips its value check while traced, and
mamba's scan, which sizes its chunks by the batch size, exports for a fixed batch
(`tsk.exported.STATIC_BATCH`), which the loader pads."""
FIXED_BATCH = {"mamba"}  # exported for batches of STATIC_BATCH (the others: any batch size)
FAST = dict(TINY, max_epochs=1, max_steps=3)


def assert_same_forecast(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-5, atol=1e-5)


def test_the_list_covers_the_forecasting_backbones():
    assert {"s4d", "s4", "mamba", "lstm", "pgn", "chimera", "spacetime", "tpgn"} <= set(FORECASTING)
    assert set(NOT_EXPORTABLE) <= set(FORECASTING)


@pytest.mark.parametrize("backbone", FORECASTING)
def test_the_exported_forecaster_predicts_as_the_model(backbone, tmp_path):
    history = make_long(length=60)
    model = tsk.Forecaster(backbone, **FAST).fit(history)
    if backbone in NOT_EXPORTABLE:
        with pytest.raises(tsk.exported.ExportError, match=backbone):
            model.export(tmp_path / "exported")
        return
    model.export(tmp_path / "exported")
    exported = tsk.exported.load(tmp_path / "exported")
    assert exported.batch == (tsk.exported.STATIC_BATCH if backbone in FIXED_BATCH else None)
    assert_same_forecast(exported.predict(), model.predict())
    newer = make_long(length=70, seed=1)  # new data after the fit's
    assert_same_forecast(exported.predict(newer), model.predict(newer))
    # torch alone runs the network: scaled windows in, scaled forecasts out
    program = torch.export.load(tmp_path / "exported" / "network.pt2").module()
    batch = exported.batch or 5
    windows = torch.randn(batch, model.lookback_, model.n_inputs_)
    with torch.no_grad():
        torch.testing.assert_close(program(windows), model.net_(windows), rtol=1e-5, atol=1e-5)


def test_a_fixed_batch_program_takes_any_number_of_windows(tmp_path):
    model = tsk.Forecaster("mamba", **FAST).fit(make_long(length=60))
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    rows = tsk.exported.STATIC_BATCH + 7  # one full batch and a padded one
    windows = torch.randn(rows, model.lookback_, model.n_inputs_)
    with torch.no_grad():
        torch.testing.assert_close(exported.forecast_windows(windows), model.net_(windows),
                                   rtol=1e-5, atol=1e-5)


def test_calendar_features_exogenous_columns_and_new_series(tmp_path):
    """What predict builds around the network: calendar features of the timestamps, exogenous
    inputs, and a series the fit never saw (scaled by its own history)."""
    history = make_long(length=60, exogenous=1)
    model = tsk.Forecaster("s4d", exogenous=["x0"], time_features=True, **FAST).fit(history)
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    assert exported.time_feature_names == model.time_feature_names_ != []
    unseen = history.assign(unique_id=history.unique_id + "-new")
    for data in (None, history, unseen):
        assert_same_forecast(exported.predict(data), model.predict(data))


def test_masked_missing_values_and_their_flags(tmp_path):
    """Under `missing="mask"` the network reads NaN inputs and a flag channel per column that had
    missing values at fit: the exported forecaster builds the same inputs."""
    history = make_long(length=60)
    history.loc[[5, 6, 70, 150], "y"] = np.nan
    model = tsk.Forecaster("s4d", missing="mask", **FAST).fit(history)
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    newer = history.copy()
    newer.loc[[55, 110], "y"] = np.nan  # missing in the windows forecast from
    for data in (None, history, newer):
        assert_same_forecast(exported.predict(data), model.predict(data))


def test_a_wide_frame_with_channels_modelled_jointly(tmp_path):
    wide = make_wide(length=60)
    model = tsk.Forecaster("lstm", channel_independent=False, **FAST).fit(wide)
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    forecast = exported.predict(wide)
    assert list(forecast.columns) == ["ds", "c0", "c1", "c2"]
    assert_same_forecast(forecast, model.predict(wide))


@pytest.mark.parametrize("options", [dict(quantiles=[0.1, 0.9]), dict(distribution="student_t")])
def test_a_probabilistic_model_exports_its_point_forecast(options, tmp_path):
    """A `quantiles=` / `distribution=` model exports what `predict()` returns without `level`:
    its median or mean (the program ends in `PointForecast`); its intervals stay with the model."""
    history = make_long(length=60)
    model = tsk.Forecaster("s4d", channel_independent=False, **FAST, **options).fit(history)
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    assert exported.metadata["forecast"] == ("median" if "quantiles" in options else "mean")
    newer = make_long(length=70, seed=1)
    for data in (None, newer):
        assert_same_forecast(exported.predict(data), model.predict(data))


def test_the_loader_checks_the_data_as_predict_does(tmp_path):
    history = make_long(length=60)
    model = tsk.Forecaster("lstm", **FAST).fit(history)
    exported = tsk.exported.load(model.export(tmp_path / "exported"))
    daily = make_long(length=60, freq="D")
    with pytest.raises(ValueError, match="steps at 'D'"):
        exported.predict(daily)
    with pytest.raises(ValueError, match="missing"):
        exported.predict(history.drop(columns="y"))


def test_export_refuses_a_network_torch_export_cannot_trace(tmp_path, monkeypatch):
    model = tsk.Forecaster("lstm", **FAST).fit(make_long(length=60))

    def cannot(*args, **kwargs):
        raise RuntimeError("an op torch.export cannot trace")

    monkeypatch.setattr(torch.export, "export", cannot)
    with pytest.raises(tsk.exported.ExportError, match="lstm cannot be exported with torch.export"):
        model.export(tmp_path / "exported")
    assert not (tmp_path / "exported").exists()


def test_an_export_that_would_forecast_otherwise_is_refused(tmp_path, monkeypatch):
    """The export is checked against the model's own predict() before it is written."""
    model = tsk.Forecaster("lstm", **FAST).fit(make_long(length=60))
    real = tsk.exported.ExportedForecaster.predict

    def drifted(self, df=None, **covariates):
        frame = real(self, df, **covariates)
        return frame.assign(y=frame.y + 1e-3)

    monkeypatch.setattr(tsk.exported.ExportedForecaster, "predict", drifted)
    with pytest.raises(tsk.exported.ExportError, match="does not reproduce"):
        model.export(tmp_path / "exported")


def test_load_says_what_is_missing_or_foreign(tmp_path):
    with pytest.raises(FileNotFoundError, match="network.pt2 is missing"):
        tsk.exported.load(tmp_path)
    model = tsk.Forecaster("lstm", **FAST).fit(make_long(length=60))
    folder = model.export(tmp_path / "exported")
    metadata = json.loads((folder / "forecaster.json").read_text())
    (folder / "forecaster.json").write_text(json.dumps({**metadata, "format_version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        tsk.exported.load(folder)


def test_tsk_export_writes_what_the_loader_reads(tmp_path, capsys):
    history = make_long(length=60)
    model = tsk.Forecaster("s4d", **FAST).fit(history)
    model.save(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "exported")]) == 0
    assert "Exported the s4d forecaster" in capsys.readouterr().out
    assert_same_forecast(tsk.exported.load(tmp_path / "exported").predict(history),
                         tsk.load(tmp_path / "model").predict(history))
    assert np.isfinite(tsk.exported.load(tmp_path / "exported").predict().y).all()


def test_tsk_export_refuses_other_estimators(tmp_path, capsys):
    X = np.random.default_rng(0).standard_normal((20, 16, 1)).astype(np.float32)
    y = np.array([0, 1] * 10)
    tsk.Classifier("lstm", d_model=8, n_layers=1, max_epochs=1, enable_progress_bar=False,
                   random_state=0).fit(X, y).save(tmp_path / "classifier")
    assert main(["export", str(tmp_path / "classifier"), str(tmp_path / "out")]) == 1
    assert "only a Forecaster exports" in capsys.readouterr().err
