"""Point sets: MNIST digits as 2-D point clouds and ModelNet10/40 shapes as 3-D ones, the
benchmarks of PointNet (Qi et al., CVPR 2017) and PointNet++ (Qi et al., NeurIPS 2017).

Both loaders return `(points, labels)`: a list of float32 arrays, one per shape, and one label per
shape. A list rather than one array because MNIST point sets differ in size: padding or duplicating
points would invent data. Coordinates are returned as computed or read, never re-centred or
rescaled; the point-set classifier normalises each cloud itself.

MNIST split: only the 10,000 official MNIST *test* digits ship with the data, so digits 0-7,999 are
"train" and 8,000-9,999 "test", the same split as `moving_mnist`. The published numbers (PointNet
99.22%, PointNet++ 99.49%) train on the 60,000 MNIST training digits and test on the 10,000 test
digits, so results on this split are not directly comparable to them.

ModelNet comes in two public layouts, told apart by the files present (see `load_modelnet`):
the Princeton meshes (`.off`, sampled here on their surface) and the PointNet++ release
`modelnet40_normal_resampled` (10,000 points with normals per shape, of which the first
`n_points` are taken, as the PointNet++ loader does without farthest-point sampling).
"""

from __future__ import annotations

import os
import re
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsk._names import unknown_name_error
from tsk.datasets.files import DATA_DIR_ENV, data_root
from tsk.datasets.frames import ID
from tsk.datasets.mnist import MNIST_SIZE, SPLITS, load_mnist_digits
from tsk.datasets.sequences import Sequences

POINT_SPLITS = ("train", "test")
MODELNET_VARIANTS = {"modelnet40": 40, "modelnet10": 10}  # variant -> its number of classes
PRINCETON_FOLDERS = {"modelnet40": "ModelNet40", "modelnet10": "ModelNet10"}  # the zips' folders
RESAMPLED_FOLDER = "modelnet40_normal_resampled"  # holds the modelnet10 lists too
POINTCLOUD_DIR = "pointclouds"  # where root=None looks, under the data root
PRINCETON_SOURCE = "https://modelnet.cs.princeton.edu/ (ModelNet40.zip / ModelNet10.zip)"
RESAMPLED_SOURCE = "https://shapenet.cs.stanford.edu/media/modelnet40_normal_resampled.zip"
_ID_SUFFIX = re.compile(r"^(.+)_\d+$")  # "night_stand_0001" -> "night_stand"


# ---- MNIST -------------------------------------------------------------------------------------


