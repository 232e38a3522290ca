"""The Forecaster's scikit-learn contract, data handling, persistence and error cases."""

from __future__ import annotations

import json
import shutil

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import tsk
from tests.conftest import TINY, make_long
from tsk import training


def test_init_only_stores_params():
    model = tsk.Forecaster("lstm", horizon=7, lookback=21, backbone_kwargs={"n_layers": 3})
    params = model.get_params()
    assert params["backbone"] == "lstm" and params["horizon"] == 7 and params["lookback"] == 21
    assert params["backbone_kwargs"] == {"n_layers": 3}
    model.set_params(horizon=5, learning_rate=0.01)
    assert model.horizon == 5 and model.learning_rate == 0.01
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    assert not any(key.endswith("_") for key in vars(model))


def test_methods_before_fit_raise():
    model = tsk.Forecaster("lstm")
    with pytest.raises(NotFittedError):
        model.predict()
    with pytest.raises(NotFittedError):
        model.save("/tmp/never")


@pytest.mark.parametrize("backbone", ["lstm", "s4d"])
def test_fit_predict_long(backbone, long_df):
    model = tsk.Forecaster(backbone, **TINY).fit(long_df)
    assert model.fit(long_df) is model
    forecast = model.predict()
    assert list(forecast.columns) == ["unique_id", "ds", "y"]
    assert len(forecast) == 3 * 4
    for uid, part in forecast.groupby("unique_id"):
        last = long_df[long_df.unique_id == uid].ds.max()
        assert list(part.ds) == list(pd.date_range(last, periods=5, freq="h")[1:])
        level = long_df[long_df.unique_id == uid].y.mean()
        assert np.all(np.abs(part.y - level) < 3)  # original scale, near the series' level


def test_fit_predict_wide_channel_mixing(wide_df):
    model = tsk.Forecaster("lstm", channel_independent=False, **TINY).fit(wide_df)
    forecast = model.predict()
    assert list(forecast.columns) == ["ds", "c0", "c1", "c2"] and len(forecast) == 4
    assert forecast.ds.iloc[0] == wide_df.ds.iloc[-1] + pd.Timedelta("15min")
    assert model.n_inputs_ == 3 and model.n_outputs_ == 3


def test_exogenous_columns_are_inputs():
    df = make_long(exogenous=2)
    model = tsk.Forecaster("lstm", exogenous=["x0", "x1"], **TINY).fit(df)
    assert model.n_inputs_ == 3 and model.n_outputs_ == 1
    forecast = model.predict(df)
    assert list(forecast.columns) == ["unique_id", "ds", "y"]


def test_learns_a_seasonal_signal():
    df = make_long(n_series=2, length=300)
    params = {**TINY, "max_epochs": 8, "horizon": 8, "lookback": 24}
    model = tsk.Forecaster("s4d", **params).fit(df)
    metrics = model.evaluate(df)
    assert metrics["mse"] < 0.1  # a noisy sine (noise var 0.01 of a unit-var signal)
    assert metrics["n_windows"] == 2 * (300 - 24 - 8 + 1)
    assert 0 < metrics["mase"] < 1
    assert model.evaluate(df[df.unique_id == "s1"])["smape"] < 0.05  # level 10: sMAPE is meaningful
    assert model.score(df) == pytest.approx(-metrics["mse"])


def test_evaluate_on_another_models_scale(long_df):
    """metric_scalers standardizes the errors with given statistics: own scalers change nothing,
    a scaler with twice the spread divides the MSE by 4 and the MAE by 2."""
    from tsk.datasets.scaling import StandardScaler

    model = tsk.Forecaster("s4d", **TINY).fit(long_df)
    own = model.evaluate(long_df)
    assert model.evaluate(long_df, metric_scalers=model.scalers_)["mse"] == pytest.approx(own["mse"])
    wider = {uid: StandardScaler(mean=sc.mean + 1.0, scale=sc.scale * 2)
             for uid, sc in model.scalers_.items()}
    other = model.evaluate(long_df, metric_scalers=wider)
    assert other["mse"] == pytest.approx(own["mse"] / 4, rel=1e-5)
    assert other["mae"] == pytest.approx(own["mae"] / 2, rel=1e-5)
    assert other["smape"] == pytest.approx(own["smape"])  # original-scale metrics are unchanged
    with pytest.raises(ValueError, match="no scaler for series 's0'"):
        model.evaluate(long_df, metric_scalers={})


def test_reproducible_with_random_state(long_df):
    first = tsk.Forecaster("s4d", **TINY).fit(long_df).predict()
    state = torch.random.get_rng_state()
    second = tsk.Forecaster("s4d", **TINY).fit(long_df).predict()
    pd.testing.assert_frame_equal(first, second)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert not torch.are_deterministic_algorithms_enabled()  # nor its global switches


