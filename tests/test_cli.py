"""The `tsk` command: forecast, fit, streaming predict, backtest, backbones, and one-line
errors."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tsk
from tests.conftest import make_long
from tsk.cli import main
from tsk.datasets import load_ett

TINY_ARGS = ["--horizon", "4", "--lookback", "16", "--d-model", "8", "--n-layers", "1",
             "--max-epochs", "2", "--batch-size", "32", "--no-progress"]


def test_backbones_lists_the_registry(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert "lstm" in out and "s4d" in out


def test_forecast_on_a_long_csv(tmp_path, capsys):
    data = tmp_path / "sales.csv"
    make_long(length=60).to_csv(data, index=False)
    out = tmp_path / "forecast.csv"
    checkpoints = tmp_path / "checkpoints"
    assert main(["forecast", "--data", str(data), "--backbone", "lstm", "--out", str(out),
                 "--checkpoint-dir", str(checkpoints), *TINY_ARGS]) == 0
    report = json.loads(capsys.readouterr().out.split("\nWrote")[0])
    assert report["n_windows"] == 3 and report["mse"] > 0
    kept = [p.name for p in checkpoints.iterdir()]  # the best epoch's; no resume point left
    assert len(kept) == 1 and kept[0].startswith("epoch=")
    forecast = pd.read_csv(out, parse_dates=["ds"])
    assert len(forecast) == 12 and forecast.ds.min() == pd.Timestamp("2024-01-03 12:00")


@pytest.mark.slow
def test_forecast_on_a_benchmark_dataset(tmp_path, capsys, data_dir):
    out = tmp_path / "etth2.parquet"
    args = ["forecast", "--dataset", "ETTh2", "--data-dir", str(data_dir), "--out", str(out),
            *TINY_ARGS, "--max-epochs", "1", "--batch-size", "512", "--save-model",
            str(tmp_path / "m")]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.split("\nWrote")[0])
    assert report["n_windows"] == 2880 - 4 + 1 and report["mse"] < 1.0
    forecast = pd.read_parquet(out)
    assert list(forecast.columns) == ["ds", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert forecast.ds.iloc[0] == load_ett("ETTh2", data_dir).frame.ds.iloc[14400]  # after test
    assert tsk.load(tmp_path / "m").horizon == 4


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_fit_then_streaming_predict(tmp_path, capsys, suffix):
    history = make_long(n_series=5, length=40)
    train = tmp_path / "train.csv"
    history.to_csv(train, index=False)
    model_dir = tmp_path / "model"
    assert main(["fit", "--data", str(train), "--backbone", "s4d", "--out", str(model_dir),
                 *TINY_ARGS]) == 0
    data = tmp_path / f"history{suffix}"
    history.to_csv(data, index=False) if suffix == ".csv" else history.to_parquet(data)
    out = tmp_path / f"forecast{suffix}"
    # chunks of 30 rows: series of 40 rows always straddle two chunks
    assert main(["predict", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--chunk-rows", "30", "--no-progress"]) == 0
    assert "for 5 series" in capsys.readouterr().out
    got = pd.read_csv(out, parse_dates=["ds"]) if suffix == ".csv" else pd.read_parquet(out)
    expected = tsk.load(model_dir).predict(history)
    # chunks batch the series differently, so float32 sums may differ in the last bits
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-5)


def test_backtest_writes_the_windows_and_prints_their_errors(tmp_path, capsys):
    data, out = tmp_path / "sales.csv", tmp_path / "backtest.parquet"
    history = make_long(n_series=3, length=60)
    history.to_csv(data, index=False)
    assert main(["backtest", "--data", str(data), "--backbone", "lstm", "--n-windows", "2",
                 "--refit", "1", "--level", "80", "--out", str(out), *TINY_ARGS]) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed.split("\nWrote")[0])
    assert "Wrote 24 forecasts (2 windows)" in printed
    backtest = pd.read_parquet(out)
    assert list(backtest.columns) == ["unique_id", "ds", "cutoff", "y", "lstm", "lstm-lo-80",
                                      "lstm-hi-80"]
    # 60 hourly rows from 2024-01-01 00:00: cutoffs 4 steps apart, the last one after row 55
    assert sorted(backtest.cutoff.unique()) == [pd.Timestamp("2024-01-03 03:00"),
                                                pd.Timestamp("2024-01-03 07:00")]
    np.testing.assert_array_equal(backtest.y, pd.read_csv(data).groupby("unique_id").tail(8).y)
    errors = backtest.y - backtest.lstm
    assert report["mse"] == pytest.approx((errors**2).mean())
    assert report["mae"] == pytest.approx(errors.abs().mean())
    assert [row["n"] for row in report["per_cutoff"]] == [12, 12] and report["refit"] == 1
    first = backtest[backtest.cutoff == backtest.cutoff.min()]
    assert report["per_cutoff"][0]["mse"] == pytest.approx(((first.y - first.lstm) ** 2).mean())
    inside = (backtest["lstm-lo-80"] <= backtest.y) & (backtest.y <= backtest["lstm-hi-80"])
    assert report["coverage_80"] == pytest.approx(inside.mean())
    assert main(["backtest", "--data", str(data), "--n-windows", "20", "--out", str(out),
                 *TINY_ARGS]) == 1
    assert "too short to backtest" in capsys.readouterr().err


def saved_forecaster(tmp_path, history: pd.DataFrame) -> Path:
    """A small LSTM forecaster fit on `history` and saved under `tmp_path / "model"`."""
    model_dir = tmp_path / "model"
    tsk.Forecaster("lstm", horizon=4, lookback=16, d_model=8, max_epochs=1,
                   enable_progress_bar=False, random_state=0).fit(history).save(model_dir)
    return model_dir


def test_predict_needs_a_file_grouped_by_series(tmp_path, capsys):
    history = make_long(n_series=3, length=40)
    model_dir = saved_forecaster(tmp_path, history)
    data = tmp_path / "interleaved.csv"
    history.sort_values(["ds", "unique_id"]).to_csv(data, index=False)
    code = main(["predict", "--model", str(model_dir), "--data", str(data), "--out",
                 str(tmp_path / "f.csv"), "--chunk-rows", "10", "--no-progress"])
    assert code == 1
    assert "group the file's rows by unique_id" in capsys.readouterr().err


@pytest.fixture
def many_series(tmp_path):
    """A saved model and a history file of 12 series, and what a clean run writes for it."""
    history = make_long(n_series=12, length=40)
    model_dir = saved_forecaster(tmp_path, history)
    data = tmp_path / "history.csv"
    history.to_csv(data, index=False)
    clean = tmp_path / "clean.csv"
    assert main(["predict", "--model", str(model_dir), "--data", str(data), "--out", str(clean),
                 "--chunk-rows", "80", "--no-progress"]) == 0
    return model_dir, data, pd.read_csv(clean)


def test_an_interrupted_predict_leaves_no_partial_file_and_resumes(tmp_path, capsys, monkeypatch,
                                                                  many_series):
    model_dir, data, expected = many_series
    out = tmp_path / "forecast.csv"
    original, calls = tsk.Forecaster.predict, []

    def failing(self, df=None, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return original(self, df, **kwargs)

    monkeypatch.setattr(tsk.Forecaster, "predict", failing)
    args = ["predict", "--model", str(model_dir), "--data", str(data), "--out", str(out),
            "--chunk-rows", "80", "--no-progress"]
    assert main(args) == 1
    assert not out.exists()  # nothing that looks like a finished file
    monkeypatch.setattr(tsk.Forecaster, "predict", original)
    assert main([*args, "--resume"]) == 0
    got = pd.read_csv(out)
    assert len(calls) == 3  # the 2 finished parts were kept, not predicted again
    pd.testing.assert_frame_equal(got, expected)  # no duplicates, no gaps
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ValueError, match="parts of another run"):
        (out.parent / ".forecast.csv.parts").mkdir()
        (out.parent / ".forecast.csv.parts" / "run.json").write_text("{}")
        main(["--debug", *args, "--resume"])


@pytest.mark.slow
def test_a_killed_predict_resumes_where_it_stopped(tmp_path):
    """12,000 rows (300 series), the process killed once some parts are in: the file is not
    there, and --resume finishes it with every series once."""
    import signal
    import subprocess
    import sys
    import time

    history = make_long(n_series=300, length=40)
    model_dir = saved_forecaster(tmp_path, history.iloc[:400])
    data = tmp_path / "history.csv"
    history.to_csv(data, index=False)
    out = tmp_path / "forecast.parquet"
    command = [sys.executable, "-m", "tsk.cli", "predict", "--model", str(model_dir), "--data",
               str(data), "--out", str(out), "--chunk-rows", "40", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / ".forecast.parquet.parts"
    deadline = time.time() + 180
    while len(list(parts.glob("part-*.parquet"))) < 5 and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(parts.glob("part-*.parquet")))
    assert not out.exists() and 5 <= done < 300
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = pd.read_parquet(out)
    assert got.groupby("unique_id").size().eq(4).all() and got.unique_id.nunique() == 300
    expected = tsk.load(model_dir).predict(history)
    order = ["unique_id", "ds"]
    pd.testing.assert_frame_equal(got.sort_values(order, ignore_index=True),
                                  expected.sort_values(order, ignore_index=True),
                                  check_exact=False, rtol=1e-5)


def test_errors_are_one_line_with_a_non_zero_exit(tmp_path, capsys):
    assert main(["forecast", "--data", str(tmp_path / "nope.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such file" in err and "Traceback" not in err
    assert main(["forecast", "--dataset", "ETTh1", "--data-dir", str(tmp_path)]) == 1
    assert "ETTh1.csv not found" in capsys.readouterr().err
    data = tmp_path / "d.csv"
    make_long(length=60).to_csv(data, index=False)
    assert main(["forecast", "--data", str(data), "--backbone", "mamba2x", *TINY_ARGS]) == 1
    assert "Unknown backbone 'mamba2x'" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "forecast", "--data", str(tmp_path / "nope.csv")])
    with pytest.raises(SystemExit) as exit_info:
        main(["forecast"])
    assert exit_info.value.code == 2


def test_switches_reach_the_model():
    from tsk.cli import _forecaster, build_parser

    def model(*flags: str) -> tsk.Forecaster:
        return _forecaster(build_parser().parse_args(["forecast", "--data", "x.csv", *flags]))

    assert model().time_features is None
    assert model("--time-features").time_features is True
    assert model("--no-time-features").time_features is False
    assert model().instance_norm is True and model("--no-instance-norm").instance_norm is False
    assert model().ridge_init is None
    assert model("--ridge-init").ridge_init is True and model("--no-ridge-init").ridge_init is False
    # unset, the backbone decides (joint for a grid backbone such as chimera, which refuses True)
    assert model().channel_independent is None
    assert model("--channel-mixing").channel_independent is False
    assert not model("--backbone", "chimera")._independent()
    # the data policies (docs/data.md), every one the model knows, and conformal intervals
    from tsk.datasets.frames import DUPLICATE_POLICIES, MISSING_POLICIES

    assert (model().missing, model().duplicates, model().freq) == ("raise", "raise", None)
    assert [model("--missing", p).missing for p in MISSING_POLICIES] == list(MISSING_POLICIES)
    assert ([model("--duplicates", p).duplicates for p in DUPLICATE_POLICIES]
            == list(DUPLICATE_POLICIES))
    assert model("--freq", "10min").freq == "10min"
    assert model().conformal is False and model("--level", "80", "95").conformal is True
    # learned intervals: --level asks for the model's own, so no conformal calibration
    learned = model("--quantiles", "0.1", "0.9", "--level", "80")
    assert learned.quantiles == [0.1, 0.9] and learned.conformal is False
    assert model("--distribution", "student_t", "--level", "95").conformal is False
    assert model("--futr-exog", "promo", "price").futr_exog == ["promo", "price"]
    assert model().futr_exog is None and model().quantiles is model().distribution is None
    with pytest.raises(SystemExit) as exit_info:
        model("--missing", "fill")
    assert exit_info.value.code == 2


def test_missing_values_gaps_and_duplicate_rows_follow_the_policy_flags(tmp_path, capsys):
    history = make_long(n_series=3, length=40)
    holes = tmp_path / "holes.csv"
    history.assign(y=history.y.mask(history.index == 25)).to_csv(holes, index=False)
    fit = ["fit", "--backbone", "lstm", *TINY_ARGS, "--max-epochs", "1"]
    assert main([*fit, "--data", str(holes), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "1 missing or infinite value(s)" in err and "missing='mask'" in err
    assert "missing='interpolate'" in err and err.count("\n") == 1
    assert main([*fit, "--data", str(holes), "--out", str(tmp_path / "m"), "--missing", "mask"]) == 0
    assert tsk.load(tmp_path / "m").missing == "mask"
    # a gap (row 10 gone) and a repeated row: the grid fills the gap, the copy is dropped
    messy = tmp_path / "messy.csv"
    pd.concat([history.drop(index=10), history.iloc[[30]]]).to_csv(messy, index=False)
    assert main([*fit, "--data", str(messy), "--out", str(tmp_path / "m")]) == 1
    assert "duplicates=" in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*fit, "--data", str(messy), "--out", str(tmp_path / "m"), "--freq", "h",
                     "--missing", "interpolate", "--duplicates", "drop_exact"]) == 0
    said = " ".join(str(w.message) for w in caught)  # each policy counts what it did
    assert "Dropped 1 exact duplicate row" in said and "inserting 1 missing step" in said
    assert "Filled 1 missing value" in said
    model = tsk.load(tmp_path / "m")
    assert (model.freq, model.missing, model.duplicates) == ("h", "interpolate", "drop_exact")
    assert len(model.predict()) == 3 * 4
    assert main([*fit, "--data", str(messy), "--out", str(tmp_path / "m"), "--freq", "often"]) == 1
    assert "freq='often' is not a positive pandas frequency" in capsys.readouterr().err


def test_level_writes_conformal_intervals_beside_the_forecast(tmp_path, capsys):
    history = make_long(n_series=3, length=60)
    data = tmp_path / "sales.csv"
    history.to_csv(data, index=False)
    out = tmp_path / "forecast.csv"
    assert main(["forecast", "--data", str(data), "--backbone", "lstm", "--out", str(out),
                 "--level", "80", *TINY_ARGS]) == 0
    report = json.loads(capsys.readouterr().out.split("\nWrote")[0])
    assert 0 <= report["coverage_80"] <= 1 and report["interval_score_80"] > 0
    forecast = pd.read_csv(out)
    assert list(forecast.columns) == ["unique_id", "ds", "y", "y-lo-80", "y-hi-80"]
    assert (forecast["y-lo-80"] < forecast.y).all() and (forecast.y < forecast["y-hi-80"]).all()
    # fit --level calibrates and checks the levels (99% needs 99 windows: saved, but it says so)
    model_dir = tmp_path / "model"
    assert main(["fit", "--data", str(data), "--backbone", "lstm", "--out", str(model_dir),
                 "--level", "80", "99", *TINY_ARGS]) == 1
    err = capsys.readouterr().err
    assert f"saved to {model_dir}, but it gives no 80, 99% intervals" in err
    assert "99% conformal interval needs at least 99 calibration scores" in err
    assert main(["fit", "--data", str(data), "--backbone", "lstm", "--out", str(model_dir),
                 "--level", "80", *TINY_ARGS]) == 0
    assert "Conformal intervals at 80%, calibrated on " in capsys.readouterr().out
    out = tmp_path / "next.parquet"
    assert main(["predict", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--level", "80", "--chunk-rows", "50", "--no-progress"]) == 0
    expected = tsk.load(model_dir).predict(history, level=[80])
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=False, rtol=1e-5)
    plain = saved_forecaster(tmp_path / "plain", history)
    assert main(["predict", "--model", str(plain), "--data", str(data), "--out", str(out),
                 "--level", "80", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only with conformal=True" in err


def promotions(tmp_path: Path, n_series: int = 3, length: int = 64) -> dict[str, Path]:
    """Sales lifted by a promotion planned ahead (`promo`), and a static row per series (a
    store's `kind` and `size`), as files: `data` (all but each series' last 4 rows), `future`
    (those rows without `y`: the promotions known ahead) and `static`."""
    rng = np.random.default_rng(1)
    frame = make_long(n_series=n_series, length=length + 4)
    frame["promo"] = rng.integers(0, 2, len(frame)).astype(float)
    frame["y"] += frame.promo
    last = frame.groupby("unique_id").cumcount(ascending=False) < 4
    static = pd.DataFrame({"unique_id": [f"s{i}" for i in range(n_series)],
                           "kind": ["mall", "street"] * (n_series // 2) + ["mall"] * (n_series % 2),
                           "size": np.arange(n_series) + 1.0})
    files = {name: tmp_path / f"{name}.csv" for name in ("data", "future", "static")}
    frame[~last].to_csv(files["data"], index=False)
    frame[last].drop(columns="y").to_csv(files["future"], index=False)
    static.to_csv(files["static"], index=False)
    return files


def test_covariates_known_ahead_and_static_through_fit_and_streaming_predict(tmp_path, capsys):
    files = promotions(tmp_path)
    model_dir, out = tmp_path / "model", tmp_path / "next.csv"
    assert main(["fit", "--data", str(files["data"]), "--backbone", "lstm", "--futr-exog", "promo",
                 "--static-data", str(files["static"]), "--out", str(model_dir), *TINY_ARGS,
                 "--max-epochs", "1"]) == 0
    model = tsk.load(model_dir)
    assert model.futr_exog == ["promo"] and model.static_.names == ["size", "kind=mall",
                                                                    "kind=street"]
    predict = ["predict", "--model", str(model_dir), "--data", str(files["data"]), "--out",
               str(out), "--chunk-rows", "50", "--no-progress"]  # chunks cut the series
    assert main([*predict, "--futr-data", str(files["future"]), "--static-data",
                 str(files["static"])]) == 0
    read = {name: pd.read_csv(path, parse_dates=["ds"] if name != "static" else None)
            for name, path in files.items()}
    expected = model.predict(read["data"], futr_df=read["future"], static_df=read["static"])
    pd.testing.assert_frame_equal(pd.read_csv(out, parse_dates=["ds"]), expected,
                                  check_exact=False, rtol=1e-5)
    assert expected.ds.min() == read["future"].ds.min()
    # the known future is needed: said at once, in one line
    assert main(predict) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "futr_exog=['promo']" in err and "--futr-data FILE" in err
    # the Forecaster's own errors, with the option that gives what they name
    read["static"][read["static"].unique_id != "s2"].to_csv(tmp_path / "two.csv", index=False)
    assert main([*predict, "--futr-data", str(files["future"]), "--static-data",
                 str(tmp_path / "two.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "static_df has no row for 1 series: ['s2']" in err
    assert err.rstrip().endswith("(--static-data FILE gives static_df)")
    # tsk forecast writes the forecast after the data's end: --futr-exog needs --futr-data
    assert main(["forecast", "--data", str(files["data"]), "--futr-exog", "promo"]) == 1
    assert "--futr-exog promo needs --futr-data FILE" in capsys.readouterr().err


def test_learned_quantiles_give_the_levels_without_conformal_calibration(tmp_path, capsys):
    files = promotions(tmp_path)
    out, model_dir = tmp_path / "forecast.csv", tmp_path / "model"
    assert main(["forecast", "--data", str(files["data"]), "--backbone", "lstm", "--quantiles",
                 "0.1", "0.5", "0.9", "--level", "80", "--futr-exog", "promo", "--futr-data",
                 str(files["future"]), "--static-data", str(files["static"]), "--out", str(out),
                 "--save-model", str(model_dir), *TINY_ARGS, "--max-epochs", "1"]) == 0
    report = json.loads(capsys.readouterr().out.split("\nWrote")[0])
    assert 0 <= report["coverage_80"] <= 1 and report["crps"] > 0 and report["wql"] > 0
    forecast = pd.read_csv(out, parse_dates=["ds"])
    assert list(forecast.columns) == ["unique_id", "ds", "y", "y-lo-80", "y-hi-80", "y-q-10",
                                      "y-q-50", "y-q-90"]
    np.testing.assert_allclose(forecast["y-lo-80"], forecast["y-q-10"])  # the model's own
    np.testing.assert_allclose(forecast.y, forecast["y-q-50"])
    assert forecast.ds.min() == pd.read_csv(files["future"], parse_dates=["ds"]).ds.min()
    model = tsk.load(model_dir)
    assert list(model.quantiles) == [0.1, 0.5, 0.9] and model.conformal is False
    # a level the grid cannot give: the Forecaster's error, before the data is read
    fit = ["fit", "--data", str(tmp_path / "nope.csv"), "--out", str(model_dir), *TINY_ARGS]
    assert main([*fit, "--quantiles", "0.1", "0.9", "--level", "80", "95"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Level(s) [95.0] need the quantiles" in err


def test_a_distribution_model_writes_the_quantiles_predict_asks_for(tmp_path, capsys):
    history = make_long(n_series=3, length=40)
    data, model_dir, out = tmp_path / "sales.csv", tmp_path / "model", tmp_path / "q.parquet"
    history.to_csv(data, index=False)
    assert main(["fit", "--data", str(data), "--backbone", "lstm", "--distribution", "normal",
                 "--level", "90", "--out", str(model_dir), *TINY_ARGS, "--max-epochs", "1"]) == 0
    assert "Intervals at 90% from the model's normal distribution" in capsys.readouterr().out
    assert main(["predict", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--quantiles", "0.05", "0.95", "--chunk-rows", "50", "--no-progress"]) == 0
    got = pd.read_parquet(out)
    assert list(got.columns) == ["unique_id", "ds", "y", "y-q-5", "y-q-95"]
    expected = tsk.load(model_dir).predict(history, quantiles=[0.05, 0.95])
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-5)
    # learned quantiles or a distribution, not both: the Forecaster says so before the data is read
    fit = ["fit", "--data", str(tmp_path / "nope.csv"), "--out", str(model_dir), *TINY_ARGS]
    assert main([*fit, "--quantiles", "0.1", "0.9", "--distribution", "normal"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Give quantiles or distribution, not both" in err
    with pytest.raises(SystemExit) as exit_info:  # not a probability: a usage error
        main([*fit, "--quantiles", "0.5", "1.5"])
    assert exit_info.value.code == 2 and "1.5 is not strictly between 0 and 1" in capsys.readouterr().err
    # a point model has no quantiles to give
    plain = saved_forecaster(tmp_path / "plain", history)
    assert main(["predict", "--model", str(plain), "--data", str(data), "--out", str(out),
                 "--quantiles", "0.5", "--no-progress"]) == 1
    assert "quantiles= asks for the quantiles of a model that learns them" in capsys.readouterr().err


CLASSIFY_ARGS = ["--d-model", "8", "--n-layers", "1", "--max-epochs", "2", "--no-progress"]


def test_classify_an_archive_set_then_predict_with_the_saved_model(tmp_path, capsys, data_dir):
    out, model = tmp_path / "predictions.csv", tmp_path / "model"
    assert main(["classify", "--dataset", "ItalyPowerDemand", "--data-dir", str(data_dir),
                 "--out", str(out), "--save-model", str(model), *CLASSIFY_ARGS]) == 0
    report = json.loads(capsys.readouterr().out.split("\nWrote")[0])
    assert report["n"] == 1029 and report["n_train"] == 67 and report["epochs"] == 2
    assert 0 <= report["accuracy"] <= 1 and len(report["confusion_matrix"]) == 2
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["unique_id", "true_label", "label", "proba_1", "proba_2"]
    accuracy = (predictions.label == predictions.true_label).mean()
    assert accuracy == pytest.approx(report["accuracy"])
    again = tmp_path / "again.parquet"
    test_file = data_dir / "classification" / "ItalyPowerDemand" / "ItalyPowerDemand_TEST.ts.gz"
    assert main(["predict", "--model", str(model), "--data", str(test_file), "--out", str(again)]) == 0
    labelled = pd.read_parquet(again)
    assert labelled.label.tolist() == predictions.label.astype(str).tolist()  # CSV read "1" as 1
    pd.testing.assert_frame_equal(labelled.drop(columns="label"),
                                  predictions.drop(columns=["true_label", "label"]))


def test_patch_len_takes_a_number_of_steps_or_auto():
    from tsk.cli import _patch_len

    assert _patch_len("auto") == "auto" and _patch_len("8") == 8
    for bad in ("0", "x", "2.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            _patch_len(bad)


def test_classify_long_tables_with_a_label_column(tmp_path, capsys):
    from tests.estimators.test_classifier import waves

    def table(n: int, seed: int) -> pd.DataFrame:
        X, y = waves(n, channels=2, seed=seed, lengths=(12, 20))
        return pd.concat([pd.DataFrame({"unique_id": f"s{seed}-{i}", "position": range(x.shape[1]),
                                        "a": x[0], "b": x[1], "label": ["slow", "fast"][label]})
                          for i, (x, label) in enumerate(zip(X, y, strict=True))])

    train, test, out = tmp_path / "train.csv", tmp_path / "test.parquet", tmp_path / "p.csv"
    table(16, 0).to_csv(train, index=False)
    table(6, 1).to_parquet(test)
    assert main(["classify", "--train", str(train), "--test", str(test), "--out", str(out),
                 "--backbone", "lstm", *CLASSIFY_ARGS]) == 0
    predictions = pd.read_csv(out)
    assert predictions.unique_id.tolist() == [f"s1-{i}" for i in range(6)]
    assert set(predictions.true_label) <= {"slow", "fast"} and set(predictions.label) <= {"slow", "fast"}
    mixed = table(4, 2)
    mixed.loc[mixed.index[0], "label"] = "fast" if mixed.label.iloc[1] == "slow" else "slow"
    mixed.to_csv(train, index=False)
    assert main(["classify", "--train", str(train), "--test", str(test), *CLASSIFY_ARGS]) == 1
    assert "has several labels" in capsys.readouterr().err


def test_predict_labels_a_folder_of_audio_files_with_a_saved_speech_classifier(tmp_path, capsys):
    import soundfile

    from tests.speech_fixtures import RATE, tones

    clips, labels = tones(12)
    model = tsk.SpeechClassifier(frontend="mfcc", d_model=8, n_layers=1, max_epochs=1,
                                 enable_progress_bar=False, random_state=0)
    model.fit(clips, labels, sample_rate=RATE).save(tmp_path / "model")
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, clip in enumerate(clips[:5]):
        soundfile.write(folder / f"{i}.wav", clip, RATE, subtype="FLOAT")
    (folder / "notes.txt").write_text("not audio: skipped")
    out = tmp_path / "labels.csv"
    assert main(["predict", "--model", str(tmp_path / "model"), "--data", str(folder),
                 "--out", str(out)]) == 0
    assert "Wrote labels for 5 clips" in capsys.readouterr().out
    predictions = pd.read_csv(out)
    assert [name.rsplit("/", 1)[-1] for name in predictions.file] == [f"{i}.wav" for i in range(5)]
    assert predictions.label.tolist() == model.predict(clips[:5]).tolist()
    assert list(predictions.columns[2:]) == [f"proba_{label}" for label in model.classes_]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", str(tmp_path / "model"), "--data", str(empty),
                 "--out", str(out)]) == 1
    assert "holds no audio files" in capsys.readouterr().err


def test_help_and_usage_errors_do_not_load_the_heavy_libraries():
    """`tsk --help`, `tsk backbones` and argument errors answer at once: none loads pandas, torch
    or Lightning (each costs seconds at start-up)."""
    import subprocess
    import sys

    code = ("import sys, tsk.cli\n"
            "heavy = [m for m in ('pandas', 'torch', 'lightning') if m in sys.modules]\n"
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    listing = ("import sys\nfrom tsk.cli import main\nmain(['backbones'])\n"
               "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "False" and "s4d" in result.stdout
    usage = subprocess.run([sys.executable, "-m", "tsk.cli", "forecast", "--no-such-option"],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "tsk forecast: error:" in usage.stderr


def test_predict_on_a_header_only_file_says_so(tmp_path, capsys):
    history = make_long(n_series=2, length=40)
    model_dir = saved_forecaster(tmp_path, history)
    empty = tmp_path / "empty.csv"
    history.iloc[:0].to_csv(empty, index=False)
    assert main(["predict", "--model", str(model_dir), "--data", str(empty), "--out",
                 str(tmp_path / "f.csv"), "--no-progress"]) == 1
    assert "has no rows (only a header?)" in capsys.readouterr().err


def test_predict_continues_the_videos_of_a_npy_file_with_a_saved_video_predictor(tmp_path, capsys):
    import numpy as np

    from tests.estimators.test_video import squares

    videos = squares(5, frames=6)
    model = tsk.VideoPredictor("convs5", d_model=8, n_layers=1, max_epochs=1,
                               enable_progress_bar=False, random_state=0).fit(videos)
    model.save(tmp_path / "model")
    np.save(tmp_path / "videos.npy", videos[:, :4])
    out = tmp_path / "future.npy"
    args = ["predict", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "videos.npy"),
            "--out", str(out), "--n-frames", "3", "--chunk-rows", "2"]
    assert main(args) == 0
    # chunks of 2 videos against one batch of 5: equal up to float32 rounding (0-255 units)
    np.testing.assert_allclose(np.load(out), model.predict(videos[:, :4], 3), atol=0.05)
    assert "3 predicted frames for 5 videos" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert main(args[:-4]) == 1
    assert "--n-frames is needed" in capsys.readouterr().err
    np.save(tmp_path / "frames.npy", videos[0])
    assert main([*args[:3], "--data", str(tmp_path / "frames.npy"), *args[5:]]) == 1
    assert "5-D [n, T, C, H, W]" in capsys.readouterr().err
