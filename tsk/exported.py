"""A Forecaster exported for inference: `Forecaster.export(dir)` (or `tsk export MODEL OUT`)
writes it, `tsk.exported.load(dir)` runs it. The loader imports neither tsk's estimators nor
scikit-learn, Lightning or Optuna: torch, numpy, pandas and tsk's data helpers.

The folder:

- `network.pt2`: the network as a `torch.export` program, which torch alone runs:
  `torch.export.load(path).module()(x)` maps scaled float32 windows `x[B, lookback, n_inputs]`
  to scaled forecasts `[B, horizon, n_outputs]` (on the CPU; a `quantiles=` or `distribution=`
  model's point forecast, its median or mean, as `forecaster.json`'s `forecast` says: its
  intervals are not exported). `B` is any batch size, or the
  fixed `batch` that `forecaster.json` names where the network's code specializes on it (the
  loader then pads its last batch).
- `forecaster.json`: what `predict` needs around the network: lookback, horizon, layout, target
  and exogenous columns, the fitted frequencies, the data policies (`missing`, `duplicates`,
  `freq`) and the input columns whose missingness is a flag channel (`flag_columns`), the
  calendar features (`time_freq`, their names: GluonTS's `time_features_from_frequency_str`,
  appended after the exogenous columns, unscaled) and the series of the saved scalers and
  contexts, in the order of the arrays.
- `arrays.npz`: `scaler_mean` and `scaler_scale` (`[series, columns]`, columns as the network's
  inputs are built: targets, exogenous, calendar features) and `context_values`
  (`[series, lookback, columns]`, each series' last `lookback` rows, for `predict()`), and
  with static covariates `static_values` (`[series, features]`, those of `static_series`,
  encoded as `forecaster.json`'s `static` says).

A network that reads covariates known ahead (`futr_exog`, and the calendar features of the
horizon: `futr_from` names their first column) or static ones takes them as keyword inputs,
`module()(x, futr=[B, horizon, k], static=[B, features])`, as `Forecaster`'s network does.

Why `torch.export` and not TorchScript: torch 2.11 deprecates `torch.jit.trace` and
`torch.jit.script` (both warn), and a traced TorchScript module cannot be saved with tsk's
kernels, whose hand-written backward passes are `torch.autograd.Function`s (tracing records them
as Python ops); `torch.export` traces through them to plain ATen ops, and keeps the batch size
symbolic where the network allows. The price is a slower start: `torch.export.load` imports
torch's tracing stack (`torch._dynamo`, `sympy`), which costs about as much again as
`import torch` (`benchmarks/cold_start.py` measures both paths).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tsk.datasets.covariates import (
    StaticCovariates,
    future_covariates,
    static_features,
    with_horizon,
)
from tsk.datasets.frames import (
    ID,
    TIME,
    Schema,
    Series,
    check_fitted_frequency,
    to_series,
    with_forecast_index,
)
from tsk.datasets.scaling import StandardScaler
from tsk.datasets.windows import WindowDataset
from tsk.io import _swap_in as swap_in
from tsk.io import versions

FORMAT, FORMAT_VERSION = "tsk-exported-forecaster", 1
PROGRAM, METADATA, ARRAYS = "network.pt2", "forecaster.json", "arrays.npz"
STATIC_BATCH = 64
"""The batch size of a program whose network cannot take any batch size (its code computes with
the batch size, e.g. mamba's scan sizes its chunks by it)."""
PREDICT_BATCH = 256  # rows per call of a program that takes any batch size (as Forecaster.predict)
TOLERANCE = 1e-5  # how far an exported program's forecast may be from the network's


class ExportError(RuntimeError):
    """A network that `torch.export` cannot trace, or whose program does not forecast as it
    does."""


class ExportedForecaster:
    """A Forecaster's exported network with what its `predict` needs around it (`load` builds
    one). `predict(df)` returns the frame `Forecaster.predict(df)` returns; `network` is the
    `torch.export` program's module (scaled windows in, scaled forecasts out) and `metadata`
    the contents of `forecaster.json`."""

    def __init__(self, metadata: dict[str, Any], arrays: dict[str, np.ndarray],
                 network: nn.Module) -> None:
        self.metadata, self.network = metadata, network
        self.lookback, self.horizon = int(metadata["lookback"]), int(metadata["horizon"])
        self.schema = Schema.from_dict(metadata)
        self.time_freq: str | None = metadata["time_freq"]
        self.batch: int | None = metadata["batch"]
        self.scalers = {uid: StandardScaler(arrays["scaler_mean"][i], arrays["scaler_scale"][i])
                        for i, uid in enumerate(metadata["scaled_series"])}
        self.contexts = [
            Series(c["uid"], pd.DatetimeIndex(pd.to_datetime(c["ds"])), arrays["context_values"][i],
                   c["freq"])
            for i, c in enumerate(metadata["contexts"])
        ]
        self.futr_from: int | None = metadata.get("futr_from")
        self.static = (StaticCovariates.from_dict(metadata["static"]) if metadata.get("static")
                       else None)
        self.static_values = dict(zip(metadata.get("static_series", []),
                                      arrays.get("static_values", []), strict=False))

    @property
    def time_feature_names(self) -> list[str]:
        return list(self.metadata["time_features"])

    def predict(self, df: pd.DataFrame | None = None, *, futr_df: pd.DataFrame | None = None,
                static_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast the `horizon` steps after each series' end: after the data the model was fit
        on when `df` is None, else after each series of `df` (its last `lookback` rows are
        read), in the original scale and the layout of the training data. `futr_df` and
        `static_df` as `Forecaster.predict` takes them."""
        contexts = self.contexts if df is None else [
            Series(s.uid, s.ds[-self.lookback:], s.values[-self.lookback:], s.freq)
            for s in self._series(df)]
        scalers = [self._scaler(s) for s in contexts]
        n_targets = len(self.schema.targets)
        dataset = self._windows(contexts, scalers, futr_df, static_df)
        batch = dataset.__getitems__(range(len(dataset)))
        raw = self.forecast_windows(batch["inputs"], batch.get("futr"), batch.get("static")).numpy()
        if not np.isfinite(raw).all():
            raise FloatingPointError("The model forecast NaN or infinite values; its weights or "
                                     "these inputs are out of range.")
        values = np.concatenate([scaler.inverse_transform(forecast, slice(0, n_targets))
                                 for scaler, forecast in zip(scalers, dataset.side_by_side(raw),
                                                             strict=True)])
        frame = pd.DataFrame(values, columns=list(self.schema.targets))
        return with_forecast_index(frame, contexts, self.horizon, self.schema.layout)

    def forecast_windows(self, windows: torch.Tensor, futr: torch.Tensor | None = None,
                         static: torch.Tensor | None = None) -> torch.Tensor:
        """The network's scaled forecasts `[B, horizon, n_outputs]` of scaled windows
        `[B, lookback, n_inputs]` (with their known-ahead `futr` and `static` covariates, if the
        network reads them), in batches the program takes (the last one padded)."""
        step = self.batch or PREDICT_BATCH
        covariates = {k: v for k, v in (("futr", futr), ("static", static)) if v is not None}
        outputs = []
        with torch.no_grad():
            for start in range(0, len(windows), step):
                rows = len(windows[start: start + step])
                parts = [part[start: start + step] for part in (windows, *covariates.values())]
                if self.batch is not None and rows < self.batch:  # a fixed-size program: pad
                    parts = [torch.cat([p, p[-1:].expand(self.batch - rows, *p.shape[1:])])
                             for p in parts]
                x, *rest = (p.contiguous() for p in parts)
                outputs.append(self.network(x, **dict(zip(covariates, rest, strict=True)))[:rows])
        return torch.cat(outputs)

    def _series(self, df: pd.DataFrame) -> list[Series]:
        """The series of `df`, checked against the fit's columns and frequency, with the fit's
        calendar features (as `Forecaster._series`)."""
        series = to_series(df, self.schema, min_length=self.lookback, **self.metadata["policies"])
        check_fitted_frequency(series, self.metadata["freqs"])
        if not self.time_freq:
            return series
        from tsk.datasets.calendar import with_time_features  # GluonTS: only when the model uses it

        return [with_time_features(s, self.time_freq) for s in series]

    def _windows(self, contexts: list[Series], scalers: list[StandardScaler],
                 futr_df: pd.DataFrame | None = None,
                 static_df: pd.DataFrame | None = None) -> WindowDataset:
        """The network's inputs of `contexts`: scaled, with the fit's missing-value flags, and
        the covariates known over their horizon and static ones (as `Forecaster.predict`)."""
        inputs = [sc.transform(s.values) for sc, s in zip(scalers, contexts, strict=True)]
        horizon = 0
        futures = future_covariates(futr_df, contexts, self.schema.futr_exog, self.horizon,
                                    self.schema.layout, self.metadata["policies"]["missing"])
        if self.futr_from is not None:  # the windows run on over the known horizon
            horizon = self.horizon
            inputs = with_horizon(inputs, contexts, scalers, horizon, len(self.schema.columns),
                                  futures, self.time_freq)
        return WindowDataset(inputs, self.lookback, horizon, len(self.schema.targets),
                             self.metadata["channel_independent"], flags=self.metadata["flag_columns"],
                             futr_from=self.futr_from, all_windows=True,
                             static=static_features(self.static, self.static_values,
                                                    [c.uid for c in contexts], static_df))

    def _scaler(self, series: Series) -> StandardScaler:
        """The fitted scaler of the series, or one fit on its own history (the calendar columns
        unscaled), as `Forecaster._scaler`."""
        if series.uid in self.scalers:
            return self.scalers[series.uid]
        return StandardScaler.fit(series.values, keep_last=len(self.time_feature_names))


def load(path: str | os.PathLike) -> ExportedForecaster:
    """Load a folder written by `Forecaster.export` (see the module docstring)."""
    folder = Path(path)
    for name in (PROGRAM, METADATA, ARRAYS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: {folder} is not a forecaster "
                                    "exported by tsk (model.export(dir) or `tsk export`).")
    metadata = json.loads((folder / METADATA).read_text())
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder} holds format {metadata.get('format')!r} version "
                         f"{metadata.get('format_version')}; this tsk reads {FORMAT!r} version "
                         f"{FORMAT_VERSION}.")
    with np.load(folder / ARRAYS, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    with warnings.catch_warnings():  # torch reads the weights from a read-only buffer, safely
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        program = torch.export.load(folder / PROGRAM)
    return ExportedForecaster(metadata, arrays, program.module())


def write(path: str | os.PathLike, net: nn.Module, metadata: dict[str, Any],
          arrays: dict[str, np.ndarray], reference: pd.DataFrame,
          futr_df: pd.DataFrame | None = None) -> Path:
    """Export `net` and write the folder `load` reads, whole or not at all (`Forecaster.export`
    calls this). The exported forecaster must reproduce `reference` (the model's own
    `predict(futr_df=futr_df)`) to `TOLERANCE`; an `ExportError` says what failed otherwise."""
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    # the model's own context windows: real data to trace and check with
    model = ExportedForecaster({**metadata, "batch": None}, arrays, net)
    dataset = model._windows(model.contexts, [model._scaler(s) for s in model.contexts], futr_df)
    batch = {k: v for k, v in dataset.__getitems__(range(len(dataset))).items() if k != "targets"}
    program, fixed = export_network(net, batch, metadata.get("backbone", "this backbone"))
    metadata["batch"] = fixed
    exported = ExportedForecaster(metadata, arrays, program.module())
    _check_same(exported.predict(futr_df=futr_df), reference, metadata.get("backbone"))
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder: export to a folder path.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.exporting-"))
    try:
        torch.export.save(program, staging / PROGRAM)
        np.savez(staging / ARRAYS, **{key: np.ascontiguousarray(v) for key, v in arrays.items()})
        (staging / METADATA).write_text(json.dumps({**metadata, "versions": versions()}, indent=1))
        swap_in(staging, folder)  # an earlier export there is replaced only once this one is whole
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def export_network(net: nn.Module, batch: dict[str, torch.Tensor],
                   name: str = "this backbone") -> tuple[torch.export.ExportedProgram, int | None]:
    """`net` (a copy, on the CPU, in eval mode) as a `torch.export` program for any batch size,
    else for batches of `STATIC_BATCH`; returns it and its fixed batch size (None: any). It must
    forecast `batch` (scaled `inputs`, and the `futr`/`static` covariates the network reads,
    repeated to the batch sizes it is checked at) as `net` does, to `TOLERANCE`.

    One-element buffers (e.g. S4's stored kernel length) become constants of the program: they
    are configuration the weights were trained with, fixed at inference, and code that reads
    them as Python numbers could not be traced otherwise.
    """
    net = _with_constant_scalars(copy.deepcopy(net).cpu().eval())
    with warnings.catch_warnings():  # nn.LSTM sets its flat weights while traced: harmless here
        warnings.filterwarnings("ignore", message=".*were assigned during export")
        program, fixed, check_rows = _export(net, batch, name)
    x, covariates = _rows(batch, check_rows)
    with torch.no_grad():
        expected, got = net(x, **covariates), program.module()(x, **covariates)
    if not torch.allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE):
        raise ExportError(f"The torch.export program of {name} does not forecast as the network "
                          f"does (largest difference {float((got - expected).abs().max()):.3g}).")
    return program, fixed


def _export(net: nn.Module, batch: dict[str, torch.Tensor],
            name: str) -> tuple[torch.export.ExportedProgram, int | None, int]:
    """The program for any batch size, else for `STATIC_BATCH`; with its fixed batch size and
    the rows to check it with (another size than the one traced)."""
    try:
        size = torch.export.Dim("batch", min=1)
        x, covariates = _rows(batch, 2)
        first = next(iter(inspect.signature(net.forward).parameters))  # the window's argument
        shapes = {first: {0: size}, **{key: {0: size} for key in covariates}}
        program = torch.export.export(net, (x,), covariates, dynamic_shapes=shapes, strict=False)
        return program, None, 3
    except Exception:  # e.g. the code specialized the batch size: a fixed batch instead
        try:
            x, covariates = _rows(batch, STATIC_BATCH)
            program = torch.export.export(net, (x,), covariates, strict=False)
        except Exception as err:
            raise ExportError(f"{name} cannot be exported with torch.export: "
                              f"{type(err).__name__}: {_first_line(err)}") from err
        return program, STATIC_BATCH, STATIC_BATCH


def _with_constant_scalars(net: nn.Module) -> nn.Module:
    """`net` with each one-element buffer a plain tensor attribute (a constant when traced)."""
    for module in net.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.numel() == 1:
                del module._buffers[name]
                object.__setattr__(module, name, buffer)
    return net


def _rows(batch: dict[str, torch.Tensor], n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`n` rows of the batch's inputs and covariates, repeated as needed."""
    rows = torch.arange(n) % len(batch["inputs"])
    x = batch["inputs"][rows].contiguous()
    return x, {key: value[rows].contiguous() for key, value in batch.items() if key != "inputs"}


def _check_same(got: pd.DataFrame, expected: pd.DataFrame, name: str | None) -> None:
    columns: Sequence[str] = [c for c in expected.columns if c not in (ID, TIME)]
    same_keys = got[[c for c in expected.columns if c in (ID, TIME)]].equals(
        expected[[c for c in expected.columns if c in (ID, TIME)]])
    diff = np.abs(got[columns].to_numpy() - expected[columns].to_numpy())
    scale = np.maximum(np.abs(expected[columns].to_numpy()), 1.0)
    if list(got.columns) != list(expected.columns) or not same_keys or not (diff <= TOLERANCE * scale).all():
        raise ExportError(f"The exported forecaster ({name}) does not reproduce the model's "
                          f"predict() (largest difference {float(diff.max()):.3g}): tsk.exported "
                          "and Forecaster.predict have drifted apart.")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else "no message"