def test_save_load_predicts_bit_identically(tmp_path, long_df):
    model = tsk.Forecaster("s4d", **TINY).fit(long_df)
    model.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {
        "config.json", "model.safetensors", "preprocessing.safetensors"}
    loaded = tsk.load(tmp_path / "model")
    assert isinstance(loaded, tsk.Forecaster) and loaded.get_params() == model.get_params()
    pd.testing.assert_frame_equal(model.predict(), loaded.predict(), check_exact=True)
    pd.testing.assert_frame_equal(model.predict(long_df), loaded.predict(long_df), check_exact=True)
    assert tsk.Forecaster.load(tmp_path / "model").predict().equals(model.predict())


class _Interrupt(L.Callback):
    """Fails the fit in its second epoch, as a killed process would: at its end (before its
    validation), or after its second batch (`mid_epoch`); records the first batch it sees."""

    def __init__(self, mid_epoch: bool = False, fail: bool = True) -> None:
        self.mid_epoch, self.fail, self.first = mid_epoch, fail, None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: object, batch_idx: int) -> None:
        self.first = self.first or (trainer.current_epoch, batch_idx)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object,
                           batch: object, batch_idx: int) -> None:
        if self.fail and self.mid_epoch and (trainer.current_epoch, batch_idx) == (1, 1):
            raise RuntimeError("interrupted")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.fail and not self.mid_epoch and trainer.current_epoch == 1:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize(("backbone", "settings", "mid_epoch"), [
    ("spacetime", {"backbone_kwargs": {"d_state": 4}}, False),  # random start, dropout: RNG
    ("spacetime", {"backbone_kwargs": {"d_state": 4}}, True),  # ... and the epoch's permutation
    ("s4d", {}, False),  # the ridge start, validated once and kept in the folder
    ("lstm", {"validation_size": 0.0}, True),  # no validation data: the latest epoch is kept
])
def test_interrupted_fit_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, long_df,
                                                             backbone, settings, mid_epoch):
    if mid_epoch:  # last.ckpt after every batch; else only after each epoch (as here in 600 s)
        monkeypatch.setattr(training, "MID_EPOCH_CHECKPOINT_SECONDS", 0.0)
    settings = dict(TINY, max_epochs=4, patience=10, **settings)
    whole = tsk.Forecaster(backbone, **settings).fit(long_df)
    with pytest.raises(RuntimeError, match="interrupted"):
        tsk.Forecaster(backbone, trainer_kwargs={"callbacks": [_Interrupt(mid_epoch)]},
                       **settings).fit(long_df, checkpoint_dir=tmp_path)
    assert (tmp_path / "last.ckpt").is_file()
    other_data = long_df.assign(y=long_df.y + 1.0)
    with pytest.raises(ValueError, match=r"another model or data \(differs in: data\)"):
        tsk.Forecaster(backbone, **settings).fit(other_data, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"differs in: params"):
        tsk.Forecaster(backbone, **{**settings, "max_epochs": 5}).fit(long_df, checkpoint_dir=tmp_path)
    watch = _Interrupt(mid_epoch, fail=False)
    resumed = tsk.Forecaster(backbone, **{**settings, "enable_progress_bar": True},
                             trainer_kwargs={"callbacks": [watch]}).fit(
        long_df, checkpoint_dir=tmp_path)  # how visibly it runs may change
    # on after the last checkpoint: mid-epoch, from the second epoch's second batch (the
    # checkpoint after it was not written: the failing callback runs first); else the second
    # epoch again from its start (its validation and checkpoint come after the failing hook)
    assert watch.first == (1, 1 if mid_epoch else 0)
    for name, value in whole.net_.state_dict().items():
        assert torch.equal(value, resumed.net_.state_dict()[name]), name
    first, again = whole.fit_summary_, resumed.fit_summary_
    assert (first.epochs, first.start_kept) == (again.epochs, again.start_kept) == (4, first.start_kept)
    assert first.best_val_loss == again.best_val_loss or np.isnan(first.best_val_loss)
    assert again.train_seconds > 0
    left = {p.name for p in tmp_path.iterdir()}
    assert len(left) == 1 and left.pop().endswith(".ckpt")  # the kept epoch's; nothing to resume
    pd.testing.assert_frame_equal(whole.predict(), resumed.predict(), check_exact=True)


class _WorseSecondEpoch(L.Callback):
    """Scrambles the weights as the second epoch starts, so that it does not improve; records
    the epochs this process trains, and fails as the third starts when `interrupt` is set."""

    def __init__(self, interrupt: bool = False) -> None:
        self.interrupt, self.epochs = interrupt, []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.interrupt and trainer.current_epoch == 2:
            raise RuntimeError("interrupted")
        self.epochs.append(trainer.current_epoch)
        if trainer.current_epoch == 1:
            with torch.no_grad():
                for weights in pl_module.parameters():
                    weights.add_(10.0 * torch.randn_like(weights))


