"""Point sets: MNIST digits as 2-D points (real digits), the OFF reader, surface sampling and both
ModelNet layouts (small files written in the real formats), and the errors a user meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tsk.datasets.points as points_module
from tsk.datasets import load_mnist_digits, load_modelnet, mnist_point_sets, read_off, sample_surface


@pytest.fixture(scope="module")
def digits(mnist_root) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist_digits(mnist_root)


def expected_points(image: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Every pixel above the threshold as (column, 27 - row), scaled to [-1, 1]."""
    rows, cols = np.nonzero(image > threshold)
    return np.stack([cols / 27 * 2 - 1, (27 - rows) / 27 * 2 - 1], axis=1)


def as_rows(points: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(np.round(p, 5)) for p in np.asarray(points, dtype=np.float64)}


# ---- MNIST point sets ----------------------------------------------------------------------------


def test_mnist_splits_sizes_labels_and_dtypes(mnist_root, digits):
    _, labels = digits
    train, y_train = mnist_point_sets("train", root=mnist_root)
    test, y_test = mnist_point_sets("test", root=mnist_root)
    assert len(train) == len(y_train) == 8000 and len(test) == len(y_test) == 2000
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(y_train, labels[:8000])
    np.testing.assert_array_equal(y_test, labels[8000:])
    for cloud in train[:50] + test[:50]:
        assert cloud.dtype == np.float32 and cloud.ndim == 2 and cloud.shape[1] == 2
        assert 1 <= len(cloud) <= 256
        assert cloud.min() >= -1 and cloud.max() <= 1
    assert len({len(c) for c in train}) > 1  # sizes vary: nothing is padded or duplicated


def test_mnist_points_are_the_thresholded_pixels_with_y_up(mnist_root, digits):
    images, _ = digits
    train, _ = mnist_point_sets("train", n_points=784, root=mnist_root)
    test, _ = mnist_point_sets("test", n_points=784, root=mnist_root)
    for index in (0, 1, 7, 4321):
        np.testing.assert_allclose(train[index], expected_points(images[index]), atol=1e-6)
    np.testing.assert_allclose(test[5], expected_points(images[8005]), atol=1e-6)
    # y points up: the digit's top row has the largest y, its leftmost column the smallest x
    rows, cols = np.nonzero(images[0] > 128)
    assert train[0][:, 1].max() == pytest.approx((27 - rows.min()) / 27 * 2 - 1)
    assert train[0][:, 0].min() == pytest.approx(cols.min() / 27 * 2 - 1)
    # digit 0 is a 7: its bar (the widest row) is at the top, its stem reaches down
    heights, widths = np.unique(train[0][:, 1], return_counts=True)
    assert heights[np.argmax(widths)] > 0.25 and heights.min() < -0.75


def test_mnist_threshold_moves_the_count(mnist_root, digits):
    images, _ = digits
    clouds, _ = mnist_point_sets("train", n_points=784, threshold=200, root=mnist_root)
    counts = np.array([len(c) for c in clouds[:100]])
    np.testing.assert_array_equal(counts, (images[:100] > 200).sum(axis=(1, 2)))
    low, _ = mnist_point_sets("train", n_points=784, threshold=0, root=mnist_root)
    assert all(len(a) >= len(b) for a, b in zip(low[:100], clouds[:100], strict=True))


def test_mnist_subsampling_is_a_deterministic_subset(mnist_root):
    full, _ = mnist_point_sets("train", n_points=784, root=mnist_root)
    small, _ = mnist_point_sets("train", n_points=40, root=mnist_root)
    again, _ = mnist_point_sets("train", n_points=40, root=mnist_root)
    other, _ = mnist_point_sets("train", n_points=40, root=mnist_root, seed=1)
    for i in range(200):
        assert len(small[i]) == min(40, len(full[i]))
        assert len(as_rows(small[i])) == len(small[i])  # no duplicates
        assert as_rows(small[i]) <= as_rows(full[i])
        np.testing.assert_array_equal(small[i], again[i])
    assert any(not np.array_equal(a, b) for a, b in zip(small[:200], other[:200], strict=True))


