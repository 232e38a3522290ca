"""The MNIST test digits (`load_mnist_digits`) and Moving MNIST made from them: the bouncing-digits
videos of Srivastava, Mansimov & Salakhutdinov (ICML 2015).

Procedure (the standard generator, step by step):

- every sequence holds `n_digits` digits (default 2), each drawn uniformly from the split's pool;
- each digit moves on its own trajectory in normalised coordinates (x, y) in [0, 1]^2: the start
  is uniform, the direction theta ~ U(0, 2 pi), the velocity (cos theta, sin theta) * step_length;
- every frame, the first included, adds the velocity to the position first and then bounces: a
  coordinate <= 0 becomes 0, one >= 1 becomes 1, and that velocity component changes sign;
- the digit's top-left pixel is int(position * (size - digit_size)), y giving the row, x the column;
- digits are pasted with a pixel-wise maximum, so overlaps never saturate; frames are uint8.

Random draws (one `np.random.default_rng(seed)` per call, in this order): the digit indices
[n, n_digits], the starts [n, n_digits, 2], the directions [n, n_digits]. The same seed therefore
always gives the same videos; `seed=None` takes the split's fixed seed, so everyone's test set is
the same.

Source and split: only the official MNIST *test* set (10,000 digits) is shipped with the data, so
its digits 0-7,999 are the "train" pool and 8,000-9,999 the "test" pool: test videos never show a
digit seen in training. Published Moving MNIST numbers use sequences built from the 60,000 MNIST
training digits (and the fixed 10,000-video test file), so results on this split are not directly
comparable to them.
"""

from __future__ import annotations

import gzip
import math
import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from tsk._names import unknown_name_error
from tsk.datasets.files import DATA_DIR_ENV, data_root

MNIST_DIR = "spatiotemporal/mnist"
MNIST_NPZ = "mnist_test.npz"
MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"
MNIST_SOURCE = ("http://yann.lecun.com/exdb/mnist/ (or a mirror, e.g. "
                "https://ossci-datasets.s3.amazonaws.com/mnist/)")
MNIST_SIZE = 28  # side of an MNIST digit in pixels
N_MNIST_TEST = 10_000

TRAIN_DIGITS = (0, 8_000)  # [start, stop) of the "train" digit pool within the MNIST test set
TEST_DIGITS = (8_000, N_MNIST_TEST)  # held out: test videos never reuse a training digit
SPLITS = {"train": TRAIN_DIGITS, "test": TEST_DIGITS}
SPLIT_SEEDS = {"train": 0, "test": 1}  # seed=None: the same videos everywhere
STANDARD_SIZE = 64  # the canvas of the original dataset, with 28-pixel digits

