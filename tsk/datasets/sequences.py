"""Collections of whole sequences (one per sample, lengths may differ) for classification: read
from arrays, lists or a long frame, checked, and batched without padding artifacts.

X comes as an array `[n, L]` (one channel) or `[n, C, L]`, a list of `[L_i]` or `[C, L_i]`
arrays (lengths may differ; not NaN-padded), or a long DataFrame: `unique_id`, an optional time
column (`ds`, or `position`) that orders each series' rows, and one column per channel. Internally
each sample is a float32 array `[L_i, C]` (time first, as the backbones read it).

Policy, as for forecasting data: NaN/inf, empty series and mixed channel counts are errors that
say where they are (filling or dropping is the user's modelling choice); nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from tsk.datasets.frames import ID, TIME

POSITION = "position"


@dataclass
class Sequences:
    """Samples as `[L_i, C]` float32 arrays, with their ids (a frame's `unique_id`s in order of
    first appearance, else 0..n-1)."""

    values: list[np.ndarray]
    ids: list[Any]
    keyed: bool = False  # the ids are a frame's unique_ids (labels may be matched by them)

    @property
    def n_channels(self) -> int:
        return self.values[0].shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(v) for v in self.values], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.values)


def as_sequences(X: Any) -> Sequences:
    """Read X (see the module docstring) into `Sequences`, checked."""
    if isinstance(X, pd.DataFrame):
        return _from_frame(X)
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray):
        if X.dtype == object:
            X = list(X)
        elif X.ndim in (2, 3):
            if X.shape[0] == 0 or X.shape[-1] == 0:
                raise ValueError(f"X of shape {X.shape} holds no series or no steps.")
            array = _numeric(X, "X")
            array = array[:, None, :] if array.ndim == 2 else array  # [n, C, L]
            values = list(np.ascontiguousarray(array.transpose(0, 2, 1), dtype=np.float32))
            return _checked(Sequences(values, list(range(len(values)))))
        else:
            raise ValueError(f"X as an array must be [n, length] or [n, channels, length], got "
                             f"shape {X.shape}.")
    if isinstance(X, Sequence) and not isinstance(X, str):
        if len(X) == 0:
            raise ValueError("X is empty: no series to read.")
        values = []
        for i, item in enumerate(X):
            item = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
            array = _numeric(item, f"series {i}")
            if array.ndim == 1:
                array = array[None, :]
            if array.ndim != 2:
                raise ValueError(f"Series {i} must be [length] or [channels, length], got shape "
                                 f"{array.shape}.")
            values.append(np.ascontiguousarray(array.T, dtype=np.float32))
        return _checked(Sequences(values, list(range(len(values)))))
    raise TypeError(f"X must be an array [n, L] or [n, C, L], a list of arrays, or a long DataFrame "
                    f"(unique_id, ds or position, channel columns); got {type(X).__name__}.")


def _numeric(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == np.bool_):
        raise TypeError(f"{what} must hold numbers, got dtype {array.dtype}.")
    return array.astype(np.float64, copy=False)


def _from_frame(frame: pd.DataFrame) -> Sequences:
    if ID not in frame.columns:
        raise ValueError(f"A long frame of series needs a {ID!r} column (one id per series), plus "
                         f"an optional {TIME!r} or {POSITION!r} column and one column per channel; "
                         f"got columns {list(frame.columns)}.")
    order = next((c for c in (TIME, POSITION) if c in frame.columns), None)
    channels = [c for c in frame.columns if c not in (ID, order)]
    if not channels:
        raise ValueError(f"The frame has no channel columns besides {ID!r}"
                         f"{f' and {order!r}' if order else ''}.")
    bad = [c for c in channels if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise TypeError(f"Channel columns must be numeric; {bad} are not (columns other than "
                        f"{ID!r} and {TIME!r}/{POSITION!r} are read as channels).")
    ids = list(pd.unique(frame[ID]))  # in order of first appearance
    if order is not None:
        frame = frame.sort_values([ID, order], kind="stable")
        duplicated = frame.duplicated([ID, order])
        if duplicated.any():
            row = frame[duplicated].iloc[0]
            raise ValueError(f"Series {row[ID]!r} has two rows at {order} {row[order]!r}: one row "
                             "per series and step.")
    groups = frame.groupby(ID, sort=False, observed=True)
    values = [np.ascontiguousarray(groups.get_group(uid)[channels].to_numpy(np.float32))
              for uid in ids]
    return _checked(Sequences(values, ids, keyed=True), channels)


def _checked(sequences: Sequences, channels: Sequence[str] | None = None) -> Sequences:
    counts = {v.shape[1] for v in sequences.values}
    if len(counts) > 1:
        first = sequences.values[0].shape[1]
        i = next(i for i, v in enumerate(sequences.values) if v.shape[1] != first)
        raise ValueError(f"All series need the same number of channels: series "
                         f"{sequences.ids[0]!r} has {first}, series {sequences.ids[i]!r} has "
                         f"{sequences.values[i].shape[1]}.")
    for uid, v in zip(sequences.ids, sequences.values, strict=True):
        if len(v) == 0:
            raise ValueError(f"Series {uid!r} is empty: every series needs at least one step.")
        bad = ~np.isfinite(v)
        if bad.any():
            step, channel = np.argwhere(bad)[0]
            name = channels[channel] if channels is not None else channel
            raise ValueError(
                f"Series {uid!r} has {int(bad.sum())} missing or infinite value(s), the first at "
                f"step {step}, channel {name!r}. Fill or cut them first; series of different "
                "lengths go in as a list of arrays (not NaN-padded)."
            )
    return sequences


class SequenceDataset(Dataset):
    """Samples as batch mappings: `{"inputs": [L_i, C], "targets": class index}` (no targets
    when `targets` is None)."""

    def __init__(self, values: Sequence[np.ndarray], targets: np.ndarray | None = None) -> None:
        self.values = [torch.as_tensor(v) for v in values]
        self.targets = None if targets is None else torch.as_tensor(targets)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        sample = {"inputs": self.values[item]}
        if self.targets is not None:
            sample["targets"] = self.targets[item]
        return sample


def pad_collate(samples: Sequence[Mapping[str, torch.Tensor]], **options: Any) -> dict[str, Any]:
    """Join samples of different lengths: inputs right-padded with zeros to `[B, L_max, C]`,
    their true `lengths` `[B]`, targets stacked (padded alike when they are sequences too), and
    `options` as given (what the network also reads). The network masks by `lengths`, so the
    padding changes no sample's output."""
    inputs = [s["inputs"] for s in samples]
    lengths = torch.tensor([len(x) for x in inputs], dtype=torch.long)
    batch = {"inputs": torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True),
             "lengths": lengths}
    if "targets" in samples[0]:
        targets = [s["targets"] for s in samples]
        batch["targets"] = (torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)
                            if targets[0].dim() else torch.stack(targets))
    return {**batch, **options}