def mnist_point_sets(split: str = "train", *, n_points: int = 256, threshold: int = 128,
                     root: str | os.PathLike | None = None,
                     seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """MNIST digits as 2-D point sets: float32 `[n_i, 2]` arrays and int64 labels.

    Every pixel brighter than `threshold` is a point (x = column, y = 27 - row, so y points up),
    scaled to [-1, 1]. A digit with more than `n_points` such pixels keeps `n_points` of them,
    drawn without replacement (kept in raster order) by one generator seeded with (seed, split);
    a digit with fewer keeps them all, so sizes differ: no point is ever duplicated.
    `split`: "train" = digits 0-7,999 of the MNIST test set, "test" = 8,000-9,999 (module
    docstring: this split differs from the published full-MNIST one).
    """
    if not isinstance(split, str) or split not in POINT_SPLITS:
        raise unknown_name_error("MNIST point-set split", split, POINT_SPLITS)
    _check_positive_int("n_points", n_points)
    if not isinstance(threshold, Integral) or isinstance(threshold, bool):
        raise TypeError(f"threshold must be an int in 0..254, got {type(threshold).__name__} "
                        f"{threshold!r}.")
    if not 0 <= threshold <= 254:
        raise ValueError(f"threshold must be in 0..254 (a pixel is a point when its intensity is "
                         f"above it, and 255 is the brightest), got {threshold}.")
    _check_seed(seed)

    images, labels = load_mnist_digits(root)
    start, stop = SPLITS[split]
    rng = np.random.default_rng([int(seed), POINT_SPLITS.index(split)])
    scale = 2.0 / (MNIST_SIZE - 1)
    points = []
    for index in range(start, stop):
        rows, cols = np.nonzero(images[index] > threshold)  # raster order
        if len(rows) == 0:
            raise ValueError(f"MNIST digit {index} has no pixel above threshold={threshold}; use a "
                             f"lower threshold (the default is 128).")
        if len(rows) > n_points:
            keep = np.sort(rng.choice(len(rows), size=n_points, replace=False))
            rows, cols = rows[keep], cols[keep]
        xy = np.stack([cols, (MNIST_SIZE - 1) - rows], axis=1) * scale - 1.0
        points.append(xy.astype(np.float32))
    return points, labels[start:stop].astype(np.int64)


# ---- meshes ------------------------------------------------------------------------------------


def read_off(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh: vertices float64 `[V, 3]` and triangles int64 `[F, 3]`.

    The header `OFF` is followed by `n_vertices n_faces [n_edges]`, on the next line or, as in many
    ModelNet files, glued to it (`OFF490 518 0`). `#` starts a comment; blank lines are skipped.
    Faces `k i0 ... i(k-1)` with k > 3 are split into a fan (i0, ij, ij+1); k < 3, a bad index or a
    truncated file is an error naming the file and line.
    """
    path = Path(path)
    lines = []  # (line number, text) of the lines that hold data
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, raw in enumerate(handle, start=1):
            text = raw.split("#", 1)[0].strip()
            if text:
                lines.append((lineno, text))
    if not lines or not lines[0][1].startswith("OFF"):
        where = f"line {lines[0][0]}" if lines else "the file is empty"
        raise ValueError(f"{path} is not an OFF file: it must start with 'OFF' ({where}).")
    counts_at, counts = lines[0][0], lines[0][1][3:].split()
    body = 1
    if not counts:  # the counts are on their own line
        if len(lines) < 2:
            raise ValueError(f"{path}: the header has no vertex and face counts.")
        counts_at, counts = lines[1]
        counts, body = counts.split(), 2
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}, line {counts_at}: expected 'n_vertices n_faces n_edges', got "
                         f"{' '.join(counts)!r}.") from None
    if n_vertices < 0 or n_faces < 0:
        raise ValueError(f"{path}, line {counts_at}: negative counts {n_vertices} {n_faces}.")
    if len(lines) < body + n_vertices + n_faces:
        raise ValueError(f"{path} is truncated: the header announces {n_vertices} vertices and "
                         f"{n_faces} faces, the file has {len(lines) - body} data lines.")
    vertex_lines = lines[body:body + n_vertices]
    face_lines = lines[body + n_vertices:body + n_vertices + n_faces]
    vertices = _vertices(vertex_lines, path)
    triangles = _triangles(face_lines, n_vertices, path)
    return vertices, triangles


def _vertices(lines: list[tuple[int, str]], path: Path) -> np.ndarray:
    rows = [text.split() for _, text in lines]
    for (lineno, text), row in zip(lines, rows, strict=True):
        if len(row) < 3:
            raise ValueError(f"{path}, line {lineno}: a vertex needs three numbers x y z, got "
                             f"{text!r}.")
    try:  # extra values (colours) after x y z are ignored
        return np.array([row[:3] for row in rows], dtype=np.float64).reshape(-1, 3)
    except ValueError:
        for lineno, text in lines:
            try:
                [float(v) for v in text.split()[:3]]
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: a vertex needs three numbers x y z, "
                                 f"got {text!r}.") from None
        raise


def _triangles(lines: list[tuple[int, str]], n_vertices: int, path: Path) -> np.ndarray:
    rows = [text.split() for _, text in lines]
    if all(len(row) == 4 and row[0] == "3" for row in rows):  # all triangles: the fast path
        try:
            fast = np.array(rows, dtype=np.int64).reshape(-1, 4)[:, 1:]
        except ValueError:
            fast = None  # the loop below names the bad line
        if fast is not None and (not fast.size or (fast.min() >= 0 and fast.max() < n_vertices)):
            return fast
    triangles = []
    for lineno, text in lines:
        tokens = text.split()
        k = _index(tokens[0], path, lineno)
        if k < 3:
            raise ValueError(f"{path}, line {lineno}: a face needs at least 3 vertices, got {k} "
                             f"({text!r}).")
        if len(tokens) < k + 1:
            raise ValueError(f"{path}, line {lineno}: the face announces {k} vertices but lists "
                             f"{len(tokens) - 1}.")
        face = [_index(t, path, lineno) for t in tokens[1:k + 1]]  # extra values: colours
        for i in face:
            if not 0 <= i < n_vertices:
                raise ValueError(f"{path}, line {lineno}: vertex index {i} is outside "
                                 f"0..{n_vertices - 1}.")
        # a fan from the first vertex: exact for the convex polygons of ModelNet
        triangles.extend((face[0], face[j], face[j + 1]) for j in range(1, k - 1))
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


def _index(token: str, path: Path, lineno: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"{path}, line {lineno}: expected an integer, got {token!r}.") from None


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, n_points: int,
                   rng: np.random.Generator | int | None, normals: bool = False) -> np.ndarray:
    """`n_points` points drawn uniformly on a mesh's surface: float32 `[n, 3]`, or `[n, 6]` with
    each point's triangle's unit normal (right-hand rule on its vertex order) when `normals`.

    A triangle is picked with probability proportional to its area, then a point in it with
    barycentric weights (1 - sqrt(u), sqrt(u)(1 - v), sqrt(u) v), u, v ~ U(0, 1): the square root
    makes the density uniform instead of crowding the first vertex. `rng` is a Generator or a
    seed. A mesh of zero total area has no surface to sample: ValueError.
    """
    _check_positive_int("n_points", n_points)
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got shape {vertices.shape}.")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or not np.issubdtype(triangles.dtype,
                                                                             np.integer):
        raise ValueError(f"triangles must be integer [F, 3], got {triangles.dtype} "
                         f"{triangles.shape}.")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise ValueError(f"triangle indices must lie in 0..{len(vertices) - 1}.")
    rng = np.random.default_rng(rng)
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("the mesh has zero total surface area (no triangles, or all degenerate), "
                         "so no point can be sampled on it.")
    chosen = rng.choice(len(triangles), size=n_points, p=double_area / total)
    u, v = rng.random((2, n_points, 1))
    su = np.sqrt(u)
    points = a[chosen] * (1 - su) + b[chosen] * (su * (1 - v)) + c[chosen] * (su * v)
    if normals:
        unit = cross[chosen] / double_area[chosen, None]  # chosen triangles have area > 0
        points = np.concatenate([points, unit], axis=1)
    return points.astype(np.float32)


# ---- ModelNet ----------------------------------------------------------------------------------


def load_modelnet(root: str | os.PathLike | None, variant: str = "modelnet40", *,
                  split: str = "train", n_points: int = 1024, normals: bool = False,
                  seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """ModelNet10/40 shapes as point clouds: float32 `[n_points, 3]` (`[n_points, 6]` with
    normals x y z nx ny nz) and the class names as string labels.

    `root` is the extracted folder, in one of two layouts (detected from the files present):

    - the Princeton meshes (ModelNet40.zip / ModelNet10.zip): `root/<class>/<split>/*.off`; each
      mesh is sampled on its surface (`sample_surface`) with a generator seeded by (seed, the
      file's index in the split), so a call always gives the same points;
    - `modelnet40_normal_resampled` (PointNet++): `root/<variant>_shape_names.txt`,
      `root/<variant>_<split>.txt` listing ids such as `airplane_0001`, and the points in
      `root/airplane/airplane_0001.txt` (`x,y,z,nx,ny,nz` lines); the first `n_points` lines are
      taken, so `seed` is unused. That folder holds the modelnet10 lists too.

    `root=None` looks under `<data root>/pointclouds/` for `ModelNet40` (or `ModelNet10`), then
    `modelnet40_normal_resampled`. Coordinates are left as read (not centred, not scaled to the
    unit sphere): the point-set classifier normalises each cloud.
    """
    if not isinstance(variant, str) or variant not in MODELNET_VARIANTS:
        raise unknown_name_error("ModelNet variant", variant, MODELNET_VARIANTS)
    if not isinstance(split, str) or split not in POINT_SPLITS:
        raise unknown_name_error("ModelNet split", split, POINT_SPLITS)
    _check_positive_int("n_points", n_points)
    _check_seed(seed)
    folder = _modelnet_folder(root, variant)
    if (folder / f"{variant}_shape_names.txt").is_file():
        return _load_resampled(folder, variant, split, n_points, normals)
    classes = _princeton_classes(folder)
    if classes:
        return _load_princeton(folder, classes, variant, split, n_points, normals, seed)
    raise _modelnet_missing(folder, variant, split)


def _modelnet_folder(root: str | os.PathLike | None, variant: str) -> Path:
    if root is not None:
        return Path(root).expanduser()
    base = data_root() / POINTCLOUD_DIR
    candidates = [base / PRINCETON_FOLDERS[variant], base / RESAMPLED_FOLDER]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"ModelNet was not found: root=None looked for {candidates[0]} and {candidates[1]}. "
        f"Download {PRINCETON_SOURCE} or {RESAMPLED_SOURCE}, extract it there (or pass root=, or "
        f"set {DATA_DIR_ENV})."
    )


def _modelnet_missing(folder: Path, variant: str, split: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"No ModelNet data in {folder}. Expected either the Princeton meshes, "
        f"{folder}/<class>/{split}/*.off (from {PRINCETON_SOURCE}), or the PointNet++ release, "
        f"{folder}/{variant}_shape_names.txt with the split lists {folder}/{variant}_train.txt and "
        f"{folder}/{variant}_test.txt and the points in {folder}/<class>/<id>.txt (from "
        f"{RESAMPLED_SOURCE})."
    )


def _princeton_classes(folder: Path) -> list[Path]:
    """Class folders: those holding a train/ or test/ folder (skips __MACOSX and hidden ones)."""
    if not folder.is_dir():
        return []
    return sorted(d for d in folder.iterdir()
                  if d.is_dir() and not d.name.startswith((".", "__"))
                  and any((d / s).is_dir() for s in POINT_SPLITS))


def _load_princeton(folder: Path, classes: list[Path], variant: str, split: str, n_points: int,
                    normals: bool, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    other = next(v for v in MODELNET_VARIANTS if v != variant)
    if len(classes) == MODELNET_VARIANTS[other] != MODELNET_VARIANTS[variant]:
        raise ValueError(f"{folder} holds {len(classes)} classes, i.e. {other}, but "
                         f"variant={variant!r}; pass variant={other!r} (or the right folder).")
    files = [(cls.name, path) for cls in classes for path in sorted((cls / split).glob("*.off"))]
    if not files:
        raise _modelnet_missing(folder, variant, split)
    points, labels = [], []
    for index, (name, path) in enumerate(files):
        vertices, triangles = read_off(path)
        rng = np.random.default_rng([int(seed), index])
        try:
            points.append(sample_surface(vertices, triangles, n_points, rng, normals=normals))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        labels.append(name)
    return points, np.asarray(labels, dtype=str)


def _load_resampled(folder: Path, variant: str, split: str, n_points: int,
                    normals: bool) -> tuple[list[np.ndarray], np.ndarray]:
    names_file = folder / f"{variant}_shape_names.txt"
    split_file = folder / f"{variant}_{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"{names_file} is there but the split list {split_file} is not; "
                                f"re-extract {RESAMPLED_SOURCE}.")
    known = {line.strip() for line in names_file.read_text().splitlines() if line.strip()}
    ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{split_file} lists no shapes.")
    points, labels = [], []
    for shape_id in ids:
        match = _ID_SUFFIX.match(shape_id)
        if match is None:
            raise ValueError(f"{split_file}: the id {shape_id!r} does not end in _<number> "
                             f"(like airplane_0001).")
        name = match.group(1)
        if name not in known:
            raise ValueError(f"{split_file}: the class {name!r} of {shape_id!r} is not in "
                             f"{names_file}.")
        path = folder / name / f"{shape_id}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in {split_file}) does not exist.")
        data = np.loadtxt(path, delimiter=",", dtype=np.float32, max_rows=n_points, ndmin=2)
        if len(data) < n_points:
            raise ValueError(f"{path} has {len(data)} points, fewer than n_points={n_points}.")
        width = 6 if normals else 3
        if data.shape[1] < width:
            raise ValueError(f"{path}: expected x,y,z,nx,ny,nz lines, got {data.shape[1]} columns.")
        points.append(np.ascontiguousarray(data[:, :width]))
        labels.append(name)
    return points, np.asarray(labels, dtype=str)


# ---- checks ------------------------------------------------------------------------------------


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value}.")


def _check_seed(seed: object) -> None:
    if not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")


def as_point_sets(X: object) -> Sequences:
    """Read point sets into `Sequences` (one `[n_i, D + F]` float32 array per cloud), checked.

    X: a list (or tuple) of `[n_i, D + F]` arrays or tensors, clouds of different sizes; one
    `[n, N, D + F]` array of clouds of equal size; or a long frame, one row per point: `unique_id`
    (the cloud) and the coordinate and feature columns, in that order (clouds in order of first
    appearance; labels may then be matched by id). Rows are points, columns coordinates then
    features, the same columns in every cloud. Empty clouds, NaN/inf values and clouds with
    different columns are errors that name the cloud (nothing is dropped or filled)."""
    if isinstance(X, pd.DataFrame):
        return _clouds_of_frame(X)
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim != 3:
            raise ValueError(f"Point sets as one array must be [n_clouds, n_points, columns], got "
                             f"shape {X.shape}; pass clouds of different sizes as a list of "
                             "[n_points, columns] arrays.")
        X = list(X)
    if not isinstance(X, list | tuple | np.ndarray):
        raise TypeError(f"X must be a list of [n_points, columns] arrays (one per cloud), got "
                        f"{type(X).__name__}.")
    if len(X) == 0:
        raise ValueError("X has no point sets.")
    clouds = []
    for i, cloud in enumerate(X):
        if isinstance(cloud, torch.Tensor):
            cloud = cloud.detach().cpu().numpy()
        cloud = np.asarray(cloud)
        if cloud.ndim != 2:
            raise ValueError(f"Point set {i} has shape {cloud.shape}; each must be [n_points, "
                             "columns] (coordinates, then features).")
        if not np.issubdtype(cloud.dtype, np.number) or np.issubdtype(cloud.dtype, np.complexfloating):
            raise TypeError(f"Point set {i} holds {cloud.dtype} values; coordinates must be real "
                            "numbers.")
        if len(cloud) == 0:
            raise ValueError(f"Point set {i} is empty: every cloud needs at least one point.")
        cloud = cloud.astype(np.float32)
        bad = ~np.isfinite(cloud).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(f"Point set {i} has NaN or infinite values in {len(rows)} point(s) "
                             f"(rows {rows[:10].tolist()}); remove or fix those points first.")
        if clouds and cloud.shape[1] != clouds[0].shape[1]:
            raise ValueError(f"Point sets have different numbers of columns: set 0 has "
                             f"{clouds[0].shape[1]}, set {i} has {cloud.shape[1]}; every cloud "
                             "needs the same coordinates and features.")
        clouds.append(cloud)
    return Sequences(clouds, list(range(len(clouds))))


def _clouds_of_frame(frame: pd.DataFrame) -> Sequences:
    if ID not in frame.columns:
        raise ValueError(f"A table of points needs a {ID!r} column naming each point's cloud; "
                         f"it has {list(frame.columns)}.")
    columns = [c for c in frame.columns if c != ID]
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not columns or text:
        raise ValueError(f"The point columns must be numbers (coordinates, then features); "
                         f"{'none given' if not columns else f'not numeric: {text}'}.")
    groups = frame.groupby(ID, sort=False, observed=True)[columns]
    ids = list(groups.groups)
    clouds = as_point_sets([groups.get_group(uid).to_numpy(np.float32) for uid in ids]).values
    return Sequences(clouds, ids, keyed=True)


POINT_FILES = (".npy", ".txt", ".csv")


def read_point_files(folder: str | os.PathLike) -> tuple[list[np.ndarray], list[Path]]:
    """Every point-set file of `folder`, sorted by name: `.npy` arrays `[n, columns]`, or text
    with one point per line (`.txt` and `.csv`, comma- or space-separated, as in
    modelnet40_normal_resampled). Returns the clouds and their paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of point-set files ({', '.join(POINT_FILES)}).")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in POINT_FILES)
    if not files:
        raise FileNotFoundError(f"{folder} holds no point-set files ({', '.join(POINT_FILES)}).")
    clouds = []
    for path in files:
        if path.suffix.lower() == ".npy":
            clouds.append(np.load(path))
        else:
            with open(path) as handle:
                comma = "," in handle.readline()
            clouds.append(np.loadtxt(path, delimiter="," if comma else None, ndmin=2))
    return clouds, files
