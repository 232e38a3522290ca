"""`PointCloudClassifier`: it learns shapes from clouds of different sizes with each network, keeps
the classifier contract (proba, score, save/load, tuning, the command line), and bad point sets
get clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsk
from tsk.cli import main

FAST = dict(d_model=16, grid_size=16, stages=2, group_size=16, max_epochs=12, batch_size=16,
            learning_rate=3e-3, enable_progress_bar=False, random_state=0)


def shapes(n: int = 60, seed: int = 0, dims: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Clouds of 20-60 points (sizes differ) on a ring, filling a square, or on a cross, each
    randomly rotated, scaled and moved: only the shape tells the class."""
    rng = np.random.default_rng(seed)
    names = np.array(["ring", "square", "cross"])
    labels = names[np.arange(n) % 3]
    clouds = []
    for label in labels:
        size = int(rng.integers(20, 61))
        if label == "ring":
            angle = rng.uniform(0, 2 * np.pi, size)
            points = np.stack([np.cos(angle), np.sin(angle)], 1)
        elif label == "square":
            points = rng.uniform(-1, 1, (size, 2))
        else:
            along = rng.uniform(-1, 1, size)
            arm = rng.integers(0, 2, size)
            points = np.stack([np.where(arm, along, 0), np.where(arm, 0, along)], 1)
        turn = rng.uniform(0, 2 * np.pi)
        rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        points = points @ rotation.T * rng.uniform(0.5, 3) + rng.normal(0, 5, 2)
        if dims == 3:
            points = np.concatenate([points, rng.normal(0, 0.05, (size, 1))], 1)
        clouds.append((points + rng.normal(0, 0.02, points.shape)).astype(np.float32))
    return clouds, labels


@pytest.mark.parametrize(("network", "backbone"), [("lion", "s4d"), ("lion", "lstm"),
                                                   ("pointnet", "s4d")])
def test_learns_shapes_from_clouds_of_different_sizes(network, backbone):
    X, y = shapes(90)
    clf = tsk.PointCloudClassifier(backbone, network=network, **FAST)
    assert clf.fit(X, y) is clf
    X_test, y_test = shapes(60, seed=1)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert clf.classes_.tolist() == ["cross", "ring", "square"]
    assert clf.score(X_test, y_test) >= 0.8
    scores = clf.evaluate(X_test, y_test)
    assert scores["accuracy"] == pytest.approx(clf.score(X_test, y_test))


@pytest.fixture(scope="module")
def fitted():
    X, y = shapes(30)
    return tsk.PointCloudClassifier("s4d", **{**FAST, "max_epochs": 1}).fit(X, y)


def test_points_with_features_in_3d_and_every_order(fitted):
    X, y = shapes(24, dims=3)
    X = [np.concatenate([cloud, np.ones((len(cloud), 1), np.float32)], 1) for cloud in X]
    for order in ("hilbert", "z"):
        clf = tsk.PointCloudClassifier("s4d", order=order, **{**FAST, "max_epochs": 1}).fit(X, y)
        assert clf.coords_ == 3 and clf.predict_proba(X).shape == (24, 3)
    flat = tsk.PointCloudClassifier("s4d", coords=2, **{**FAST, "max_epochs": 1})
    assert flat.fit([c[:, [0, 1, 3]] for c in X], y).coords_ == 2  # 2-D points with a feature


def test_a_saved_model_predicts_identically_and_the_command_line_labels_a_table(fitted,
                                                                                 tmp_path):
    X, _ = shapes(9, seed=4)
    fitted.save(tmp_path / "model")
    loaded = tsk.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    # one row per point: the cloud's id and its coordinates
    table = pd.concat([pd.DataFrame({"unique_id": f"c{i}", "x": c[:, 0], "y": c[:, 1]})
                       for i, c in enumerate(X)])
    table.to_csv(tmp_path / "points.csv", index=False)
    assert main(["predict", "--model", str(tmp_path / "model"), "--data",
                 str(tmp_path / "points.csv"), "--out", str(tmp_path / "labels.csv")]) == 0
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert labels["unique_id"].tolist() == [f"c{i}" for i in range(9)]
    assert labels["label"].tolist() == fitted.predict(X).tolist()
    folder = tmp_path / "clouds"
    folder.mkdir()
    for i, cloud in enumerate(X):
        np.save(folder / f"c{i}.npy", cloud)
    np.savetxt(folder / "c9.txt", X[0], delimiter=",")
    assert main(["predict", "--model", str(tmp_path / "model"), "--data", str(folder),
                 "--out", str(tmp_path / "files.csv")]) == 0
    files = pd.read_csv(tmp_path / "files.csv")
    assert files["file"].str.endswith(("c0.npy", "c9.txt")).sum() == 2
    assert (files.loc[files["file"].str.endswith("c9.txt"), "label"].item()
            == fitted.predict(X[:1])[0])


def test_tuning_searches_a_point_cloud_classifier(tmp_path):
    import optuna

    X, y = shapes(30)
    result = tsk.tune(tsk.PointCloudClassifier("s4d", **{**FAST, "max_epochs": 1}), X, y,
                      space={"learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2,
                                                                                     log=True)},
                      n_trials=2, random_state=0, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert result.n_trials_ == 2
    assert result.best_estimator_.predict(X[:3]).shape == (3,)


@pytest.mark.parametrize(("X", "message"), [
    ([np.zeros((0, 2))], "Point set 0 is empty"),
    ([np.ones((4, 2)), np.array([[0.0, np.nan], [1.0, 1.0]])], r"Point set 1 has NaN.*rows \[0\]"),
    ([np.ones((4, 2)), np.ones((4, 3))], "different numbers of columns: set 0 has 2, set 1 has 3"),
    ([np.ones(4)], r"Point set 0 has shape \(4,\)"),
    (np.ones((3, 4)), r"\[n_clouds, n_points, columns\]"),
    ("points.csv", "list of"),
])
def test_bad_point_sets_get_clear_errors(X, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tsk.PointCloudClassifier("s4d", **FAST).fit(X, np.zeros(len(X)))


def test_predicting_with_other_columns_or_fitting_with_bad_options_fails_clearly(fitted):
    with pytest.raises(ValueError, match=r"3 column\(s\); the model was fit on 2"):
        fitted.predict([np.ones((5, 3), np.float32)])
    X, y = shapes(6)
    for options, message in [({"coords": 3}, "fewer than coords=3"),
                             ({"network": "pointnet++"}, "network must be one of"),
                             ({"order": "spiral"}, "order must be one of"),
                             ({"grid_size": 2, "stages": 3}, "cannot halve"),
                             ({"up_axis": 3}, "up_axis")]:
        with pytest.raises(ValueError, match=message):
            tsk.PointCloudClassifier("s4d", **{**FAST, **options}).fit(X, y)
    takes = r"frames backbone.*point-cloud network \(LION's group operator\) takes sequence"
    with pytest.raises(ValueError, match=takes):
        tsk.PointCloudClassifier("convs5", **FAST).fit(X, y)
