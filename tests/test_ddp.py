"""Distributed fit on CPU (gloo): same API, and the model predicts like a single-process one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import tsk
from tests.conftest import REPO, TINY, make_long

SCRIPT = """
import sys
import tsk
from tests.conftest import TINY, make_long

out = sys.argv[1]
model = tsk.Forecaster("s4d", accelerator="cpu", trainer_kwargs={{"strategy": "ddp", "devices": 2}},
                       verbose=True, **{{**TINY, "max_epochs": {epochs}, "learning_rate": 0.01}})
model.fit(make_long(length=120))
if model.fit_summary_.global_rank == 0:
    model.save(out)
    model.predict().to_csv(out + "/forecast.csv", index=False)
"""


@pytest.mark.slow
def test_ddp_fit_on_two_cpu_processes(tmp_path):
    epochs = 12
    script = tmp_path / "fit_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT.format(epochs=epochs)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "model")], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout

    distributed = tsk.load(tmp_path / "model")
    saved = pd.read_csv(tmp_path / "model" / "forecast.csv", parse_dates=["ds"])
    forecast = distributed.predict()
    np.testing.assert_allclose(forecast.y.to_numpy(), saved.y.to_numpy(), atol=1e-6)  # via CSV text

    # the same steps as DDP's two processes of TINY's batch size each
    params = {**TINY, "max_epochs": epochs, "learning_rate": 0.01, "batch_size": 2 * TINY["batch_size"]}
    single = tsk.Forecaster("s4d", **params).fit(make_long(length=120))
    expected = single.predict()
    pd.testing.assert_frame_equal(forecast[["unique_id", "ds"]], expected[["unique_id", "ds"]])
    # both learned the series about equally well (not bit-equal: DDP averages 2 batches a step)
    data = make_long(length=120)
    mse_distributed, mse_single = distributed.evaluate(data)["mse"], single.evaluate(data)["mse"]
    print(f"MSE distributed {mse_distributed:.4f}, single process {mse_single:.4f}")
    assert mse_distributed < 0.2 and mse_single < 0.2
    assert abs(mse_distributed - mse_single) < 0.5 * max(mse_distributed, mse_single)
