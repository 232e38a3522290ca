"""A batch script that loads a saved model and predicts imports only what inference needs: never
Lightning or Optuna (seconds of start-up), which only a fit or a search loads. An exported
forecaster (`tsk.exported`) also runs without tsk's estimators and scikit-learn.
`benchmarks/cold_start.py` times both."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tsk
from tests.conftest import TINY, make_long

TRAINING_ONLY = ("lightning", "pytorch_lightning", "lightning_fabric", "optuna")

PREDICT = """
import json, sys
import pandas as pd
{load}
model.predict(pd.read_csv(sys.argv[2], parse_dates=["ds"]))
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}}
                        | {{name for name in sys.modules if name.startswith("tsk.")}})))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small default-backbone forecaster, saved and exported, and a history file to predict."""
    folder = tmp_path_factory.mktemp("cold")
    history = make_long(length=60)
    model = tsk.Forecaster(**{**TINY, "max_epochs": 1}).fit(history)
    model.save(folder / "model")
    model.export(folder / "exported")
    history.to_csv(folder / "history.csv", index=False)
    return folder


def _modules_after(load: str, folder, target: str) -> set[str]:
    """The top-level modules (and tsk's submodules) a fresh process has imported after `load`
    and one predict of the history file."""
    result = subprocess.run([sys.executable, "-c", PREDICT.format(load=load),
                             str(folder / target), str(folder / "history.csv")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_load_and_predict_never_import_lightning_or_optuna(saved):
    modules = _modules_after("import tsk\nmodel = tsk.load(sys.argv[1])", saved, "model")
    assert "tsk.estimators.forecaster" in modules  # it did load the model
    assert not modules & set(TRAINING_ONLY), sorted(modules & set(TRAINING_ONLY))
    assert "tsk.training" not in modules
    assert "matplotlib" not in modules  # plots import it when they draw (tsk.plotting)


def test_an_exported_forecaster_needs_no_estimator_scikit_learn_or_lightning(saved):
    modules = _modules_after("import tsk.exported\nmodel = tsk.exported.load(sys.argv[1])", saved,
                             "exported")
    unwanted = {*TRAINING_ONLY, "sklearn", "tsk.estimators", "tsk.training", "tsk.heads",
                "tsk.backbones"}
    assert not modules & unwanted, sorted(modules & unwanted)