def align_labels(y: Any, sequences: Sequences) -> np.ndarray:
    """One label per series as an array, in the order of `sequences`; checked. A dict, or a
    Series for series read from a frame, is matched by id; anything else by position."""
    if y is None:
        raise ValueError("y is required: one label per series.")
    if isinstance(y, dict) or (isinstance(y, pd.Series) and sequences.keyed):
        mapping = y if isinstance(y, dict) else y.to_dict()
        missing = [uid for uid in sequences.ids if uid not in mapping]
        if missing:
            raise ValueError(f"y has no label for series {missing[:10]} (y is matched to the "
                             "series by id).")
        labels = np.asarray([mapping[uid] for uid in sequences.ids])
    else:
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise ValueError(f"y must be one label per series (1-D), got shape {labels.shape}.")
        if len(labels) != len(sequences):
            raise ValueError(f"X has {len(sequences)} series but y has {len(labels)} labels.")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise ValueError(f"y has {int(np.isnan(labels).sum())} missing label(s) (NaN).")
    if labels.dtype == object:
        if any(label is None or (isinstance(label, float) and np.isnan(label)) for label in labels):
            raise ValueError("y has missing labels (None/NaN).")
        kinds = {type(label).__name__ for label in labels}
        if len(kinds) > 1:
            raise TypeError(f"y mixes label types {sorted(kinds)}: use one type (e.g. all strings).")
        labels = labels.astype(str) if kinds == {"str"} else labels
    return labels
