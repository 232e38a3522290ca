"""Time-series classification sets in the UCR (`.tsv`) and UEA/sktime (`.ts`) archive formats.

The archives ship an official TRAIN/TEST split per dataset; published accuracies are on that split,
so the loader keeps it rather than re-splitting. Everything is read offline from
`<root>/classification/<Name>/<Name>_TRAIN.ts[.gz]` (or `.tsv[.gz]`), same for `_TEST`.

X is a float32 array `[n, channels, length]` when every series of a file has the same length, else a
list of float32 arrays `[channels, length_i]`: padding would invent data, so there is none. Missing
values (`?` / `NaN`) stay NaN so that a model can refuse them loudly instead of training on a guess.
Labels stay the strings written in the file ("-1", "1.0", "Standing"): a classifier encodes them
itself, and converting "1.0" or "01" to numbers would silently merge or rename classes.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tsk._names import unknown_name_error
from tsk.datasets.files import data_root, find_file

CLASSIFICATION_NAMES = (
    "ECG200",
    "GunPoint",
    "ItalyPowerDemand",
    "ArrowHead",
    "BasicMotions",
    "JapaneseVowels",
    "UWaveGestureLibrary",
)
UCR_SOURCE = "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/"
UEA_SOURCE = "https://www.timeseriesclassification.com"
MISSING_TOKENS = ("?", "nan", "NaN", "NAN")

Series = np.ndarray  # float32 [channels, length]
XData = np.ndarray | list[np.ndarray]


@dataclass(frozen=True, eq=False)
class ClassificationData:
    """One archive dataset with its official TRAIN/TEST split.

    `X_*`: float32 `[n, channels, length]`, or a list of `[channels, length_i]` arrays when lengths
    vary. `y_*`: the original label strings. `equal_length`: every series of both splits has one
    length (so X_train and X_test are arrays with the same last axis).
    """

    name: str
    X_train: XData
    y_train: np.ndarray
    X_test: XData
    y_test: np.ndarray
    n_channels: int
    equal_length: bool

    @property
    def classes(self) -> np.ndarray:
        """The sorted distinct labels of both splits (a test label unseen in train still shows up)."""
        return np.unique(np.concatenate([self.y_train, self.y_test]))

    @property
    def lengths_train(self) -> np.ndarray:
        """The length of every training series."""
        return series_lengths(self.X_train)

    @property
    def lengths_test(self) -> np.ndarray:
        """The length of every test series."""
        return series_lengths(self.X_test)

    def __repr__(self) -> str:
        lengths = np.concatenate([self.lengths_train, self.lengths_test])
        span = str(lengths[0]) if self.equal_length else f"{lengths.min()}-{lengths.max()}"
        return (
            f"ClassificationData({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"channels={self.n_channels}, length={span}, classes={len(self.classes)})"
        )


def series_lengths(X: XData) -> np.ndarray:
    """Lengths of the series in an X as returned by the readers (array or list)."""
    if isinstance(X, np.ndarray):
        return np.full(len(X), X.shape[-1], dtype=np.int64)
    return np.array([s.shape[-1] for s in X], dtype=np.int64)


def _open_text(path: Path):
    # newline=None (the default in text mode) turns the CRLF of some archive files into \n
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _numbers(tokens: list[str], path: Path, lineno: int) -> np.ndarray:
    values = np.empty(len(tokens), dtype=np.float64)
    for i, token in enumerate(tokens):
        token = token.strip()
        if token in MISSING_TOKENS:
            values[i] = np.nan
            continue
        try:
            values[i] = float(token)
        except ValueError:
            raise ValueError(
                f"{path}, line {lineno}: value {i + 1} is not a number: {token!r}"
            ) from None
    return values


def _stack(series: list[np.ndarray]) -> XData:
    if series and len({s.shape for s in series}) == 1:
        return np.stack(series).astype(np.float32, copy=False)
    return series


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with _open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            yield lineno, line.strip()


def read_ucr_tsv(path: str | os.PathLike, strip_trailing_nan: bool = True) -> tuple[XData, np.ndarray]:
    """Read a UCR 2018 `.tsv` (or `.tsv.gz`): label in column 0, then tab-separated values.

    The UCR archive pads its variable-length sets with NaN at the end of each row; with
    `strip_trailing_nan` (the default) that run is cut off, so such sets come back as a list of
    series of their true length. NaN inside a series is a missing value and stays.
    Returns `(X, y)`: X univariate `[n, 1, length]` (or a list of `[1, length_i]`), y label strings.
    """
    path = Path(path)
    series, labels = [], []
    for lineno, line in _lines(path):
        if not line or line.startswith("#"):
            continue
        # the 2018 archive uses tabs; older copies used commas or spaces
        tokens = line.split("\t") if "\t" in line else line.replace(",", " ").split()
        if len(tokens) < 2:
            raise ValueError(f"{path}, line {lineno}: expected a label and at least one value")
        values = _numbers(tokens[1:], path, lineno)
        if strip_trailing_nan:
            keep = np.flatnonzero(~np.isnan(values))
            values = values[: keep[-1] + 1] if len(keep) else values[:0]
            if len(values) == 0:
                raise ValueError(f"{path}, line {lineno}: the series has no values (all NaN)")
        labels.append(tokens[0].strip())
        series.append(values.astype(np.float32)[None, :])
    if not series:
        raise ValueError(f"{path}: no series found")
    return _stack(series), np.asarray(labels, dtype=str)


def _flag(value: str, key: str, path: Path, lineno: int) -> bool:
    word = value.split()[0].lower() if value.split() else ""
    if word not in ("true", "false"):
        raise ValueError(f"{path}, line {lineno}: @{key} must be true or false, got {value!r}")
    return word == "true"


def read_ts(path: str | os.PathLike) -> tuple[XData, np.ndarray | None]:
    """Read a UEA/sktime `.ts` (or `.ts.gz`) file.

    Header lines `@key value` up to `@data` (keys case-insensitive), `#` comment lines anywhere,
    then one series per line: channels separated by `:`, values by `,`, the label last when
    `@classLabel true` (or `@targetLabel true`; a file that declares neither is taken as labelled).
    `?` or `NaN` is a missing value and stays NaN. Every series must have the same channel count
    (and match `@dimensions` / `@univariate`); `@classLabel true a b c` restricts the labels;
    `@equalLength true` is checked. Errors name the file and line.
    Returns `(X, y)`: X float32 `[n, channels, length]` or a list of `[channels, length_i]`
    arrays; y the label strings, or None for an unlabelled file.
    """
    path = Path(path)
    header: dict[str, str] = {}
    labelled, class_labels = True, None
    dimensions, equal_length = None, None
    in_data = False
    first_channels_line = None
    series, labels = [], []
    for lineno, line in _lines(path):
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{path}, line {lineno}: data before the @data line")
            key, _, value = line[1:].partition(" ")
            key, value = key.lower(), value.strip()
            header[key] = value
            if key == "data":
                in_data = True
            elif key == "timestamps" and _flag(value, key, path, lineno):
                raise ValueError(f"{path}, line {lineno}: "
                                 "@timeStamps true (timestamped values) is not supported")
            elif key in ("classlabel", "targetlabel"):
                labelled = _flag(value, key, path, lineno)
                if key == "classlabel" and labelled:
                    class_labels = set(value.split()[1:]) or None
            elif key == "univariate" and _flag(value, key, path, lineno):
                dimensions = 1
            elif key == "dimensions":
                try:
                    dimensions = int(value)
                except ValueError:
                    raise ValueError(f"{path}, line {lineno}: @dimensions must be an integer") from None
            elif key == "equallength":
                equal_length = _flag(value, key, path, lineno)
            continue
        if line.startswith("@"):
            raise ValueError(f"{path}, line {lineno}: header line after @data")
        parts = line.split(":")
        if labelled:
            if len(parts) < 2:
                raise ValueError(f"{path}, line {lineno}: expected channels and a label separated by ':'")
            label = parts.pop().strip()
            if not label:
                raise ValueError(f"{path}, line {lineno}: empty label")
            if class_labels is not None and label not in class_labels:
                raise ValueError(
                    f"{path}, line {lineno}: label {label!r} is not among the @classLabel values "
                    f"{sorted(class_labels)}"
                )
            labels.append(label)
        if first_channels_line is None:
            first_channels_line = lineno
            if dimensions is not None and len(parts) != dimensions:
                raise ValueError(
                    f"{path}, line {lineno}: {len(parts)} channels, but the header declares {dimensions}"
                )
            dimensions = len(parts)
        elif len(parts) != dimensions:
            raise ValueError(
                f"{path}, line {lineno}: {len(parts)} channels, expected {dimensions} "
                f"(as on line {first_channels_line})"
            )
        channels = [_numbers(part.split(","), path, lineno) for part in parts]
        if len({len(c) for c in channels}) != 1:
            raise ValueError(
                f"{path}, line {lineno}: channels have different lengths {[len(c) for c in channels]}"
            )
        if equal_length and series and len(channels[0]) != series[0].shape[1]:
            raise ValueError(
                f"{path}, line {lineno}: length {len(channels[0])}, but @equalLength true and the first "
                f"series has length {series[0].shape[1]}"
            )
        series.append(np.stack(channels).astype(np.float32))
    if not in_data:
        raise ValueError(f"{path}: no @data line")
    if not series:
        raise ValueError(f"{path}: no series after @data")
    return _stack(series), (np.asarray(labels, dtype=str) if labelled else None)


def _read_split(path: Path) -> tuple[XData, np.ndarray]:
    if path.name.endswith((".tsv", ".tsv.gz")):
        return read_ucr_tsv(path)
    X, y = read_ts(path)
    if y is None:
        raise ValueError(f"{path}: the file has no class labels (@classLabel false)")
    return X, y


def load_classification(name: str, root: str | os.PathLike | None = None) -> ClassificationData:
    """Load a UCR/UEA classification set with its archive TRAIN/TEST split, offline.

    Looks in `<root>/classification/<name>/` (`root` or `$TSK_DATA_DIR`), preferring `.ts[.gz]`
    over `.tsv[.gz]`. Any dataset in that folder loads; a missing one of `CLASSIFICATION_NAMES`
    raises FileNotFoundError naming the paths tried and where to download it.
    """
    safe = bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")
    folder = data_root(root) / "classification" / name
    if not safe or (name not in CLASSIFICATION_NAMES and not folder.is_dir()):
        base = data_root(root) / "classification"
        present = [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
        raise unknown_name_error("classification dataset", name, {*CLASSIFICATION_NAMES, *present})
    source = (
        f"{UEA_SOURCE}/description.php?Dataset={name} (UEA/UCR repository, .ts) or the UCR archive "
        f"{UCR_SOURCE} (.tsv)"
    )
    X, y = {}, {}
    for split in ("TRAIN", "TEST"):
        stem = f"classification/{name}/{name}_{split}"
        path = find_file(root, [f"{stem}.ts", f"{stem}.tsv"], what=f"{name} {split} split", source=source)
        X[split], y[split] = _read_split(path)
    channels = {X[s].shape[1] if isinstance(X[s], np.ndarray) else X[s][0].shape[0] for s in X}
    if len(channels) != 1:
        raise ValueError(f"{name}: TRAIN and TEST have different channel counts {sorted(channels)}")
    lengths = np.concatenate([series_lengths(X["TRAIN"]), series_lengths(X["TEST"])])
    arrays = isinstance(X["TRAIN"], np.ndarray) and isinstance(X["TEST"], np.ndarray)
    equal = arrays and len(set(lengths)) == 1
    return ClassificationData(
        name, X["TRAIN"], y["TRAIN"], X["TEST"], y["TEST"], n_channels=channels.pop(), equal_length=equal
    )


LABEL = "label"


def read_labelled(path: str | os.PathLike, label_column: str = LABEL
                  ) -> tuple[XData | pd.DataFrame, np.ndarray | pd.Series | None]:
    """Series and their labels from one file, for `Classifier` and the command line: an archive
    file (`.ts`, `.tsv`, optionally gzipped) or a long table (CSV/Parquet: `unique_id`, an
    optional `ds`/`position` column, one column per channel, and `label_column`, the same in
    every row of a series). Returns `(X, y)`; y is None when the file has no labels (X, as the
    frame's series, in order of first appearance)."""
    from tsk.datasets.tables import read_table

    path = Path(path)
    name = path.name.lower()
    if name.endswith((".ts", ".ts.gz")):
        return read_ts(path)
    if name.endswith((".tsv", ".tsv.gz")):
        return read_ucr_tsv(path)
    frame = read_table(path)
    if label_column not in frame.columns:
        return frame, None
    ids = frame["unique_id"] if "unique_id" in frame.columns else None
    if ids is None:
        raise ValueError(f"{path}: a table of series needs a 'unique_id' column (one id per series).")
    per_series = frame.groupby("unique_id", sort=False, observed=True)[label_column]
    mixed = per_series.nunique(dropna=False)
    if (mixed > 1).any():
        raise ValueError(f"{path}: series {mixed[mixed > 1].index[0]!r} has several labels in "
                         f"column {label_column!r}; a series has one label.")
    return frame.drop(columns=[label_column]), per_series.first()