# IDX element types (the third byte of the magic number) and their big-endian numpy dtypes
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# ---- the MNIST digits --------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (`.gz` or plain): magic 00 00 <type> <ndim>, ndim big-endian uint32
    sizes, then the data. Every field is checked, so a truncated or wrong file says so."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes.")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{code:02x}; known: "
                         f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header announces {ndim} dimensions.")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: shape {shape} needs {expected} bytes, the file has {len(raw)}.")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist_digits(root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 official MNIST test digits: images uint8 [10000, 28, 28], labels int64 [10000].

    Read from `<root>/spatiotemporal/mnist/mnist_test.npz` (keys x, y), else from the IDX files
    t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz beside it (`root`, else
    `$TSK_DATA_DIR`, else ./data).
    """
    folder = data_root(root) / MNIST_DIR
    npz = folder / MNIST_NPZ
    if npz.is_file():
        with np.load(npz) as data:
            images, labels = data["x"], data["y"]
        where = str(npz)
    else:
        paths = [_idx_path(folder, name) for name in (MNIST_IMAGES, MNIST_LABELS)]
        if not all(p.is_file() for p in paths):
            raise FileNotFoundError(
                f"The MNIST test digits were not found. Looked for {npz} and for {paths[0]} with "
                f"{paths[1]}. Download t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
                f"{MNIST_SOURCE} and put them in {folder} (or pass root=, or set {DATA_DIR_ENV})."
            )
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        where = f"{paths[0]} and {paths[1]}"
    if images.ndim != 3 or images.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or images.dtype != np.uint8:
        raise ValueError(f"{where}: MNIST images must be uint8 [n, 28, 28], got {images.dtype} "
                         f"{images.shape}.")
    if labels.shape != (len(images),):
        raise ValueError(f"{where}: {len(images)} images but labels of shape {labels.shape}.")
    return images, labels.astype(np.int64)


def _idx_path(folder: Path, name: str) -> Path:
    """The gzipped IDX file, or its uncompressed twin when only that one is there."""
    path = folder / name
    plain = path.with_suffix("")
    return plain if not path.is_file() and plain.is_file() else path


# ---- the generation steps ----------------------------------------------------------------------


def bounce(start: np.ndarray, velocity: np.ndarray, n_frames: int) -> np.ndarray:
    """Positions [..., n_frames, 2] of points starting at `start` [..., 2] (normalised x, y) and
    moving by `velocity` [..., 2] per frame: each frame adds the velocity first, then clamps a
    coordinate that left [0, 1] to the wall and reverses that velocity component."""
    pos = np.array(start, dtype=np.float64)
    vel = np.array(velocity, dtype=np.float64)
    if pos.shape[-1:] != (2,) or vel.shape != pos.shape:
        raise ValueError(f"start and velocity must both be [..., 2], got {pos.shape} and {vel.shape}.")
    out = np.empty((*pos.shape[:-1], n_frames, 2))
    for t in range(n_frames):
        pos += vel
        low = pos <= 0
        pos[low], vel[low] = 0.0, -vel[low]
        high = pos >= 1
        pos[high], vel[high] = 1.0, -vel[high]
        out[..., t, :] = pos
    return out


def bouncing_trajectory(rng: np.random.Generator, n_frames: int, step_length: float = 0.1,
                        shape: tuple[int, ...] = ()) -> np.ndarray:
    """Random trajectories [*shape, n_frames, 2] (normalised x, y): a uniform start in [0, 1]^2,
    a direction theta ~ U(0, 2 pi) and the speed `step_length`, drawn in that order."""
    start = rng.random((*shape, 2))
    theta = rng.uniform(0.0, 2.0 * np.pi, shape)
    velocity = np.stack([np.cos(theta), np.sin(theta)], axis=-1) * step_length
    return bounce(start, velocity, n_frames)


def pixel_offsets(positions: np.ndarray, size: int, digit_size: int) -> np.ndarray:
    """Top-left pixels (row, col) of a digit at normalised `positions` [..., 2] (x, y):
    int(position * (size - digit_size)), y -> row and x -> column."""
    return np.trunc(np.asarray(positions)[..., ::-1] * (size - digit_size)).astype(np.int64)


def resize_digits(images: np.ndarray, digit_size: int) -> np.ndarray:
    """Digits [..., s, s] uint8 resized to [..., digit_size, digit_size] by area averaging (each
    new pixel is the mean of the source area it covers), rounded back to uint8.

    When digit_size divides s this is the exact block mean; otherwise each source pixel counts
    with the fraction of it the new pixel covers.
    """
    images = np.asarray(images)
    s = images.shape[-1]
    if digit_size == s:
        return images.copy()
    if s % digit_size == 0:
        f = s // digit_size
        blocks = images.reshape(*images.shape[:-2], digit_size, f, digit_size, f)
        out = blocks.mean(axis=(-3, -1))
    else:
        # weights[i, j]: the part of source pixel j inside new pixel i, over the new pixel's width
        edges = np.arange(digit_size + 1) * (s / digit_size)
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(s)[None, :]
        weights = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None) / (s / digit_size)
        out = np.einsum("ij,...jk,lk->...il", weights, images.astype(np.float64), weights)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render(digits: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """Frames [..., n_frames, size, size] uint8 with each digit pasted at its offsets.

    `digits` [..., k, d, d] uint8, `offsets` [..., k, n_frames, 2] int (row, col of the top-left
    pixel); leading axes (e.g. sequences) are a batch. Pasting takes the pixel-wise maximum, so
    overlapping strokes keep their brightness instead of adding up past 255.
    """
    digits, offsets = np.asarray(digits), np.asarray(offsets)
    if digits.ndim < 3 or digits.shape[-1] != digits.shape[-2]:
        raise ValueError(f"digits must be [..., k, d, d], got shape {digits.shape}.")
    if offsets.shape[:-2] != digits.shape[:-2] or offsets.shape[-1] != 2:
        raise ValueError(f"offsets must be [..., k, n_frames, 2] for digits {digits.shape}, got "
                         f"{offsets.shape}.")
    d = digits.shape[-1]
    if d > size:
        raise ValueError(f"digits of {d} pixels do not fit a {size}x{size} canvas.")
    if offsets.size and (offsets.min() < 0 or offsets.max() > size - d):
        raise ValueError(f"offsets must lie in [0, {size - d}] so that {d}-pixel digits stay on "
                         f"the {size}x{size} canvas, got [{offsets.min()}, {offsets.max()}].")
    *batch, k, n_frames, _ = offsets.shape
    digits = digits.reshape(-1, k, d, d).astype(np.uint8, copy=False)
    frames = np.zeros((len(digits), n_frames, size, size), dtype=np.uint8)
    # a plain loop over views: faster here than fancy indexing, which copies every patch twice
    for b, sequence in enumerate(offsets.reshape(-1, k, n_frames, 2).tolist()):
        for digit, path in zip(digits[b], sequence, strict=True):
            for t, (row, col) in enumerate(path):
                patch = frames[b, t, row:row + d, col:col + d]
                np.maximum(patch, digit, out=patch)
    return frames.reshape(*batch, n_frames, size, size)


def default_digit_size(size: int) -> int:
    """28 on the standard 64x64 canvas or larger; on a smaller one the digit shrinks in
    proportion (28 * size / 64, rounded: 14 on 32x32) so the digit/canvas ratio stays standard."""
    return MNIST_SIZE if size >= STANDARD_SIZE else max(1, round(MNIST_SIZE * size / STANDARD_SIZE))


# ---- the dataset -------------------------------------------------------------------------------


def moving_mnist(n_sequences: int, n_frames: int = 20, *, size: int = 64, n_digits: int = 2,
                 split: str = "train", seed: int | None = None, digit_size: int | None = None,
                 step_length: float = 0.1, root: str | os.PathLike | None = None,
                 return_digits: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Moving MNIST videos uint8 [n_sequences, n_frames, 1, size, size] (the [n, T, C, H, W] of
    the video estimators), generated by the standard procedure (module docstring).

    `split`: "train" draws digits 0-7,999 of the MNIST test set, "test" 8,000-9,999 (held out).
    `seed=None` uses the split's fixed seed (SPLIT_SEEDS). `digit_size=None`: 28, or in
    proportion on a canvas smaller than 64. `return_digits=True` also returns the MNIST test-set
    index of every digit, [n_sequences, n_digits].
    """
    _check_int("n_sequences", n_sequences)
    _check_int("n_frames", n_frames)
    _check_int("size", size)
    _check_int("n_digits", n_digits)
    if not isinstance(split, str) or split not in SPLITS:
        raise unknown_name_error("Moving MNIST split", split, SPLITS)
    if seed is not None and (not isinstance(seed, Integral) or isinstance(seed, bool)):
        raise TypeError(f"seed must be an int or None (the split's fixed seed), got {seed!r}.")
    if digit_size is None:
        digit_size = default_digit_size(size)
    _check_int("digit_size", digit_size)
    if digit_size > size:
        raise ValueError(f"digit_size={digit_size} does not fit a {size}x{size} canvas; use "
                         f"digit_size <= size (or None for the standard ratio).")
    if (not isinstance(step_length, Real) or isinstance(step_length, bool)
            or not math.isfinite(step_length) or step_length <= 0):
        raise ValueError(f"step_length must be a finite number > 0 (the distance moved per frame "
                         f"as a fraction of the free canvas, standard 0.1), got {step_length!r}.")

    images, _ = load_mnist_digits(root)
    start, stop = SPLITS[split]
    rng = np.random.default_rng(SPLIT_SEEDS[split] if seed is None else int(seed))
    indices = rng.integers(start, stop, size=(n_sequences, n_digits))
    positions = bouncing_trajectory(rng, n_frames, step_length, shape=(n_sequences, n_digits))
    offsets = pixel_offsets(positions, size, digit_size)
    digits = resize_digits(images[indices], digit_size)
    videos = render(digits, offsets, size)[:, :, None]
    return (videos, indices) if return_digits else videos


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value}.")