def test_mnist_split_seeds_differ(monkeypatch):
    # the same image in both pools must be sampled differently: the generator knows the split
    image = np.zeros((28, 28), np.uint8)
    image[2:26, 4:24] = 255
    monkeypatch.setattr(points_module, "load_mnist_digits",
                        lambda root: (np.repeat(image[None], 10_000, axis=0),
                                      np.zeros(10_000, np.int64)))
    train, _ = mnist_point_sets("train", n_points=16)
    test, _ = mnist_point_sets("test", n_points=16)
    assert not np.array_equal(train[0], test[0])


def test_mnist_corner_pixels_map_to_the_corners(monkeypatch):
    images = np.zeros((10_000, 28, 28), np.uint8)
    images[:, 0, 27] = 255  # top right
    images[:, 27, 0] = 200  # bottom left
    images[:, 0, 0] = 129  # top left, just above the threshold
    images[:, 27, 27] = 128  # bottom right, not above it
    labels = np.arange(10_000) % 10
    monkeypatch.setattr(points_module, "load_mnist_digits", lambda root: (images, labels))
    clouds, y = mnist_point_sets("test")
    assert as_rows(clouds[0]) == {(1.0, 1.0), (-1.0, -1.0), (-1.0, 1.0)}
    np.testing.assert_array_equal(y, labels[8000:])


def test_mnist_blank_digit_is_named(monkeypatch):
    images = np.full((10_000, 28, 28), 255, np.uint8)
    images[8003] = 0
    monkeypatch.setattr(points_module, "load_mnist_digits",
                        lambda root: (images, np.zeros(10_000, np.int64)))
    mnist_point_sets("train")  # the blank digit is in the test pool only
    with pytest.raises(ValueError, match=r"digit 8003 has no pixel above threshold=128.*lower"):
        mnist_point_sets("test")


def test_mnist_real_digit_without_bright_pixels(mnist_root, digits):
    images, _ = digits
    first = int(np.flatnonzero((images[:8000] > 254).sum(axis=(1, 2)) == 0)[0])
    with pytest.raises(ValueError, match=rf"digit {first} .*threshold=254.*lower threshold"):
        mnist_point_sets("train", threshold=254, root=mnist_root)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"split": "val"}, ValueError, r"split 'val'.*test, train"),
    ({"n_points": 0}, ValueError, r"n_points must be a positive int"),
    ({"n_points": 2.5}, TypeError, r"n_points must be a positive int"),
    ({"threshold": 255}, ValueError, r"threshold must be in 0\.\.254"),
    ({"threshold": -1}, ValueError, r"threshold must be in 0\.\.254"),
    ({"threshold": 12.0}, TypeError, r"threshold must be an int"),
    ({"seed": -3}, ValueError, r"seed must be an int >= 0"),
])
def test_mnist_arguments_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        mnist_point_sets(**kwargs)


# ---- OFF files -----------------------------------------------------------------------------------

SQUARE_AND_ROOF = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1]]
SQUARE_TRIANGLES = [[0, 1, 2], [0, 2, 3], [0, 1, 4]]  # the quad fanned from vertex 0, then the triangle


def test_off_quad_is_fanned_into_two_triangles(tmp_path):
    path = tmp_path / "square.off"
    path.write_text("OFF\n5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1\n4 0 1 2 3\n3 0 1 4\n")
    vertices, triangles = read_off(path)
    assert vertices.dtype == np.float64 and triangles.dtype == np.int64
    np.testing.assert_array_equal(vertices, SQUARE_AND_ROOF)
    np.testing.assert_array_equal(triangles, SQUARE_TRIANGLES)


