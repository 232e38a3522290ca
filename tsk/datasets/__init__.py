"""Data: loaders for benchmark sets (forecasting CSVs, UCR/UEA classification archives, spoken
digits, Moving MNIST videos, MNIST and ModelNet point sets), audio and OFF mesh reading, surface
sampling, validation, scaling, windowing and batching of variable-length series."""

from pathlib import Path

from tsk._names import unknown_name_error
from tsk.datasets.audio import SpokenDigits, as_waveforms, load_fsdd, read_audio
from tsk.datasets.classification import (
    CLASSIFICATION_NAMES,
    ClassificationData,
    load_classification,
    read_labelled,
    read_ts,
    read_ucr_tsv,
)
from tsk.datasets.custom import ALIASES, KNOWN_FILES, load_csv
from tsk.datasets.ett import ETT_NAMES, load_ett
from tsk.datasets.files import data_root
from tsk.datasets.m4 import M4_GROUPS, M4Data, load_m4
from tsk.datasets.mnist import load_mnist_digits, moving_mnist
from tsk.datasets.points import (
    as_point_sets,
    load_modelnet,
    mnist_point_sets,
    read_off,
    read_point_files,
    sample_surface,
)
from tsk.datasets.split import ForecastSplit


def load_dataset(name: str, root: str | None = None) -> ForecastSplit:
    """Any benchmark set by name: an ETT name, a known CSV name, or a CSV path."""
    if name in ETT_NAMES:
        return load_ett(name, root)
    if name in KNOWN_FILES or name in ALIASES or Path(name).is_file():
        return load_csv(name, root)
    raise unknown_name_error("dataset", name, [*ETT_NAMES, *KNOWN_FILES])


__all__ = ["CLASSIFICATION_NAMES", "ETT_NAMES", "M4_GROUPS", "ClassificationData", "ForecastSplit",
           "M4Data", "SpokenDigits", "as_point_sets", "as_waveforms", "data_root",
           "load_classification", "load_csv", "load_dataset", "load_ett", "load_fsdd", "load_m4",
           "load_mnist_digits", "load_modelnet", "mnist_point_sets", "moving_mnist", "read_audio",
           "read_labelled", "read_off", "read_point_files", "read_ts", "read_ucr_tsv",
           "sample_surface"]
