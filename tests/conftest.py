"""Shared fixtures: the data root (../shared/data unless TSK_DATA_DIR says otherwise) and small
synthetic frames that train in a second."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# absolute, so that subprocesses and notebooks running in other folders find the data too
os.environ["TSK_DATA_DIR"] = str(Path(os.environ.get("TSK_DATA_DIR", REPO.parent / "shared" / "data"))
                                 .resolve())
# Without a GPU, Triton kernels run in its interpreter; the variable must be set before any
# `@triton.jit` function is defined, i.e. before the first tsk import (this file loads first).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

TINY = dict(horizon=4, lookback=16, d_model=8, n_layers=1, max_epochs=2, batch_size=32,
            enable_progress_bar=False, random_state=0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = Path(os.environ["TSK_DATA_DIR"])
    if not (root / "forecasting" / "ETT-small").is_dir():
        pytest.skip(f"benchmark data not found under {root} (set TSK_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data root holding the MNIST test digits (skips without them)."""
    from tsk.datasets.mnist import MNIST_DIR

    root = Path(os.environ["TSK_DATA_DIR"])
    if not (root / MNIST_DIR).is_dir():
        pytest.skip(f"MNIST digits not found under {root / MNIST_DIR} (set TSK_DATA_DIR)")
    return root


def make_long(n_series: int = 3, length: int = 80, freq: str = "h", seed: int = 0,
              exogenous: int = 0) -> pd.DataFrame:
    """Noisy sines of different phase and level, one per `unique_id`."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        t = np.arange(length)
        y = 10 * i + np.sin(2 * np.pi * t / 12 + i) + 0.1 * rng.standard_normal(length)
        frame = pd.DataFrame({"unique_id": f"s{i}", "ds": pd.date_range("2024-01-01", periods=length,
                                                                          freq=freq), "y": y})
        for j in range(exogenous):
            frame[f"x{j}"] = np.cos(2 * np.pi * t / 24 + j)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def make_wide(length: int = 80, channels: int = 3, freq: str = "15min", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    data = {"ds": pd.date_range("2024-01-01", periods=length, freq=freq)}
    for c in range(channels):
        data[f"c{c}"] = np.sin(2 * np.pi * t / 16 + c) * (c + 1) + 0.1 * rng.standard_normal(length)
    return pd.DataFrame(data)


@pytest.fixture
def long_df() -> pd.DataFrame:
    return make_long()


@pytest.fixture
def wide_df() -> pd.DataFrame:
    return make_wide()


def require_tested_triton() -> None:
    """Skip unless a Triton the fused kernels are tested with is installed (torch 2.4's Triton
    3.0 interpreter rejects them; tsk then runs the torch path, which the other tests cover)."""
    pytest.importorskip("triton")
    from tsk.kernels.common.dispatch import TRITON_TESTED, triton_available, triton_version

    if not triton_available():
        found = ".".join(map(str, triton_version() or ()))
        pytest.skip(f"triton {found} is older than the tested {TRITON_TESTED[0]}.{TRITON_TESTED[1]}")


@pytest.fixture
def triton_device() -> torch.device:
    """Device for Triton tests: CUDA when present, else CPU under TRITON_INTERPRET=1."""
    require_tested_triton()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("no CUDA and TRITON_INTERPRET is not 1: Triton kernels cannot run here")
    return torch.device("cpu")