def test_off_pentagon_fan(tmp_path):
    path = tmp_path / "pentagon.off"
    path.write_text("OFF\n5 1 0\n" + "0 0 0\n" * 5 + "5 4 3 2 1 0\n")
    np.testing.assert_array_equal(read_off(path)[1], [[4, 3, 2], [4, 2, 1], [4, 1, 0]])


def test_off_counts_glued_to_the_header_comments_and_blank_lines(tmp_path):
    path = tmp_path / "modelnet_style.off"
    path.write_text("OFF5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1\n4 0 1 2 3\n3 0 1 4\n")
    vertices, triangles = read_off(path)
    np.testing.assert_array_equal(vertices, SQUARE_AND_ROOF)
    np.testing.assert_array_equal(triangles, SQUARE_TRIANGLES)
    commented = tmp_path / "commented.off"
    commented.write_text("# made by hand\nOFF\n\n# counts next\n5 2 0\n0 0 0 # origin\n1 0 0\n\n"
                         "1 1 0\n0 1 0\n0.5 0.5 1\n# faces\n4 0 1 2 3\n3 0 1 4\n\n")
    vertices, triangles = read_off(commented)
    np.testing.assert_array_equal(vertices, SQUARE_AND_ROOF)
    np.testing.assert_array_equal(triangles, SQUARE_TRIANGLES)


def test_off_all_triangles_and_trailing_colours(tmp_path):
    path = tmp_path / "tetra.off"
    path.write_text("OFF\n4 4 6\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n"
                    "3 1 2 3 255 0 0\n")
    vertices, triangles = read_off(path)
    assert vertices.shape == (4, 3)
    np.testing.assert_array_equal(triangles, [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


@pytest.mark.parametrize(("text", "match"), [
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", r"bad\.off, line 6: a face needs at least 3"),
    ("# c\nOFF3 1 0\n0 0 0\n\n1 0 0\n0 1 0\n1 0\n", r"bad\.off, line 7: a face needs at least 3"),
    ("PLY\n3 1 0\n", r"bad\.off is not an OFF file"),
    ("", r"bad\.off is not an OFF file"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n", r"bad\.off is truncated"),
    ("OFF\nthree 1 0\n", r"bad\.off, line 2: expected 'n_vertices n_faces"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", r"line 6: vertex index 3 is outside 0\.\.2"),
    ("OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", r"line 4: a vertex needs three numbers"),
    ("OFF\n3 1 0\n0 0 0\n1 0\n0 1 0\n3 0 1 2\n", r"line 4: a vertex needs three numbers"),
    ("OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n4 0 1 2\n", r"line 7: the face announces 4"),
])
def test_off_errors_name_the_file_and_line(tmp_path, text, match):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_off(path)


# ---- surface sampling ----------------------------------------------------------------------------


def test_sampling_follows_area_and_stays_inside_the_triangles():
    # triangle 0: area 1, near the origin; triangle 1: area 3, far to the right; both in z = 0
    vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 1, 0], [10, 0, 0], [13, 0, 0], [10, 2, 0]], float)
    triangles = np.array([[0, 1, 2], [3, 4, 5]])
    points = sample_surface(vertices, triangles, 20_000, np.random.default_rng(0))
    assert points.shape == (20_000, 3) and points.dtype == np.float32
    assert np.all(points[:, 2] == 0)
    first = points[:, 0] < 5
    assert first.mean() == pytest.approx(0.25, abs=0.02)
    for mask, (a, b, c) in ((first, vertices[:3]), (~first, vertices[3:])):
        p = points[mask, :2].astype(np.float64)
        # barycentric coordinates in the triangle's own frame (a right angle at a)
        s = (p[:, 0] - a[0]) / (b[0] - a[0])
        t = (p[:, 1] - a[1]) / (c[1] - a[1])
        assert s.min() >= -1e-6 and t.min() >= -1e-6 and (s + t).max() <= 1 + 1e-6
        # uniform inside: the mean is the centroid (without the square root it leans towards a)
        np.testing.assert_allclose(p.mean(axis=0), (a + b + c)[:2] / 3, atol=0.03)


def test_sampling_is_reproducible_and_takes_a_seed():
    vertices, triangles = np.array(SQUARE_AND_ROOF, float), np.array(SQUARE_TRIANGLES)
    one = sample_surface(vertices, triangles, 100, np.random.default_rng(5))
    np.testing.assert_array_equal(one, sample_surface(vertices, triangles, 100, 5))
    assert not np.array_equal(one, sample_surface(vertices, triangles, 100, 6))


def test_normals_are_unit_and_face_the_right_way():
    vertices = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], float)  # the plane x + y + z = 1
    points = sample_surface(vertices, np.array([[0, 1, 2]]), 500, 0, normals=True)
    assert points.shape == (500, 6) and points.dtype == np.float32
    np.testing.assert_allclose(points[:, :3].sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(points[:, 3:], np.full((500, 3), 1 / np.sqrt(3)), atol=1e-6)
    flipped = sample_surface(vertices, np.array([[0, 2, 1]]), 10, 0, normals=True)
    np.testing.assert_allclose(flipped[:, 3:], np.full((10, 3), -1 / np.sqrt(3)), atol=1e-6)
    # the square and its roof: each point carries its own triangle's normal
    square = sample_surface(np.array(SQUARE_AND_ROOF, float), np.array(SQUARE_TRIANGLES), 2000, 1,
                            normals=True)
    np.testing.assert_allclose(np.linalg.norm(square[:, 3:], axis=1), 1, atol=1e-6)
    floor = square[:, 2] < 1e-7
    np.testing.assert_allclose(square[floor, 3:], [[0, 0, 1]] * floor.sum(), atol=1e-6)
    roof = square[~floor, 3:]
    np.testing.assert_allclose(roof, [[0, -1 / np.sqrt(1.25), 0.5 / np.sqrt(1.25)]] * len(roof),
                               atol=1e-6)


def test_sampling_refuses_a_flat_mesh():
    vertices = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], float)  # collinear: zero area
    with pytest.raises(ValueError, match="zero total surface area"):
        sample_surface(vertices, np.array([[0, 1, 2]]), 10, 0)
    with pytest.raises(ValueError, match="zero total surface area"):
        sample_surface(vertices, np.zeros((0, 3), np.int64), 10, 0)
    with pytest.raises(ValueError, match=r"triangle indices must lie in 0\.\.2"):
        sample_surface(vertices, np.array([[0, 1, 3]]), 10, 0)


