"""`tsk.tune`: search spaces, time splits, pruning, failures, persistent and shared studies
(SQLite and a real PostgreSQL server, two worker processes each), scikit-learn search, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

import tsk
from tests.conftest import TINY, make_long, make_wide
from tests.tuning_fixtures import postgres_url, spawn_workers  # noqa: F401  (postgres_url: a fixture)
from tsk import backbones
from tsk.cli import main
from tsk.datasets import ForecastSplit
from tsk.tuning import default_space, space_from_json, time_folds

optuna.logging.set_verbosity(optuna.logging.WARNING)
QUICK = {**TINY, "max_epochs": 1}


class PruneTrials(optuna.pruners.BasePruner):
    """Prunes the listed trial numbers at their first report: pruning wiring, deterministically."""

    def __init__(self, numbers: set[int]) -> None:
        self.numbers = numbers

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number in self.numbers


def states(result: tsk.TuningResult) -> list[str]:
    return [t.state.name for t in result.study_.trials]


# ---- spaces and splits (no training) ------------------------------------------------------
@pytest.mark.parametrize("name", backbones.available())
def test_declared_default_spaces_are_valid(name):
    space = backbones.get_spec(name).search_space  # {} for a backbone that declares none yet
    assert isinstance(space, dict)
    assert all(isinstance(d, BaseDistribution | dict) for d in space.values())
    config_fields = set(backbones.get_spec(name).config_fields)
    estimator_params = set(tsk.Forecaster(name).get_params())
    assert set(space) <= config_fields | estimator_params  # every name lands somewhere


@pytest.mark.parametrize("name", ["lstm", "s4d"])
def test_lstm_and_s4d_declare_their_spaces(name):
    space = default_space(name)
    assert {"d_model", "n_layers", "dropout", "lookback", "learning_rate"} <= set(space)
    space["d_model"] = IntDistribution(1, 2)
    assert default_space(name)["d_model"] != space["d_model"]  # a fresh copy each time


def test_unknown_names_fail_before_any_trial():
    model = tsk.Forecaster("s4d", **TINY)
    with pytest.raises(ValueError, match="Did you mean 'd_state'"):
        tsk.tune(model, make_long(), space={"d_sate": IntDistribution(2, 8)}, n_trials=1)
    with pytest.raises(ValueError, match="Unknown metric .smap."):
        tsk.tune(model, make_long(), metric="smap", n_trials=1)
    with pytest.raises(TypeError, match="optuna distribution"):
        tsk.tune(model, make_long(), space={"d_model": [8, 16]}, n_trials=1)
    with pytest.raises(ValueError, match="pair"):
        tsk.tune(model, (make_long(),) * 2, space={"lookback": CategoricalDistribution([8, 16])})


def test_space_from_json_overrides_the_default():
    entries = {"d_model": {"name": "IntDistribution", "attributes": {"low": 4, "high": 8}},
               "lookback": None,
               "dropout": {"distribution": {"name": "FloatDistribution",
                                            "attributes": {"low": 0.0, "high": 0.5}},
                           "when": {"n_layers": [2]}}}
    space = space_from_json(entries, default_space("lstm"))
    assert space["d_model"] == IntDistribution(4, 8) and "lookback" not in space
    assert space["dropout"]["when"] == {"n_layers": [2]} and "learning_rate" in space


def test_time_folds_follow_fit_split_and_roll():
    df = make_long(n_series=2, length=80)
    model = tsk.Forecaster("lstm", **TINY)  # horizon 4, lookback 16, validation 20% = 16 rows
    [(train, val)] = time_folds(df, model, 1)
    assert (train.groupby("unique_id").size() == 64).all()
    assert (val.groupby("unique_id").size() == 16 + 16).all()  # lookback context + 16 rows
    first_val = val.groupby("unique_id").ds.nth(16).reset_index(drop=True)
    after_train = train.groupby("unique_id").ds.max().reset_index(drop=True) + pd.Timedelta("1h")
    assert (first_val == after_train).all()  # validation starts right after training
    folds = time_folds(df, model, 3)
    assert [len(t) // 2 for t, _ in folds] == [32, 48, 64]
    assert all(len(v) // 2 == 32 for _, v in folds)
    assert folds[-1][0].equals(train) and folds[-1][1].equals(val)  # last fold = fit's split
    with pytest.raises(ValueError, match="fold 1 of 5"):
        time_folds(df, model, 5)
    wide = make_wide(length=80)
    [(train, val)] = time_folds(wide, model, 1)
    assert len(train) == 64 and len(val) == 32 and val.ds.iloc[16] == wide.ds.iloc[64]


# ---- tuning --------------------------------------------------------------------------------
@pytest.mark.slow
def test_tune_in_memory_with_a_conditional_space():
    df = make_long(n_series=2, length=60)
    space = {
        "d_model": IntDistribution(4, 8),
        "n_layers": IntDistribution(1, 2),
        "dropout": {"distribution": FloatDistribution(0.0, 0.3), "when": {"n_layers": 2}},
        "learning_rate": FloatDistribution(1e-3, 1e-2, log=True),
    }
    result = tsk.tune(tsk.Forecaster("lstm", **TINY), df, space=space, n_trials=2, random_state=0,
                      enqueue=[{"n_layers": 1}, {"n_layers": 2}])
    assert states(result) == ["COMPLETE"] * 2
    for trial in result.study_.trials:
        assert ("dropout" in trial.params) == (trial.params["n_layers"] == 2)
        assert 4 <= trial.params["d_model"] <= 8 and 1e-3 <= trial.params["learning_rate"] <= 1e-2
    assert result.best_score_ == min(t.value for t in result.study_.trials)
    best = result.best_estimator_
    assert best.net_.backbone.config.d_model == result.best_params_["d_model"]
    assert best.learning_rate == result.best_params_["learning_rate"]
    assert best.validation_size == 0 and best.max_epochs == result.study_.best_trial.user_attrs["best_epoch"]
    assert best.contexts_["s0"].ds[-1] == df.ds.max()  # refit on train + validation
    assert len(best.predict()) == 2 * 4
    assert list(result.top_trials(2).columns[:2]) == ["number", "mse"]


@pytest.mark.slow
def test_pruned_and_failed_trials_are_recorded_and_the_study_goes_on():
    model = tsk.Forecaster("lstm", **{**TINY, "max_epochs": 3})
    space = {"learning_rate": CategoricalDistribution([1e30, 1e-2, 3e-3])}
    result = tsk.tune(model, make_long(n_series=2, length=60), space=space, n_trials=3,
                      pruner=PruneTrials({2}), refit=False,
                      enqueue=[{"learning_rate": 1e30}, {"learning_rate": 1e-2}, {"learning_rate": 3e-3}])
    diverged, complete, pruned = result.study_.trials
    assert diverged.state == TrialState.FAIL and "diverged" in diverged.user_attrs["error"]
    assert complete.state == TrialState.COMPLETE and len(complete.intermediate_values) == 3
    assert pruned.state == TrialState.PRUNED and list(pruned.intermediate_values) == [0]
    assert result.count(TrialState.PRUNED) == 1 and result.count(TrialState.FAIL) == 1
    assert result.best_params_ == {"learning_rate": 1e-2}


def test_a_study_where_every_trial_fails_says_why():
    model = tsk.Forecaster("s4d", **QUICK)
    with pytest.raises(RuntimeError, match="d_state must be even"):
        tsk.tune(model, make_long(n_series=1, length=60), space={"d_state": CategoricalDistribution([3])},
                 n_trials=1)


@pytest.mark.slow
def test_rolling_origin_folds_average_their_scores():
    result = tsk.tune(tsk.Forecaster("lstm", **QUICK), make_long(n_series=2, length=80),
                      space={"d_model": IntDistribution(4, 8)}, n_trials=1, n_folds=2, refit=False)
    trial = result.study_.best_trial
    assert len(trial.user_attrs["fold_scores"]) == 2
    assert trial.value == pytest.approx(np.mean(trial.user_attrs["fold_scores"]))
    assert set(trial.intermediate_values) == {0, 1}  # fold k reports at step k * max_epochs + epoch


@pytest.mark.slow
def test_forecast_split_tunes_lookback_and_plots(tmp_path):
    frame = make_wide(length=200, channels=2)
    split = ForecastSplit("toy", frame, train_end=120, val_end=160, test_end=200)
    space = {"lookback": CategoricalDistribution([8, 16]), "d_model": IntDistribution(4, 8)}
    result = tsk.tune(tsk.Forecaster("s4d", **QUICK), split, space=space, n_trials=3, random_state=1,
                      enqueue=[{"lookback": 8}, {"lookback": 16}])
    assert {t.params["lookback"] for t in result.study_.trials} == {8, 16}
    best = result.best_estimator_
    assert best.lookback == result.best_params_["lookback"]
    assert best.contexts_["series"].ds[-1] == frame.ds.iloc[159]  # refit on rows [0, val_end)
    assert math.isfinite(best.evaluate(split.test(best.lookback))["mse"])
    result.plot_history(tmp_path / "history.png")
    result.plot_importances(tmp_path / "importances.png")
    assert (tmp_path / "history.png").stat().st_size > 1000
    assert (tmp_path / "importances.png").stat().st_size > 1000


# ---- persistent and shared studies ----------------------------------------------------------
@pytest.fixture(scope="module")
def shared_studies(request, tmp_path_factory) -> dict:
    """Two worker processes, started together, each run 2 trials on one study in SQLite and (when
    a server can be started) in PostgreSQL: one pair of processes serves both tests."""
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('tuning') / 'tuning.db'}"}
    try:
        urls["postgres"] = request.getfixturevalue("postgres_url")
    except pytest.skip.Exception as skip:
        urls["postgres_skip"] = str(skip)
    stores = [url for kind, url in urls.items() if kind != "postgres_skip"]
    for url in stores:
        optuna.create_study(storage=url, study_name="shared")
    return {"urls": urls, "reports": spawn_workers(stores, "shared", [2, 2])}


def _check_shared(url: str, reports: list[dict], expected: int) -> None:
    loaded = optuna.load_study(study_name="shared", storage=url)
    numbers = [t.number for t in loaded.trials]
    assert sorted(numbers) == list(range(expected))  # none lost, none duplicated
    assert all(t.state == TrialState.COMPLETE for t in loaded.trials)
    ran = [n for report in reports for n in report["trials"][url]]
    assert sorted(ran) == list(range(expected)) and [len(r["trials"][url]) for r in reports] == [2, 2]
    assert len({report["pid"] for report in reports}) == len(reports)
    for report in reports:  # each worker's trials are recorded with its own pid
        mine = {t.number for t in loaded.trials if t.user_attrs["pid"] == report["pid"]}
        assert mine == set(report["trials"][url])


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study_which_then_resumes(shared_studies):
    url = shared_studies["urls"]["sqlite"]
    _check_shared(url, shared_studies["reports"], expected=4)
    resumed = tsk.tune(tsk.Forecaster("lstm", **QUICK), make_long(n_series=2, length=60),
                       space={"d_model": IntDistribution(4, 8)}, n_trials=1, storage=url,
                       study_name="shared", refit=False)
    assert [t.number for t in resumed.study_.trials] == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(shared_studies):
    if "postgres" not in shared_studies["urls"]:
        pytest.skip(shared_studies["urls"]["postgres_skip"])
    _check_shared(shared_studies["urls"]["postgres"], shared_studies["reports"], expected=4)


# ---- scikit-learn and the command line ------------------------------------------------------
@pytest.mark.slow
def test_grid_search_cv_with_time_series_split():
    """TimeSeriesSplit hands the Forecaster growing prefixes of a wide frame and scores the next
    block with `score` (-MSE); each test block needs at least lookback + horizon rows."""
    df = make_wide(length=120, channels=2)
    search = GridSearchCV(tsk.Forecaster("lstm", **QUICK), {"d_model": [4, 8]},
                          cv=TimeSeriesSplit(n_splits=2, test_size=30), error_score="raise")
    search.fit(df)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(np.isfinite(scores)) and np.all(scores < 0)
    assert search.best_params_["d_model"] in (4, 8)
    assert search.best_estimator_.contexts_["series"].ds[-1] == df.ds.iloc[-1]  # refit on all
    assert len(search.best_estimator_.predict()) == 4


@pytest.mark.slow
def test_cli_tune_resumes_prints_a_table_and_saves(tmp_path, capsys):
    data = tmp_path / "sales.csv"
    make_long(n_series=2, length=60).to_csv(data, index=False)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"d_model": {"name": "IntDistribution", "attributes": {"low": 4, "high": 8}},
                                 "n_layers": None, "dropout": None, "lookback": None}))
    args = ["tune", "--data", str(data), "--backbone", "lstm", "--horizon", "4", "--lookback", "16",
            "--max-epochs", "1", "--batch-size", "32", "--no-progress", "--space", str(space),
            "--storage", f"sqlite:///{tmp_path / 'tune.db'}", "--study", "cli"]
    assert main([*args, "--trials", "1", "--sampler-seed", "0"]) == 0
    assert main([*args, "--trials", "1", "--out", str(tmp_path / "best"), "--plots",
                 str(tmp_path / "plots")]) == 0  # resumes the study
    out = capsys.readouterr().out
    assert "Study 'cli' on sales.csv: 2 trials 2 complete" in out
    table = out.split("2 complete\n")[1].splitlines()
    assert table[0].split() == ["number", "mse", "d_model", "learning_rate"] and len(table) >= 3
    model = tsk.load(tmp_path / "best")
    assert 4 <= model.d_model <= 8 and len(model.predict()) == 8
    assert (tmp_path / "plots" / "history.png").is_file()
    assert main(["tune", "--data", str(data), "--backbone", "lstm", "--trials", "1",
                 "--space", str(tmp_path / "missing.json")]) == 1


# ---- supervised estimators: tune(classifier, X, y) ------------------------------------------
def test_tune_a_classifier_on_stratified_folds_and_refit():
    from tests.estimators.test_classifier import waves

    X, y = waves(30)
    y = np.where(y == 0, "slow", "fast")
    clf = tsk.Classifier("s4d", d_model=8, n_layers=1, max_epochs=3, learning_rate=1e-2,
                         enable_progress_bar=False, random_state=0)
    result = tsk.tune(clf, X, y, space={"pooling": CategoricalDistribution(["mean", "last"])},
                      n_trials=2, n_folds=3, random_state=0)
    assert result.study_.direction.name == "MAXIMIZE"  # accuracy, the default metric, goes up
    assert result.metric == "accuracy" and 0 <= result.best_score_ <= 1
    best = result.study_.best_trial
    assert len(best.user_attrs["fold_scores"]) == 3
    assert result.best_estimator_.pooling == best.params["pooling"]
    assert result.best_estimator_.validation_size == 0.0  # refit on every series
    assert set(result.best_estimator_.predict(X)) <= {"slow", "fast"}
    loss = tsk.tune(clf, X, y, space={"d_model": IntDistribution(4, 8)}, metric="log_loss",
                    n_trials=1, refit=False)
    assert loss.study_.direction.name == "MINIMIZE" and loss.best_estimator_ is None


def test_tune_a_speech_classifier_passes_the_rate_to_every_fit():
    from tests.speech_fixtures import RATE, tones

    clips, labels = tones(18)
    clf = tsk.SpeechClassifier("s4d", frontend="mfcc", d_model=8, n_layers=1, max_epochs=2,
                               enable_progress_bar=False, random_state=0)
    result = tsk.tune(clf, clips, labels, space={"n_mfcc": CategoricalDistribution([10, 13])},
                      n_trials=2, n_folds=2, random_state=0, fit_params={"sample_rate": RATE})
    assert len(result.study_.best_trial.user_attrs["fold_scores"]) == 2
    assert result.best_estimator_.sample_rate_ == RATE
    assert result.best_estimator_.n_mfcc == result.best_params_["n_mfcc"]
    with pytest.raises(RuntimeError, match="sample_rate is required"):
        tsk.tune(clf, clips, labels, space={"n_mfcc": CategoricalDistribution([10])}, n_trials=1)


def test_tune_checks_what_a_classifier_needs():
    from tests.estimators.test_classifier import waves

    X, y = waves(12)
    clf = tsk.Classifier("s4d", max_epochs=1, enable_progress_bar=False)
    with pytest.raises(TypeError, match="takes X and y"):
        tsk.tune(clf, X, n_trials=1)
    with pytest.raises(TypeError, match="one data argument, no y"):
        tsk.tune(tsk.Forecaster("s4d", **TINY), make_long(), y, n_trials=1)
    with pytest.raises(ValueError, match="Unknown metric 'mse'"):
        tsk.tune(clf, X, y, metric="mse", n_trials=1)
    with pytest.raises(ValueError, match="too few for 7 stratified folds"):
        tsk.tune(clf, X, y, n_folds=7, n_trials=1)
    # the s4d default space names forecasting's `lookback`, which a classifier does not have
    assert "lookback" in default_space("s4d")
    space = tsk.tuning.search._tunable(clf)
    assert "lookback" not in space and "pooling" in space and "d_state" in space


@pytest.mark.parametrize(("storage", "message"), [
    ("tuning.db", "is not a database URL: for a file, say 'sqlite:///tuning.db'"),
    ("sqlite:////no/such/folder/t.db", "the folder /no/such/folder does not exist"),
    ("nosuchdb://x", "could not be opened"),
])
def test_storage_that_is_not_a_usable_url_says_how_to_write_one(storage, message):
    from tsk.tuning.search import _make_storage

    with pytest.raises(ValueError, match=message):
        _make_storage(storage)