def test_a_resumed_fit_goes_on_after_the_last_epoch_even_when_it_did_not_improve(tmp_path, long_df):
    settings = dict(TINY, max_epochs=4, patience=10, backbone_kwargs={"d_state": 4})
    with pytest.raises(RuntimeError, match="interrupted"):
        tsk.Forecaster("spacetime", trainer_kwargs={"callbacks": [_WorseSecondEpoch(interrupt=True)]},
                       **settings).fit(long_df, checkpoint_dir=tmp_path)
    assert [p.name[:8] for p in tmp_path.glob("epoch=*.ckpt")] == ["epoch=0-"]  # still the best
    last = tmp_path / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    # as another version of tsk would have keyed its callbacks' states
    torch.save(dict(saved, callbacks={f"Old{k}": v for k, v in saved["callbacks"].items()}), last)
    with pytest.raises(ValueError, match="cannot be resumed by this version of tsk"):
        tsk.Forecaster("spacetime", **settings).fit(long_df, checkpoint_dir=tmp_path)
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])  # cut short, as a crash mid-write leaves it
    with pytest.raises(ValueError, match="last.ckpt is damaged and cannot be resumed.*Delete it"):
        tsk.Forecaster("spacetime", **settings).fit(long_df, checkpoint_dir=tmp_path)
    torch.save(saved, last)
    resumed = _WorseSecondEpoch()
    tsk.Forecaster("spacetime", trainer_kwargs={"callbacks": [resumed]}, **settings).fit(
        long_df, checkpoint_dir=tmp_path)
    assert resumed.epochs == [2, 3]  # not the second again


def test_a_moved_checkpoint_folder_resumes_with_its_best_epoch(tmp_path, long_df):
    settings = dict(TINY, max_epochs=4, patience=10, backbone_kwargs={"d_state": 4})
    here, there = tmp_path / "here", tmp_path / "there"
    with pytest.raises(RuntimeError, match="interrupted"):
        tsk.Forecaster("spacetime", trainer_kwargs={"callbacks": [_WorseSecondEpoch(interrupt=True)]},
                       **settings).fit(long_df, checkpoint_dir=here)
    state = next(v for k, v in torch.load(here / "last.ckpt", weights_only=False)["callbacks"].items()
                 if "Checkpoint" in k)
    # as when copied from the machine that began the fit, whose pandas held times in another unit
    shutil.copytree(here, there)
    elsewhere = long_df.assign(ds=long_df.ds.astype("datetime64[us]"))
    moved = tsk.Forecaster("spacetime", **settings).fit(elsewhere, checkpoint_dir=there)
    stayed = tsk.Forecaster("spacetime", **settings).fit(long_df, checkpoint_dir=here)
    # the first epoch stays the best one (the second was scrambled) in both, not the third
    assert moved.fit_summary_.best_val_loss == float(state["best_model_score"])
    for name, value in stayed.net_.state_dict().items():
        assert torch.equal(value, moved.net_.state_dict()[name]), name