# ---- ModelNet: the Princeton meshes ----------------------------------------------------------------

CUBE = ("OFF\n8 6 0\n" + "".join(f"{x} {y} {z}\n" for x in (-1, 1) for y in (-1, 1) for z in (-1, 1))
        + "4 0 1 3 2\n4 4 6 7 5\n4 0 4 5 1\n4 2 3 7 6\n4 0 2 6 4\n4 1 5 7 3\n")
TETRA = "OFF4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"


def write_princeton(root: Path, classes: dict[str, dict[str, list[str]]]) -> Path:
    for name, splits in classes.items():
        for split, meshes in splits.items():
            (root / name / split).mkdir(parents=True, exist_ok=True)
            for i, text in enumerate(meshes, start=1):
                (root / name / split / f"{name}_{i:04d}.off").write_text(text)
    return root


@pytest.fixture
def princeton(tmp_path) -> Path:
    root = write_princeton(tmp_path / "ModelNet40", {
        "chair": {"train": [CUBE, CUBE, TETRA], "test": [TETRA]},
        "desk": {"train": [TETRA], "test": [CUBE, CUBE]},
    })
    (root / "README.txt").write_text("not a class")
    (root / "__MACOSX" / "chair").mkdir(parents=True)  # the zip's debris is no class
    return root


