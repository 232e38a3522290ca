"""Saved model folders: written whole or not at all, and a damaged or changed file is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tsk
from tsk import io


def save(path, value: float = 1.0):
    return io.write_folder(path, {"estimator": "X", "params": {}}, {"w": torch.full((3,), value)},
                           {"mean": np.zeros(2, np.float32)})


def test_a_round_trip_records_and_checks_checksums(tmp_path):
    save(tmp_path / "m")
    config, weights, arrays = io.read_folder(tmp_path / "m")
    assert set(config["checksums"]) == {"model.safetensors", "preprocessing.safetensors"}
    assert weights["w"].tolist() == [1.0, 1.0, 1.0] and arrays["mean"].shape == (2,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left


def test_a_save_that_fails_leaves_the_old_model_whole(tmp_path, monkeypatch):
    save(tmp_path / "m", 1.0)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_arrays", broken)  # fails after the weights were written
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "m", 2.0)
    _, weights, _ = io.read_folder(tmp_path / "m")
    assert weights["w"].tolist() == [1.0, 1.0, 1.0]  # the old weights, with the old config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_saving_over_a_model_replaces_it(tmp_path):
    save(tmp_path / "m", 1.0)
    save(tmp_path / "m", 2.0)
    assert io.read_folder(tmp_path / "m")[1]["w"].tolist() == [2.0, 2.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_flipped_bytes_in_the_weights_are_named(tmp_path):
    save(tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the tensor data: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors does not match the checksum"):
        io.read_folder(tmp_path / "m")


def test_cut_files_are_named(tmp_path):
    save(tmp_path / "a")
    config = tmp_path / "a" / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        io.read_folder(tmp_path / "a")
    save(tmp_path / "b")
    weights = tmp_path / "b" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    settings = json.loads((tmp_path / "b" / "config.json").read_text())
    del settings["checksums"]  # a folder from before checksums: safetensors' own check names it
    (tmp_path / "b" / "config.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        io.read_folder(tmp_path / "b")


def test_an_estimator_saved_over_itself_loads_the_new_fit(tmp_path):
    from tests.estimators.test_classifier import waves

    X, y = waves(12)
    first = tsk.Classifier("s4d", d_model=8, n_layers=1, max_epochs=1, enable_progress_bar=False,
                           random_state=0).fit(X, y)
    first.save(tmp_path / "clf")
    second = tsk.Classifier("lstm", d_model=8, n_layers=1, max_epochs=1,
                            enable_progress_bar=False, random_state=0).fit(X, y)
    second.save(tmp_path / "clf")
    loaded = tsk.load(tmp_path / "clf")
    assert loaded.backbone == "lstm"
    np.testing.assert_array_equal(loaded.predict_proba(X), second.predict_proba(X))
