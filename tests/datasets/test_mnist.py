"""Moving MNIST: the MNIST readers, each step of the bouncing-digits procedure, the held-out split
and the errors a user meets."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from tsk.datasets import load_mnist_digits, moving_mnist
from tsk.datasets.mnist import (
    MNIST_DIR,
    SPLIT_SEEDS,
    bounce,
    bouncing_trajectory,
    default_digit_size,
    pixel_offsets,
    read_idx,
    render,
    resize_digits,
)


@pytest.fixture(scope="module")
def images(mnist_root) -> np.ndarray:
    return load_mnist_digits(mnist_root)[0]


# ---- the digits ----------------------------------------------------------------------------------


def test_mnist_test_digits_load(mnist_root):
    images, labels = load_mnist_digits(mnist_root)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(labels.tolist()) == set(range(10))
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official test set's order
    assert images.max() == 255 and images.min() == 0


@pytest.mark.parametrize("compressed", [True, False])
def test_idx_files_give_the_npz_digits(mnist_root, tmp_path, compressed):
    source = mnist_root / MNIST_DIR
    if not (source / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("the IDX files are not beside the npz")
    target = tmp_path / MNIST_DIR
    target.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if compressed:
            shutil.copy(source / name, target / name)
        else:
            with gzip.open(source / name, "rb") as src, open(target / name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
    from_idx, labels_idx = load_mnist_digits(tmp_path)
    from_npz, labels_npz = load_mnist_digits(mnist_root)
    np.testing.assert_array_equal(from_idx, from_npz)
    np.testing.assert_array_equal(labels_idx, labels_npz)


def test_idx_reader_checks_the_header(tmp_path):
    good = tmp_path / "good.idx"
    good.write_bytes(bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
                     + bytes(range(6)))
    np.testing.assert_array_equal(read_idx(good), np.arange(6, dtype=np.uint8).reshape(2, 3))
    wide = tmp_path / "wide.idx"
    wide.write_bytes(bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + (7).to_bytes(4, "big")
                     + (-1).to_bytes(4, "big", signed=True))
    assert read_idx(wide).tolist() == [7, -1]
    bad_magic = tmp_path / "bad.idx"
    bad_magic.write_bytes(bytes([1, 0, 0x08, 1]) + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad_magic)
    bad_type = tmp_path / "type.idx"
    bad_type.write_bytes(bytes([0, 0, 0x07, 1]) + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX element type 0x07"):
        read_idx(bad_type)
    truncated = tmp_path / "short.idx"
    truncated.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"shape \(2, 3\) needs 18 bytes, the file has 17"):
        read_idx(truncated)


def test_missing_digits_name_the_files_and_their_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mnist_test\.npz.*t10k-images-idx3-ubyte\.gz.*"
                                                r"yann\.lecun\.com/exdb/mnist"):
        load_mnist_digits(tmp_path)
    with pytest.raises(FileNotFoundError, match="MNIST test digits were not found"):
        moving_mnist(2, root=tmp_path)


# ---- the procedure, step by step -------------------------------------------------------------------


def test_bounce_moves_first_then_reflects_off_each_wall():
    # x reaches the right wall on the first frame (the start itself is not a frame)
    np.testing.assert_allclose(bounce([0.95, 0.5], [0.1, 0.0], 3), [[1.0, 0.5], [0.9, 0.5], [0.8, 0.5]])
    # both coordinates hit the low walls, on different frames
    np.testing.assert_allclose(bounce([0.05, 0.15], [-0.1, -0.1], 3),
                               [[0.0, 0.05], [0.1, 0.0], [0.2, 0.1]], atol=1e-12)
    # batched: leading axes are independent points
    both = bounce([[0.95, 0.5], [0.05, 0.15]], [[0.1, 0.0], [-0.1, -0.1]], 3)
    assert both.shape == (2, 3, 2)
    np.testing.assert_allclose(both[1], bounce([0.05, 0.15], [-0.1, -0.1], 3))


def test_trajectories_stay_inside_and_step_exactly_step_length():
    positions = bouncing_trajectory(np.random.default_rng(0), 60, 0.1, shape=(200,))
    assert positions.shape == (200, 60, 2)
    assert positions.min() >= 0.0 and positions.max() <= 1.0
    on_wall = ((positions == 0) | (positions == 1)).any(-1)
    assert on_wall.sum() > 100  # the check below covers frames right after bounces too
    steps = np.linalg.norm(np.diff(positions, axis=1), axis=-1)
    free = ~on_wall[:, 1:]  # the step into a frame that was not clamped to a wall
    assert free.sum() > 5000
    np.testing.assert_allclose(steps[free], 0.1, rtol=1e-9)


def test_trajectory_draws_start_then_direction():
    rng = np.random.default_rng(3)
    start, theta = rng.random(2), rng.uniform(0, 2 * np.pi)
    expected = bounce(start, 0.05 * np.array([np.cos(theta), np.sin(theta)]), 15)
    np.testing.assert_array_equal(bouncing_trajectory(np.random.default_rng(3), 15, 0.05), expected)


def test_pixel_offsets_are_row_col_of_the_free_canvas():
    positions = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.25], [0.999, 0.0]])  # (x, y)
    assert pixel_offsets(positions, 64, 28).tolist() == [[0, 0], [36, 36], [9, 18], [0, 35]]


def test_render_pastes_with_maximum_at_the_offsets():
    a = np.full((3, 3), 150, np.uint8)
    b = np.array([[250, 50, 250], [50, 250, 50], [250, 50, 250]], np.uint8)
    offsets = np.array([[[0, 0]], [[1, 1]]])  # [k=2, frames=1, (row, col)]
    frame = render(np.stack([a, b]), offsets, 5)[0]
    # overlap rows/cols 1-2: max(150, b), never the sum (400 wraps to 144) nor the later digit alone
    np.testing.assert_array_equal(frame[1:3, 1:3], np.maximum(150, b[:2, :2]))
    assert frame[1, 1] == 250 and frame[1, 2] == 150
    np.testing.assert_array_equal(frame[3, 1:4], b[2])  # b alone below the overlap
    assert frame[0, 3] == 0 and frame[4, 0] == 0
    # one digit at row 2, col 1: the rest of the canvas stays black; frames follow the offsets
    digit = np.arange(1, 10, dtype=np.uint8).reshape(3, 3)
    frames = render(digit[None], np.array([[[2, 1], [0, 2]]]), 5)
    assert frames.shape == (2, 5, 5) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0, 2:5, 1:4], digit)
    np.testing.assert_array_equal(frames[1, 0:3, 2:5], digit)
    assert frames[0].sum() == digit.sum() and frames[1].sum() == digit.sum()
    with pytest.raises(ValueError, match=r"offsets must lie in \[0, 2\]"):
        render(digit[None], np.array([[[3, 0]]]), 5)


def test_resize_is_the_area_mean():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    block = img.reshape(4, 14, 2, 14, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(resize_digits(img, 14), np.rint(block).astype(np.uint8))
    # 28 -> 20: split each pixel into 5x5, then average 7x7 blocks: the exact area mean
    fine = img.repeat(5, axis=1).repeat(5, axis=2).reshape(4, 20, 7, 20, 7).mean(axis=(2, 4))
    resized = resize_digits(img, 20)
    assert resized.shape == (4, 20, 20) and resized.dtype == np.uint8
    np.testing.assert_array_equal(resized, np.rint(fine).astype(np.uint8))
    np.testing.assert_array_equal(resize_digits(img, 28), img)


def test_digit_size_keeps_the_standard_ratio():
    assert default_digit_size(64) == 28 and default_digit_size(128) == 28
    assert default_digit_size(32) == 14 and default_digit_size(48) == 21 and default_digit_size(2) == 1


# ---- the dataset ----------------------------------------------------------------------------------


def test_shape_dtype_and_every_frame_shows_a_digit(mnist_root):
    videos = moving_mnist(16, 10, root=mnist_root)
    assert videos.shape == (16, 10, 1, 64, 64) and videos.dtype == np.uint8
    assert (videos.reshape(16, 10, -1).max(-1) > 0).all() and videos.max() == 255


def test_seeds_fix_the_videos(mnist_root):
    same = moving_mnist(8, 6, seed=7, root=mnist_root)
    np.testing.assert_array_equal(same, moving_mnist(8, 6, seed=7, root=mnist_root))
    assert not np.array_equal(same, moving_mnist(8, 6, seed=8, root=mnist_root))
    test = moving_mnist(8, 6, split="test", root=mnist_root)
    np.testing.assert_array_equal(test, moving_mnist(8, 6, split="test", root=mnist_root))
    np.testing.assert_array_equal(test, moving_mnist(8, 6, split="test", seed=SPLIT_SEEDS["test"],
                                                     root=mnist_root))
    assert not np.array_equal(test, moving_mnist(8, 6, split="train", root=mnist_root))


def test_test_videos_only_use_held_out_digits(mnist_root):
    _, test_digits = moving_mnist(300, 2, split="test", return_digits=True, root=mnist_root)
    _, train_digits = moving_mnist(300, 2, split="train", return_digits=True, root=mnist_root)
    assert test_digits.shape == train_digits.shape == (300, 2)
    assert test_digits.min() >= 8000 and test_digits.max() < 10_000
    assert train_digits.min() >= 0 and train_digits.max() < 8000
    assert len(np.unique(test_digits)) > 400  # drawn across the pool, not a few repeated digits


@pytest.mark.parametrize(("size", "digit_size"), [(64, 28), (32, 14)])
def test_every_frame_is_the_render_of_its_digits(mnist_root, images, size, digit_size):
    n, n_frames, seed = 5, 12, 11
    videos, digits = moving_mnist(n, n_frames, size=size, seed=seed, return_digits=True,
                                  root=mnist_root)
    assert videos.shape == (n, n_frames, 1, size, size)
    # the documented draws: digit indices, then the trajectories
    rng = np.random.default_rng(seed)
    np.testing.assert_array_equal(digits, rng.integers(0, 8000, (n, 2)))
    offsets = pixel_offsets(bouncing_trajectory(rng, n_frames, 0.1, shape=(n, 2)), size, digit_size)
    assert offsets.max() <= size - digit_size
    for i in range(n):
        pasted = resize_digits(images[digits[i]], digit_size)
        assert pasted.shape == (2, digit_size, digit_size)
        np.testing.assert_array_equal(videos[i, :, 0], render(pasted, offsets[i], size))


def test_bad_arguments_say_what_to_fix(tmp_path):
    cases = [
        (dict(n_sequences=0), ValueError, "n_sequences must be a positive int"),
        (dict(n_sequences=2.5), TypeError, "n_sequences must be a positive int, got float"),
        (dict(n_frames=-1), ValueError, "n_frames must be a positive int"),
        (dict(n_digits=True), TypeError, "n_digits must be a positive int"),
        (dict(size="64"), TypeError, "size must be a positive int"),
        (dict(split="tst"), ValueError, "Unknown Moving MNIST split 'tst'. Did you mean 'test'"),
        (dict(seed=1.5), TypeError, "seed must be an int or None"),
        (dict(digit_size=70), ValueError, "digit_size=70 does not fit a 64x64 canvas"),
        (dict(digit_size=0), ValueError, "digit_size must be a positive int"),
        (dict(step_length=0), ValueError, "step_length must be a finite number > 0"),
        (dict(step_length=float("nan")), ValueError, "step_length must be a finite number > 0"),
    ]
    for kwargs, error, message in cases:
        kwargs = {"n_sequences": 2, **kwargs}
        with pytest.raises(error, match=message):  # checked before any file is read
            moving_mnist(root=tmp_path, **kwargs)