def test_princeton_meshes_are_sampled_on_their_surface(princeton):
    clouds, labels = load_modelnet(princeton, n_points=300)
    assert labels.tolist() == ["chair", "chair", "chair", "desk"]
    assert all(c.shape == (300, 3) and c.dtype == np.float32 for c in clouds)
    for cube in clouds[:2]:  # on the surface of [-1, 1]^3: one coordinate is +-1
        np.testing.assert_allclose(np.abs(cube).max(axis=1), 1, atol=1e-6)
        assert np.abs(cube).max() <= 1 + 1e-6
    assert not np.array_equal(clouds[0], clouds[1])  # the same mesh, another file: another draw
    tetra = clouds[2].astype(np.float64)  # on a face: one coordinate is 0, or they sum to 1
    on_face = (np.abs(tetra).min(axis=1) < 1e-6) | (np.abs(tetra.sum(axis=1) - 1) < 1e-6)
    assert on_face.all() and tetra.min() >= -1e-6
    test_clouds, test_labels = load_modelnet(princeton, split="test", n_points=300)
    assert test_labels.tolist() == ["chair", "desk", "desk"]


def test_princeton_is_deterministic_and_seeded(princeton):
    first, _ = load_modelnet(princeton, n_points=64)
    again, _ = load_modelnet(princeton, n_points=64)
    other, _ = load_modelnet(princeton, n_points=64, seed=1)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    # file index i is drawn by default_rng([seed, i]): sample_surface with that generator agrees
    vertices, triangles = read_off(princeton / "chair" / "train" / "chair_0003.off")
    expected = sample_surface(vertices, triangles, 64, np.random.default_rng([0, 2]))
    np.testing.assert_array_equal(first[2], expected)


def test_princeton_normals(princeton):
    clouds, _ = load_modelnet(princeton, n_points=200, normals=True)
    cube = clouds[0]
    assert cube.shape == (200, 6)
    np.testing.assert_allclose(np.linalg.norm(cube[:, 3:], axis=1), 1, atol=1e-6)
    # on a cube face the normal is an axis (up to orientation) and the point is at +-1 along it
    axis = np.argmax(np.abs(cube[:, 3:]), axis=1)
    np.testing.assert_allclose(np.abs(cube[np.arange(200), 3 + axis]), 1, atol=1e-6)
    np.testing.assert_allclose(np.abs(cube[np.arange(200), axis]), 1, atol=1e-6)


def test_princeton_flat_mesh_is_named(tmp_path):
    flat = "OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n"
    root = write_princeton(tmp_path, {"lamp": {"train": [TETRA, flat]}})
    with pytest.raises(ValueError, match=r"lamp_0002\.off: the mesh has zero total surface area"):
        load_modelnet(root)


def test_princeton_variant_must_match_the_class_count(tmp_path):
    root = write_princeton(tmp_path, {f"class{i}": {"train": [TETRA]} for i in range(10)})
    assert len(load_modelnet(root, "modelnet10", n_points=8)[0]) == 10
    with pytest.raises(ValueError, match=r"10 classes, i\.e\. modelnet10, but variant='modelnet40'"):
        load_modelnet(root, n_points=8)


def test_princeton_split_without_files(tmp_path):
    root = write_princeton(tmp_path, {"chair": {"train": [TETRA]}})
    with pytest.raises(FileNotFoundError, match=r"<class>/test/\*\.off"):
        load_modelnet(root, split="test")


# ---- ModelNet: modelnet40_normal_resampled ---------------------------------------------------------