def test_load_errors(tmp_path, long_df):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        tsk.load(tmp_path)
    from safetensors.torch import load_file, save_file

    from tsk import io

    folder = tsk.Forecaster("lstm", **TINY).fit(long_df).save(tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    save_file(dict(list(weights.items())[1:]), folder / "model.safetensors")  # an older network's
    config = json.loads((folder / "config.json").read_text())
    config["checksums"]["model.safetensors"] = io._sha256(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="saved weights do not fit .* fit the model again"):
        tsk.load(folder)


def test_predict_on_new_history_and_unseen_series(long_df):
    model = tsk.Forecaster("lstm", **TINY).fit(long_df)
    new = make_long(n_series=1, length=30, seed=3).assign(unique_id="new")
    forecast = model.predict(new)
    assert set(forecast.unique_id) == {"new"} and len(forecast) == 4
    with pytest.raises(ValueError, match="shorter than the 16 rows"):
        model.predict(new.iloc[:10])


def test_val_df_is_used_for_early_stopping(wide_df):
    train, val = wide_df.iloc[:60], wide_df.iloc[60 - 16:]
    model = tsk.Forecaster("lstm", channel_independent=False, **TINY).fit(train, val_df=val)
    assert np.isfinite(model.fit_summary_.best_val_loss)
    assert model.contexts_["series"].ds[-1] == train.ds.iloc[-1]


def test_a_large_validation_set_is_thinned_to_every_kth_window_scoring_every_row(
        wide_df, monkeypatch):
    """Past VALIDATION_SAMPLES the fit validates on every k-th window of each series: fewer
    samples, every channel, and still every validation row among some window's targets."""
    from tsk.estimators import forecaster

    model = tsk.Forecaster("lstm", **{**TINY, "horizon": 8})
    full = model._prepare_fit(wide_df).validation
    monkeypatch.setattr(forecaster, "VALIDATION_SAMPLES", len(full) // 3)
    thinned = model._prepare_fit(wide_df).validation
    assert len(thinned) <= len(full) // 3 + thinned.channels  # and each series' last window
    windows = [thinned.window_of(i) for i in range(len(thinned))]
    starts = sorted({start for _, start, _ in windows})
    assert all(0 < b - a <= 8 for a, b in zip(starts, starts[1:], strict=False))
    assert {channel for *_, channel in windows} == set(range(thinned.channels))
    scored = {start + model.lookback_ + h for start in starts for h in range(8)}
    every_row = {start + model.lookback_ + h for _, start, _ in
                 (full.window_of(i) for i in range(len(full))) for h in range(8)}
    assert scored == every_row
    monkeypatch.setattr(forecaster, "VALIDATION_SAMPLES", 1)  # at most the horizon apart
    assert len(model._prepare_fit(wide_df).validation) >= len(full) // 8


def test_gluonts_datasets():
    from gluonts.dataset.common import ListDataset
    from gluonts.dataset.pandas import PandasDataset

    df = make_long(n_series=2, length=60)
    listed = ListDataset([{"start": pd.Period("2024-01-01 00:00", "h"), "target": part.y.to_numpy(),
                           "item_id": uid} for uid, part in df.groupby("unique_id")], freq="h")
    model = tsk.Forecaster("lstm", **TINY).fit(listed)
    forecast = model.predict()
    assert set(forecast.unique_id) == {"s0", "s1"}
    assert forecast.ds.iloc[0] == df.ds.max() + pd.Timedelta("1h")
    pandas_ds = PandasDataset.from_long_dataframe(df.set_index("ds"), target="y", item_id="unique_id")
    model2 = tsk.Forecaster("lstm", **TINY).fit(pandas_ds)
    pd.testing.assert_frame_equal(model2.predict(), forecast)


@pytest.mark.parametrize(("params", "match"), [
    ({"horizon": 0}, "horizon must be a positive integer"),
    ({"lookback": -3}, "lookback must be a positive integer"),
    ({"backbone": "lstmm"}, "Unknown backbone 'lstmm'. Did you mean 'lstm'"),
    ({"backbone": "s4d", "backbone_kwargs": {"d_stat": 4}}, "Did you mean 'd_state'"),
    ({"validation_size": 1.5}, "validation_size must be in"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_bad_params(params, match, long_df):
    with pytest.raises(ValueError, match=match):
        tsk.Forecaster(**{**TINY, **params}).fit(long_df)


def test_series_shorter_than_lookback_plus_horizon():
    df = pd.concat([make_long(n_series=1, length=60), make_long(n_series=1, length=12)
                    .assign(unique_id="short")])
    with pytest.raises(ValueError, match=r"'short' \(12 rows\)"):
        tsk.Forecaster("lstm", **TINY).fit(df)


def test_predict_checks_the_schema(long_df, wide_df):
    model = tsk.Forecaster("lstm", **TINY).fit(long_df)
    with pytest.raises(ValueError, match="missing; the model was fit on"):
        model.predict(wide_df)


def test_early_stopping_restores_the_best_checkpoint(wide_df):
    train, val = wide_df.iloc[:60], wide_df.iloc[60 - 16:]
    params = {**TINY, "max_epochs": 40, "patience": 1, "learning_rate": 0.05}
    model = tsk.Forecaster("lstm", channel_independent=False, **params).fit(train, val_df=val)
    assert model.fit_summary_.epochs < 40  # stopped early
    # the weights in use are the best epoch's: their validation MSE is the best logged val_loss
    assert model.evaluate(val)["mse"] == pytest.approx(model.fit_summary_.best_val_loss, rel=1e-4)


def test_load_reports_version_mismatch(tmp_path, long_df):
    import json

    tsk.Forecaster("lstm", **TINY).fit(long_df).save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["versions"]["torch"] = "1.0.0"
    config_path.write_text(json.dumps(config))
    with pytest.warns(UserWarning, match=r"saved with torch 1\.0\.0 \(now 2\."):
        tsk.load(tmp_path / "m")


def test_variates_as_tokens(wide_df):
    model = tsk.Forecaster("s4d", channel_independent=False, tokens="variates", **TINY).fit(wide_df)
    forecast = model.predict()
    assert list(forecast.columns) == ["ds", "c0", "c1", "c2"] and len(forecast) == 4
    assert type(model.net_).__name__ == "VariateForecastNet"
    with pytest.raises(ValueError, match="set channel_independent=False"):
        tsk.Forecaster("s4d", tokens="variates", **TINY).fit(wide_df)
    with pytest.raises(ValueError, match="Did you mean 'variates'"):
        tsk.Forecaster("s4d", channel_independent=False, tokens="variate", **TINY).fit(wide_df)


def test_ridge_start_is_kept_when_no_epoch_beats_it():
    df = make_long(n_series=2, length=200)
    ridge_only = tsk.Forecaster("s4d", **TINY, trainer_kwargs={"limit_train_batches": 0}).fit(df)
    assert ridge_only.evaluate(df)["mse"] < 0.1  # the closed-form start alone fits a noisy sine
    # a learning rate far too high: every epoch is worse on validation than the start
    wild = tsk.Forecaster("s4d", **{**TINY, "learning_rate": 50.0}).fit(df)
    pd.testing.assert_frame_equal(wild.predict(), ridge_only.predict())
    assert wild.fit_summary_.best_val_loss == pytest.approx(ridge_only.fit_summary_.best_val_loss)
    # the same step from random weights diverges, and says so (nothing to fall back on)
    with pytest.raises(FloatingPointError, match="diverged"):
        tsk.Forecaster("s4d", **{**TINY, "learning_rate": 50.0, "ridge_init": False}).fit(df)


def test_patch_tokens_fit_predict_and_reload(tmp_path, long_df):
    model = tsk.Forecaster("s4d", tokens="patches", patch_len=4, **TINY).fit(long_df)
    assert model.net_.embed.n_tokens == (16 - 4) // 2 + 2
    forecast = model.predict()
    assert len(forecast) == 3 * 4 and forecast.y.notna().all()
    model.save(tmp_path / "model")
    pd.testing.assert_frame_equal(tsk.load(tmp_path / "model").predict(), forecast, check_exact=True)


@pytest.mark.parametrize("backbone", ["s4d", "pgn", "chimera"])
def test_patches_that_do_not_overlap(tmp_path, long_df, backbone):
    """`patch_stride=patch_len`: 16 steps in patches of 4 make 3 + 2 tokens (the last one the
    padded newest steps), and every part is sized for that many: the head reads them all, and
    PGN's history every earlier one. A stride left at the default half patch would make 7."""
    model = tsk.Forecaster(backbone, tokens="patches", patch_len=4, patch_stride=4, **TINY).fit(long_df)
    tokens = (16 - 4) // 4 + 2
    assert model.net_.embed.stride == 4 and model.net_.embed.n_tokens == tokens
    assert model.net_.head.flatten_proj.in_features == tokens * model.net_.backbone.config.d_model
    if backbone == "pgn":
        assert model.net_.backbone.config.history == tokens - 1
    forecast = model.predict()
    model.save(tmp_path / "model")
    pd.testing.assert_frame_equal(tsk.load(tmp_path / "model").predict(), forecast, check_exact=True)


def test_pgn_history_is_sized_to_the_tokens_it_reads(tmp_path, long_df, wide_df):
    """PGN's HIE reads every earlier token, so its history is the token count minus one: the
    patches' 7 tokens, the 16 steps, or the 3 variates; a user's own `history` is kept."""
    patches = tsk.Forecaster("pgn", tokens="patches", patch_len=4, **TINY).fit(long_df)
    assert patches.net_.backbone.config.history == (16 - 4) // 2 + 2 - 1
    steps = tsk.Forecaster("pgn", tokens="time", **TINY).fit(long_df)
    assert steps.net_.backbone.config.history == 16 - 1
    variates = tsk.Forecaster("pgn", channel_independent=False, tokens="variates", **TINY).fit(wide_df)
    assert variates.net_.backbone.config.history == 3 - 1
    own = tsk.Forecaster("pgn", tokens="time", backbone_kwargs={"history": 5}, **TINY).fit(long_df)
    assert own.net_.backbone.config.history == 5
    patches.save(tmp_path / "model")
    pd.testing.assert_frame_equal(
        tsk.load(tmp_path / "model").predict(), patches.predict(), check_exact=True
    )


@pytest.mark.parametrize(("params", "match"), [
    ({"backbone": "spacetime", "tokens": "patches"}, "paper's own network"),
    ({"tokens": "patches", "patch_len": 32}, r"patch_len \(32\) must not exceed the lookback \(16\)"),
    ({"tokens": "patch"}, "Did you mean 'patches'"),
    ({"patch_len": 4, "patch_stride": 5}, r"patch_stride \(5\) must not exceed patch_len \(4\)"),
    ({"patch_stride": 0}, "patch_stride"),
])
def test_bad_patch_params(params, match, long_df):
    with pytest.raises(ValueError, match=match):
        tsk.Forecaster(**{**TINY, **params}).fit(long_df)


def test_default_lookback_follows_the_data():
    """336 steps where the data allows it, else a sixth of what the shortest series leaves."""
    params = {k: v for k, v in TINY.items() if k != "lookback"}
    long = make_long(n_series=1, length=2100)
    model = tsk.Forecaster("s4d", **params).fit(long)
    assert model.lookback_ == 336 and model.tokens_ == "patches"  # long windows: patch tokens
    assert model.net_.embed.n_tokens == (336 - 16) // 8 + 2
    df = pd.concat([long, make_long(n_series=1, length=124).assign(unique_id="short")])
    model = tsk.Forecaster("s4d", **params).fit(df)
    assert model.lookback is None and model.lookback_ == (124 - 4) // 6
    assert model.tokens_ == "time"  # 20 steps hold fewer than four patches of 16
    assert tsk.Forecaster("spacetime")._resolve_tokens(336) == "time"  # its paper's own network
    assert model.net_.head.skip.in_features == 20
    assert len(model.predict()) == 2 * 4
    assert tsk.Forecaster("s4d", **{**params, "lookback": 7}).resolve_lookback(df) == 7


def test_the_default_step_size_is_the_same_from_either_start(long_df):
    assert tsk.Forecaster("s4d", **TINY).fit(long_df).learning_rate_ == 1e-3
    assert tsk.Forecaster("s4d", ridge_init=False, **TINY).fit(long_df).learning_rate_ == 1e-3
    assert tsk.Forecaster("s4d", learning_rate=0.02, **TINY).fit(long_df).learning_rate_ == 0.02


def test_the_default_batch_grows_only_for_long_epochs():
    """`batch_size=None`: the largest of 64, 128, 256 leaving an epoch of 2,000 steps, and its
    step grown by sqrt(batch / 64); a batch or step the user sets stays as set."""
    auto = tsk.Forecaster("s4d")
    for windows, batch in [(1, 64), (128 * 2000 - 1, 64), (128 * 2000, 128),
                           (256 * 2000 - 1, 128), (256 * 2000, 256), (10**8, 256)]:
        assert auto._batch_size(windows) == batch
    assert [auto._learning_rate(batch) for batch in (64, 128, 256)] == pytest.approx(
        [1e-3, 2**0.5 * 1e-3, 2e-3])
    assert tsk.Forecaster("s4d", batch_size=256)._learning_rate(256) == 1e-3
    assert tsk.Forecaster("s4d", batch_size=32)._batch_size(10**8) == 32
    assert tsk.Forecaster("s4d", learning_rate=0.02)._learning_rate(256) == 0.02
    with pytest.raises(ValueError, match="batch_size"):
        tsk.Forecaster("s4d", horizon=4, batch_size=0).fit(make_long())


def test_the_fit_trains_in_the_batch_it_chose(long_df, monkeypatch):
    """The chosen batch is the one the training loader draws, at the step that goes with it."""
    monkeypatch.setattr(tsk.estimators.base, "AUTO_EPOCH_STEPS", 1)  # tiny data, long epochs
    sizes = []

    class Sizes(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            sizes.append(len(batch["targets"]))

    params = {**TINY, "batch_size": None, "max_epochs": 1,
              "trainer_kwargs": {"callbacks": [Sizes()]}}
    model = tsk.Forecaster("s4d", **params).fit(long_df)
    windows = len(model._prepare_fit(long_df).train)
    assert 128 <= windows < 256 and model.batch_size_ == 128 and model.batch_size is None
    assert model.learning_rate_ == pytest.approx(2**0.5 * 1e-3)
    assert sizes == [128, windows - 128]


def test_time_features_are_inputs_that_follow_the_timestamps(tmp_path, long_df):
    """Calendar features join the inputs (TPGN's paper feeds them, so its default is on), are
    saved with the model, and change the forecast when only the timestamps change."""
    assert tsk.Forecaster("tpgn")._resolve_time_features()
    assert not tsk.Forecaster("s4d")._resolve_time_features()
    plain = tsk.Forecaster("lstm", **TINY).fit(long_df)
    assert not plain.time_features_ and plain.n_inputs_ == 1 and plain.time_feature_names_ == []
    model = tsk.Forecaster("lstm", time_features=True, ridge_init=False, **TINY).fit(long_df)
    assert model.time_features_ and model.n_inputs_ == 1 + 4
    assert model.time_feature_names_ == ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    scaler = model.scalers_["s0"]  # the data is standardized, the calendar stays in [-0.5, 0.5]
    assert scaler.mean[0] != 0 and (scaler.mean[1:] == 0).all() and (scaler.scale[1:] == 1).all()
    shifted = long_df.assign(ds=long_df.ds + pd.Timedelta("5h"))
    assert not np.allclose(model.predict(long_df).y, model.predict(shifted).y)
    np.testing.assert_array_equal(plain.predict(long_df).y, plain.predict(shifted).y)
    model.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    assert loaded.time_feature_names_ == model.time_feature_names_
    pd.testing.assert_frame_equal(loaded.predict(shifted), model.predict(shifted), check_exact=True)
    tpgn = tsk.Forecaster("tpgn", **{**TINY, "lookback": 24}).fit(long_df)
    assert tpgn.time_features_ and tpgn.n_inputs_ == 5
    assert tsk.Forecaster("tpgn", time_features=False, **{**TINY, "lookback": 24}).fit(
        long_df).n_inputs_ == 1


def test_time_features_need_one_frequency():
    df = pd.concat([make_long(n_series=1), make_long(n_series=1, freq="D").assign(unique_id="d")])
    with pytest.raises(ValueError, match="one frequency for all series"):
        tsk.Forecaster("lstm", time_features=True, **TINY).fit(df)
    assert tsk.Forecaster("lstm", **TINY).fit(df).n_inputs_ == 1


def test_a_diverged_fit_raises_and_leaves_the_model_unfitted():
    """learning_rate=1e30 from random weights: every validation loss is infinite. The fit says so
    instead of returning a model that forecasts NaN."""
    from sklearn.exceptions import NotFittedError

    df = make_long()
    model = tsk.Forecaster("s4d", **{**TINY, "ridge_init": False, "learning_rate": 1e30})
    with pytest.raises(FloatingPointError, match="The fit diverged.*learning_rate"):
        model.fit(df)
    with pytest.raises(NotFittedError):
        model.predict()
    good = tsk.Forecaster("s4d", **TINY).fit(df)
    with pytest.raises(FloatingPointError, match="diverged"):
        good.set_params(learning_rate=1e30, ridge_init=False).fit(df)
    with pytest.raises(NotFittedError):  # not half refitted
        good.predict()


def test_categorical_ids_with_unused_categories_and_missing_ids():
    """A filtered categorical frame keeps unused categories: they are not 0-row series (which
    forced lookback 1). Rows without an id are refused, not trained as a series named 'nan'."""
    df = make_long(n_series=3, length=80)
    df["unique_id"] = df["unique_id"].astype("category")
    df = df[df.unique_id != df.unique_id.cat.categories[0]]  # the category stays, unused
    model = tsk.Forecaster("s4d", **{**TINY, "lookback": None}).fit(df)
    assert model.lookback_ > 1 and len(model.predict().unique_id.unique()) == 2
    broken = make_long(n_series=2, length=80)
    broken["unique_id"] = broken["unique_id"].astype(object)
    broken.loc[5, "unique_id"] = None
    with pytest.raises(ValueError, match="'unique_id' has 1 missing id"):
        tsk.Forecaster("s4d", **TINY).fit(broken)


def test_exogenous_as_a_string_is_refused_with_the_list_it_meant():
    df = make_long(n_series=2, length=80, exogenous=1)
    with pytest.raises(TypeError, match=r"exogenous must be a list of column names, e.g. \['x0'\]"):
        tsk.Forecaster("s4d", **{**TINY, "exogenous": "x0"}).fit(df)


def test_data_at_another_frequency_is_refused_at_predict():
    df = make_long(n_series=2, length=80)  # hourly
    model = tsk.Forecaster("s4d", **TINY).fit(df)
    daily = make_long(n_series=2, length=80, freq="D")
    with pytest.raises(ValueError, match="steps at 'D'; the model was fit on data at 'h'"):
        model.predict(daily)


def test_frames_with_repeated_columns_epoch_seconds_or_pyarrow_timestamps():
    df = make_long(n_series=2, length=80)
    model = tsk.Forecaster("s4d", **TINY)
    with pytest.raises(ValueError, match=r"Column name\(s\) \['y'\] appear more than once"):
        model.fit(pd.concat([df, df[["y"]]], axis=1))
    seconds = df.assign(ds=df.ds.astype("int64") // 10**9)
    with pytest.raises(TypeError, match=r"unit='s'"):
        model.fit(seconds)
    arrow = df.assign(ds=df.ds.astype("timestamp[ns][pyarrow]"))
    fitted = tsk.Forecaster("s4d", **TINY).fit(arrow)  # accepted as the datetimes they are
    pd.testing.assert_frame_equal(fitted.predict(), tsk.Forecaster("s4d", **TINY).fit(df).predict())


def test_gluonts_entries_that_would_be_merged_guessed_or_cut_are_refused():
    from gluonts.dataset.common import ListDataset

    start = pd.Period("2024-01-01 00:00", "h")
    series = np.sin(np.arange(60) / 4)
    twins = [{"start": start, "target": series, "item_id": "a"},
             {"start": start, "target": series + 1, "item_id": "a"}]
    with pytest.raises(ValueError, match="share item_id 'a'"):
        tsk.Forecaster("s4d", **TINY).fit(twins)
    with pytest.raises(TypeError, match="no frequency: give a pd.Period"):
        tsk.Forecaster("s4d", **TINY).fit([{"start": "2024-01-01", "target": series}])
    with pytest.raises(ValueError, match=r"The data \(list\) is empty: no series"):
        tsk.Forecaster("s4d", **TINY).fit(ListDataset([], freq="h"))
    short = [{"start": start, "target": series, "feat_dynamic_real": [series[:50]]}]
    with pytest.raises(ValueError, match="feat_dynamic_real has 50 steps, its target 60"):
        tsk.Forecaster("s4d", **TINY).fit(short)


def test_a_long_frame_under_other_names_is_not_read_as_wide():
    df = make_long(n_series=2, length=80).rename(columns={"unique_id": "id", "y": "value"})
    with pytest.raises(ValueError, match=r"\['id'\] are not numbers.*'id': 'unique_id', 'value': 'y'"):
        tsk.Forecaster("s4d", **TINY).fit(df)


def test_huge_values_are_refused_and_a_constant_series_says_why_mase_is_nan():
    df = make_long(n_series=2, length=80)
    with pytest.raises(ValueError, match=r"Values reach 1.*e\+30.*Rescale"):
        tsk.Forecaster("s4d", **TINY).fit(df.assign(y=df.y * 1e300))
    flat = make_long(n_series=1, length=80).assign(y=3.0)
    model = tsk.Forecaster("s4d", **TINY).fit(make_long(n_series=1, length=80))
    with pytest.warns(UserWarning, match="MASE is undefined"):
        scores = model.evaluate(flat)
    assert np.isnan(scores["mase"]) and np.isfinite(scores["mse"])


def test_a_fit_whose_validation_loss_is_absurd_but_finite_is_refused(monkeypatch):
    """A paper's network at a huge step can end with finite garbage (SpaceTime: validation loss
    3.5e10 at learning_rate 1e30): above the ceiling a forecaster counts it as diverged."""
    model = tsk.Forecaster("s4d", **{**TINY, "ridge_init": False})
    monkeypatch.setattr(tsk.Forecaster, "_loss_ceiling", 1e-12)  # any real loss is "absurd"
    with pytest.raises(FloatingPointError, match="non-finite or absurd"):
        model.fit(make_long())


def test_a_grid_backbone_forecasts_the_channels_jointly(wide_df, tmp_path):
    """Chimera's variates are the channels: unset, channel_independent means joint for it."""
    model = tsk.Forecaster("chimera", **TINY, backbone_kwargs={"d_state": 2}).fit(wide_df)
    assert model.n_inputs_ == 3 and model.n_outputs_ == 3
    forecast = model.predict()
    assert list(forecast.columns) == ["ds", "c0", "c1", "c2"] and len(forecast) == 4
    assert np.isfinite(forecast[["c0", "c1", "c2"]].to_numpy()).all()
    assert set(model.evaluate(wide_df)) >= {"mse", "mae"}
    model.save(tmp_path / "model")
    pd.testing.assert_frame_equal(tsk.load(tmp_path / "model").predict(), forecast,
                                  check_exact=True)
    with pytest.raises(ValueError, match="models the channels jointly"):
        tsk.Forecaster("chimera", channel_independent=True, **TINY).fit(wide_df)
    with pytest.raises(ValueError, match="already reads the variates"):
        tsk.Forecaster("chimera", tokens="variates", **TINY).fit(wide_df)


def test_every_fit_reports_its_baselines_and_evaluate_scores_them(tmp_path):
    """`fit_summary_.baselines` holds the validation loss of the linear start and of the
    seasonal-naive forecast (a day back for hourly data); `evaluate(baselines=True)` scores both
    on the user's windows beside the model, with the model's skill over each."""
    df = make_long(n_series=2, length=200)
    kept = tsk.Forecaster("s4d", **{**TINY, "learning_rate": 50.0}).fit(df)  # the start is kept
    assert kept.fit_summary_.start_kept and kept.season_length_ == 24
    baselines = kept.fit_summary_.baselines
    assert set(baselines) == {"linear_start", "seasonal_naive"}
    assert baselines["linear_start"] == pytest.approx(kept.fit_summary_.best_val_loss, rel=1e-5)
    scores = kept.evaluate(df, baselines=True)
    assert scores["linear_start_mse"] == pytest.approx(scores["mse"], rel=1e-5)
    assert scores["skill_linear_start"] == pytest.approx(0.0, abs=1e-5)
    # the seasonal naive by hand: each series' value one season (24 h) before each target
    lookback, horizon = kept.lookback_, kept.horizon
    errors = []
    for _, series in df.groupby("unique_id"):
        y = series["y"].to_numpy()
        mean, std = y[:160].mean(), y[:160].std()  # the scaler of the training rows (80%)
        z = (y - mean) / std
        for start in range(len(y) - lookback - horizon + 1):
            steps = start + lookback + np.arange(horizon)
            window_start = start + lookback - 24
            repeat = window_start + np.arange(horizon) % 24 if lookback >= 24 else \
                np.full(horizon, start + lookback - 1)
            errors.append((z[steps] - z[repeat]) ** 2)
    assert scores["seasonal_naive_mse"] == pytest.approx(np.mean(errors), rel=1e-5)
    assert scores["skill_seasonal_naive"] == pytest.approx(
        1 - scores["mse"] / scores["seasonal_naive_mse"])
    kept.save(tmp_path / "model")
    again = tsk.load(tmp_path / "model").evaluate(df, baselines=True)
    assert again == pytest.approx(scores)
    # season_length overrides the frequency's; from random weights the linear start is solved too
    random = tsk.Forecaster("s4d", **TINY, ridge_init=False, season_length=12).fit(df)
    assert random.season_length_ == 12 and set(random.fit_summary_.baselines) == set(baselines)
    assert random.evaluate(df, baselines=True)["linear_start_mse"] == pytest.approx(
        scores["linear_start_mse"], rel=1e-4)