def write_resampled(root: Path, prefix: str = "modelnet40", n_lines: int = 20) -> Path:
    ids = {"train": ["airplane_0001", "night_stand_0001", "airplane_0002"],
           "test": ["night_stand_0002"]}
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{prefix}_shape_names.txt").write_text("airplane\nnight_stand\n")
    for split, names in ids.items():
        (root / f"{prefix}_{split}.txt").write_text("\n".join(names) + "\n")
    for k, shape_id in enumerate(ids["train"] + ids["test"]):
        folder = root / shape_id.rsplit("_", 1)[0]
        folder.mkdir(exist_ok=True)
        rows = [[k, i, -i, 0.0, 0.0, 1.0] for i in range(n_lines)]  # point i of shape k
        (folder / f"{shape_id}.txt").write_text(
            "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in rows))
    return root


def test_resampled_takes_the_first_points_and_labels_from_ids(tmp_path):
    root = write_resampled(tmp_path / "modelnet40_normal_resampled")
    clouds, labels = load_modelnet(root, n_points=5)
    assert labels.tolist() == ["airplane", "night_stand", "airplane"]
    assert all(c.shape == (5, 3) and c.dtype == np.float32 for c in clouds)
    np.testing.assert_array_equal(clouds[1], [[1, i, -i] for i in range(5)])  # shape 1, lines 0-4
    test, test_labels = load_modelnet(root, split="test", n_points=20, normals=True)
    assert test_labels.tolist() == ["night_stand"] and test[0].shape == (20, 6)
    np.testing.assert_array_equal(test[0][:, 3:], np.tile([0, 0, 1], (20, 1)))
    np.testing.assert_array_equal(test[0][:, 0], 3)


def test_resampled_modelnet10_lists_and_default_root(tmp_path, monkeypatch):
    root = write_resampled(tmp_path / "pointclouds" / "modelnet40_normal_resampled", "modelnet10")
    with pytest.raises(FileNotFoundError, match=r"modelnet40_shape_names\.txt"):
        load_modelnet(root)  # only the modelnet10 lists are there
    assert load_modelnet(root, "modelnet10", n_points=4)[1].tolist()[0] == "airplane"
    monkeypatch.setenv("TSK_DATA_DIR", str(tmp_path))
    clouds, labels = load_modelnet(None, "modelnet10", split="test", n_points=4)
    assert labels.tolist() == ["night_stand"] and clouds[0].shape == (4, 3)


def test_resampled_short_or_missing_files(tmp_path):
    root = write_resampled(tmp_path, n_lines=8)
    with pytest.raises(ValueError, match=r"airplane_0001\.txt has 8 points, fewer than n_points=9"):
        load_modelnet(root, n_points=9)
    (root / "night_stand" / "night_stand_0001.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"night_stand_0001\.txt \(listed in .*train\.txt"):
        load_modelnet(root, n_points=4)
    (root / "modelnet40_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"split list .*modelnet40_test\.txt"):
        load_modelnet(root, split="test")


def test_resampled_unknown_class(tmp_path):
    root = write_resampled(tmp_path)
    (root / "modelnet40_shape_names.txt").write_text("airplane\n")
    with pytest.raises(ValueError, match=r"class 'night_stand' of 'night_stand_0001' is not in"):
        load_modelnet(root, n_points=4)


# ---- ModelNet: errors ------------------------------------------------------------------------------


def test_modelnet_empty_root_names_both_layouts_and_sources(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_modelnet(tmp_path)
    message = str(caught.value)
    for part in ("<class>/train/*.off", "modelnet40_shape_names.txt", "modelnet40_train.txt",
                 "https://modelnet.cs.princeton.edu/",
                 "https://shapenet.cs.stanford.edu/media/modelnet40_normal_resampled.zip"):
        assert part in message


def test_modelnet_default_root_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TSK_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"pointclouds/ModelNet40 and .*modelnet40_normal"
                                                r"_resampled.*modelnet\.cs\.princeton\.edu"):
        load_modelnet(None)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"variant": "modelnet20"}, ValueError, r"variant 'modelnet20'.*modelnet10, modelnet40"),
    ({"split": "valid"}, ValueError, r"split 'valid'.*test, train"),
    ({"n_points": 0}, ValueError, r"n_points must be a positive int"),
    ({"seed": -1}, ValueError, r"seed must be an int >= 0"),
])
def test_modelnet_arguments_are_checked(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_modelnet(tmp_path, **kwargs)
