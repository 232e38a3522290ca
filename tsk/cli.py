"""The `tsk` command: forecast, fit, predict (batch, streaming), backtest, export, classify,
enhance, tune and backbones.

Errors print one line and exit non-zero; `--debug` shows the traceback. Heavy imports (pandas,
torch, Lightning) happen inside the commands, so `tsk --help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tsk._extras import require

if TYPE_CHECKING:  # pandas and torch load only inside the commands that use them
    import pandas as pd

EXIT_ERROR, EXIT_USAGE = 1, 2


# ---- commands ----------------------------------------------------------------------------
def cmd_backbones(args: argparse.Namespace) -> int:
    """List the backbones (from their modules' source: no torch to import, so it answers at once)."""
    from tsk.backbones.catalogue import catalogue

    entries = catalogue()
    width = max(len(name) for name in entries)
    for name, (summary, paper) in entries.items():
        print(f"{name:<{width}}  {summary}" + (f"  [{paper}]" if paper else ""))
    return 0


def _forecaster(args: argparse.Namespace) -> Any:
    """The Forecaster the options describe, checked before any data is read. `--level` asks a
    `--quantiles` / `--distribution` model for its own intervals, any other model for conformal
    ones (it is then fit with conformal calibration)."""
    from tsk import Forecaster

    level = getattr(args, "level", None)
    probabilistic = args.quantiles is not None or args.distribution is not None
    model = Forecaster(
        backbone=args.backbone, horizon=args.horizon, lookback=args.lookback,
        channel_independent=False if args.channel_mixing else None,
        exogenous=args.exogenous or None, futr_exog=args.futr_exog or None,
        time_features=args.time_features, instance_norm=args.instance_norm,
        ridge_init=args.ridge_init, d_model=args.d_model, n_layers=args.n_layers,
        conformal=bool(level) and not probabilistic,
        quantiles=args.quantiles, distribution=args.distribution,
        missing=args.missing, duplicates=args.duplicates, freq=args.freq,
        max_epochs=args.max_epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, learning_rate=args.learning_rate, random_state=args.seed,
        accelerator=args.accelerator, enable_progress_bar=not args.no_progress,
        verbose=args.verbose,
    )
    # a bad option (--quantiles with --distribution, a --level the quantile grid lacks) fails
    # now, not after reading the data or, for a --level, after training
    model.check_intervals(level)
    return model


def _covariate_tables(args: argparse.Namespace) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The tables of --futr-data and --static-data (None where not given)."""
    from tsk.datasets.tables import read_table

    futr_data, static_data = getattr(args, "futr_data", None), getattr(args, "static_data", None)
    return (None if futr_data is None else read_table(futr_data),
            None if static_data is None else read_table(static_data))


def _check_futr_options(args: argparse.Namespace) -> None:
    """`tsk forecast` writes the forecast after the data's end: with --futr-exog it needs their
    future values (--futr-data), and --futr-data means nothing without --futr-exog. Said before
    the fit, not after it."""
    if args.futr_exog and args.futr_data is None:
        raise ValueError(f"--futr-exog {' '.join(args.futr_exog)} needs --futr-data FILE: the "
                         "forecast after the data's end reads those covariates over its "
                         f"{args.horizon} steps (a table of unique_id, ds and "
                         f"{', '.join(args.futr_exog)}).")
    if args.futr_data is not None and not args.futr_exog:
        raise ValueError("--futr-data gives the future values of covariates known ahead: name "
                         "its columns with --futr-exog.")


def cmd_forecast(args: argparse.Namespace) -> int:
    """Fit, evaluate on held-out data, print metrics, write the forecast after the data's end.
    --level fits with conformal calibration, reports the intervals' coverage on the held-out
    data and writes them beside the forecast."""
    from tsk.datasets import load_csv, load_dataset
    from tsk.datasets.tables import read_table, write_table

    model, checkpoints = _forecaster(args), args.checkpoint_dir
    _check_futr_options(args)
    futr, static = _covariate_tables(args)
    # the held-out rows hold their own covariates; the forecast after the data's end reads --futr-data
    scoring = {"baselines": True, "level": args.level, "static_df": static}
    forecasting = {"level": args.level, "quantiles": args.quantiles, "futr_df": futr,
                   "static_df": static}
    if args.dataset:
        split = load_dataset(args.dataset, args.data_dir)
        lookback = model.resolve_lookback(split.train())
        model.fit(split.train(), val_df=split.validation(lookback), static_df=static,
                  checkpoint_dir=checkpoints)
        test = split.test(lookback)
        metrics = model.evaluate(test, **scoring)
        forecast = model.predict(test, **forecasting)
        name = split.name
    else:
        frame = read_table(args.data)
        if "unique_id" in frame.columns:  # long format: the last `horizon` rows of each series test
            frame = frame.sort_values(["unique_id", "ds"], kind="stable")
            from_end = frame.groupby("unique_id", observed=True).cumcount(ascending=False)
            model.fit(frame[~(from_end < args.horizon)], static_df=static,
                      checkpoint_dir=checkpoints)
            keep = from_end < args.horizon + model.lookback_
            metrics = model.evaluate(frame[keep], **scoring)
            forecast = model.predict(frame, **forecasting)
        else:
            split = load_csv(args.data)
            lookback = model.resolve_lookback(split.train())
            model.fit(split.train(), val_df=split.validation(lookback), static_df=static,
                      checkpoint_dir=checkpoints)
            test = split.test(lookback)
            metrics = model.evaluate(test, **scoring)
            forecast = model.predict(test, **forecasting)
        name = Path(args.data).name
    summary = model.fit_summary_
    report = {"data": name, "backbone": args.backbone, "horizon": args.horizon,
              "lookback": model.lookback_, **metrics, "start_kept": summary.start_kept,
              "epochs": summary.epochs,
              "train_seconds": round(summary.train_seconds, 2)}
    print(json.dumps(report, indent=2))
    write_table(forecast, args.out)
    print(f"Wrote the {args.horizon}-step forecast to {args.out}")
    if args.save_model:
        model.save(args.save_model)
        print(f"Saved the model to {args.save_model}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit on all of the data (the last part of each series validates) and save the model.
    --level calibrates conformal intervals on the validation windows and checks that those levels
    can be drawn from them (`tsk predict --level` then writes them)."""
    from tsk.datasets import load_dataset
    from tsk.datasets.tables import read_table

    model = _forecaster(args)
    _, static = _covariate_tables(args)
    frame = load_dataset(args.dataset, args.data_dir).frame if args.dataset else read_table(args.data)
    model.fit(frame, static_df=static, checkpoint_dir=args.checkpoint_dir)
    model.save(args.out)
    summary = model.fit_summary_
    baselines = ", ".join(f"{name.replace('_', ' ')} {loss:.4f}"
                          for name, loss in summary.baselines.items())
    print(f"Saved the model to {args.out} (best validation loss {summary.best_val_loss:.4f}"
          f"{'' if not baselines else f'; {baselines}'}; {summary.epochs} epochs"
          f"{'; the linear start was kept' if summary.start_kept else ''})")
    if args.level:
        _check_intervals(model, args.level, args.out)
    return 0


def _check_intervals(model: Any, level: Sequence[float], saved: str) -> None:
    """Say whether the saved `model` can give intervals at `level`: a level that needs more
    calibration windows than its fit had fails now, not at the first `tsk predict --level`.
    (Checked as `predict` checks it, without forecasting: a model with covariates known ahead
    would need their future values.)"""
    from tsk.conformal import check_levels, level_name

    names = [level_name(lv) for lv in check_levels(level)]
    probabilistic = model.quantiles is not None or model.distribution is not None
    try:
        model.check_intervals(level)  # enough calibration windows for each level
    except ValueError as err:
        raise ValueError(f"The model is saved to {saved}, but it gives no {', '.join(names)}% "
                         f"intervals: {err}") from err
    if probabilistic:
        kind = "quantiles" if model.quantiles is not None else f"{model.distribution} distribution"
        print(f"Intervals at {', '.join(names)}% from the model's {kind}: `tsk predict --level "
              f"{' '.join(names)}` writes them")
        return
    scores = getattr(model, "conformal_scores_", None)
    windows = f", calibrated on {len(scores)} validation windows" if scores is not None else ""
    print(f"Conformal intervals at {', '.join(names)}%{windows}: `tsk predict --level "
          f"{' '.join(names)}` writes them")


def cmd_backtest(args: argparse.Namespace) -> int:
    """Backtest a forecaster as Nixtla's cross-validation does: fit on each series up to its
    first forecast origin (cutoff; or again every --refit windows), forecast the horizon after
    every cutoff, print the errors (in the data's units) overall and per cutoff, write the
    forecasts beside the actual values. --level adds conformal intervals and their coverage."""
    from tsk.datasets import load_dataset
    from tsk.datasets.tables import read_table, write_table

    model = _forecaster(args)
    _, static = _covariate_tables(args)
    if args.dataset:
        frame, name = load_dataset(args.dataset, args.data_dir).frame, args.dataset
    else:
        frame, name = read_table(args.data), Path(args.data).name
    backtest = model.cross_validation(frame, n_windows=args.n_windows, step_size=args.step_size,
                                      refit=args.refit or False, level=args.level,
                                      quantiles=args.quantiles, static_df=static)
    report = {"data": name, "backbone": args.backbone, "horizon": args.horizon,
              "n_windows": args.n_windows, "step_size": args.step_size or args.horizon,
              "refit": args.refit, **_backtest_summary(backtest, args.backbone, args.level)}
    print(json.dumps(report, indent=2))
    write_table(backtest, args.out)
    print(f"Wrote {len(backtest)} forecasts ({args.n_windows} windows) to {args.out}")
    return 0


def _backtest_summary(backtest: pd.DataFrame, backbone: str,
                      level: Sequence[float] | None) -> dict[str, Any]:
    """MSE, MAE (and each level's coverage) of a `cross_validation` frame over its observed
    actual values: overall, and per cutoff (`per_cutoff`)."""
    import numpy as np

    from tsk.conformal import check_levels, level_name
    from tsk.metrics import coverage, mae, mse

    if "unique_id" in backtest.columns:  # long: `y` and the backbone's column
        pairs = [("y", backbone)]
    else:  # wide: each channel and `<backbone>-<channel>`
        prefix = f"{backbone}-"
        pairs = [(c[len(prefix):], c) for c in backtest.columns
                 if c.startswith(prefix) and c[len(prefix):] in backtest.columns]
    levels = check_levels(level) if level else []

    def scores(rows: pd.DataFrame) -> dict[str, Any]:
        def joined(suffix: str = "") -> np.ndarray:
            return np.concatenate([rows[f"{forecast}{suffix}"].to_numpy(np.float64)
                                   for _, forecast in pairs])

        actual = np.concatenate([rows[a].to_numpy(np.float64) for a, _ in pairs])
        seen = ~np.isnan(actual)
        if not seen.any():
            return {"n": 0}
        forecast = joined()[seen]
        result = {"mse": mse(actual[seen], forecast), "mae": mae(actual[seen], forecast)}
        for lv in levels:
            name = level_name(lv)
            result[f"coverage_{name}"] = coverage(actual[seen], joined(f"-lo-{name}")[seen],
                                                  joined(f"-hi-{name}")[seen])
        return {**result, "n": int(seen.sum())}

    per_cutoff = [{"cutoff": str(cutoff), **scores(rows)}
                  for cutoff, rows in backtest.groupby("cutoff", sort=True)]
    return {**scores(backtest), "per_cutoff": per_cutoff}


def _classifier(args: argparse.Namespace) -> Any:
    from tsk import Classifier

    training = {name: getattr(args, name)
                for name in ("max_epochs", "max_steps", "batch_size", "learning_rate")
                if getattr(args, name) is not None}  # unset: the Classifier's own defaults
    return Classifier(
        backbone=args.backbone, d_model=args.d_model, n_layers=args.n_layers,
        pooling=args.pooling, bidirectional=args.bidirectional, patch_len=args.patch_len,
        random_state=args.seed, accelerator=args.accelerator, enable_progress_bar=not args.no_progress,
        verbose=args.verbose, **training,
    )


def _class_predictions(model: Any, X: Any) -> pd.DataFrame:
    """One row per series: its id, the predicted label and each class's probability."""
    import pandas as pd

    proba = model.predict_proba(X)
    frame = pd.DataFrame({"unique_id": _series_ids(X), "label": model.classes_[proba.argmax(1)]})
    for i, label in enumerate(model.classes_):
        frame[f"proba_{label}"] = proba[:, i]
    return frame


def cmd_classify(args: argparse.Namespace) -> int:
    """Fit a classifier, print its test metrics as JSON, write the test predictions."""
    import pandas as pd

    from tsk.datasets import load_classification, read_labelled
    from tsk.datasets.tables import write_table

    if args.dataset:
        data = load_classification(args.dataset, args.data_dir)
        (X, y), (X_test, y_test), name = (data.X_train, data.y_train), (data.X_test, data.y_test), data.name
    else:
        (X, y), (X_test, y_test) = read_labelled(args.train), read_labelled(args.test)
        if y is None:
            raise ValueError(f"{args.train} has no labels (a .ts/.tsv label, or a 'label' column).")
        name = Path(args.train).name
    model = _classifier(args).fit(X, y, checkpoint_dir=args.checkpoint_dir)
    summary = model.fit_summary_
    report = {"data": name, "backbone": args.backbone, "n_train": len(_series_ids(X)),
              "epochs": summary.epochs, "train_seconds": round(summary.train_seconds, 2)}
    if y_test is not None:
        report = {**report, **model.evaluate(X_test, y_test)}
    print(json.dumps(report, indent=2))
    predictions = _class_predictions(model, X_test)
    if y_test is not None:
        predictions.insert(1, "true_label", y_test.reindex(predictions["unique_id"]).to_numpy()
                           if isinstance(y_test, pd.Series) else y_test)
    write_table(predictions, args.out)
    print(f"Wrote {len(predictions)} predictions to {args.out}")
    if args.save_model:
        model.save(args.save_model)
        print(f"Saved the model to {args.save_model}")
    return 0


def _series_ids(X: Any) -> list:
    """The series of X (arrays, lists or a long frame), one entry each."""
    import pandas as pd

    return list(pd.unique(X["unique_id"])) if isinstance(X, pd.DataFrame) else list(range(len(X)))


def cmd_predict(args: argparse.Namespace) -> int:
    """Forecast every series of a (possibly large) file, streaming it in chunks (--level adds
    the interval columns of a forecaster fit with conformal calibration or of a probabilistic
    one, --quantiles a probabilistic one's quantile columns; --futr-data gives the covariates
    known ahead over the horizon, --static-data the static ones); or, with a saved
    classifier, label every series of a file (labels and class probabilities out), or with a
    speech classifier every audio file of a folder; or, with a video predictor, continue every
    video of a .npy file by --n-frames frames."""
    from sklearn.base import is_classifier
    from tqdm.auto import tqdm

    import tsk
    from tsk.datasets.tables import PartsWriter, check_grouped, iter_table, read_table, write_table

    model = tsk.load(args.model)
    asked = [option for option, value in (("--level", args.level), ("--quantiles", args.quantiles),
                                          ("--futr-data", args.futr_data),
                                          ("--static-data", args.static_data)) if value is not None]
    if asked and not isinstance(model, tsk.Forecaster):
        raise ValueError(f"{', '.join(asked)}: options of a forecaster's predict, but {args.model} "
                         f"holds a {type(model).__name__}.")
    if isinstance(model, tsk.SpeechEnhancer):
        raise ValueError(f"{args.model} holds a SpeechEnhancer: enhance audio with "
                         "`tsk enhance --model DIR IN OUT`.")
    if isinstance(model, tsk.VideoPredictor):
        return _predict_videos(model, args)
    if isinstance(model, tsk.SpeechClassifier):
        from tsk.datasets.audio import audio_files

        files = audio_files(args.data)
        predictions = _class_predictions(model, files)
        predictions["unique_id"] = [str(f) for f in files]
        write_table(predictions.rename(columns={"unique_id": "file"}), args.out)
        print(f"Wrote labels for {len(predictions)} clips to {args.out}")
        return 0
    if isinstance(model, tsk.PointCloudClassifier) and Path(args.data).is_dir():
        from tsk.datasets.points import read_point_files

        clouds, files = read_point_files(args.data)
        predictions = _class_predictions(model, clouds)
        predictions["unique_id"] = [str(f) for f in files]
        write_table(predictions.rename(columns={"unique_id": "file"}), args.out)
        print(f"Wrote labels for {len(predictions)} point sets to {args.out}")
        return 0
    if is_classifier(model):
        from tsk.datasets import read_labelled

        X, _ = read_labelled(args.data)
        predictions = _class_predictions(model, X)
        write_table(predictions, args.out)
        print(f"Wrote labels for {len(predictions)} series to {args.out}")
        return 0
    args.chunk_rows = args.chunk_rows or 100_000
    futr_exog = list(model.schema_.futr_exog)
    if futr_exog and args.futr_data is None:  # before a pass over the whole file
        keys = "unique_id, ds" if model.schema_.layout == "long" else "ds"
        raise ValueError(f"{args.model} reads covariates known ahead (futr_exog={futr_exog}): "
                         f"pass --futr-data FILE with {keys} and {', '.join(futr_exog)} over the "
                         f"{model.horizon} steps after each series' end.")
    futr, static = _covariate_tables(args)  # read once, whatever the number of chunks
    options = {"level": args.level, "quantiles": args.quantiles}
    if model.schema_.layout == "wide":  # one multivariate series: read it whole
        write_table(model.predict(read_table(args.data), futr_df=futr, static_df=static,
                                  **options), args.out)
        print(f"Wrote the forecast to {args.out}")
        return 0
    key = {**_file_key(args.data), "model": str(Path(args.model).resolve()),
           "chunk_rows": args.chunk_rows}
    # other columns or inputs: the parts of a run without them do not resume it (and a run
    # without them keeps the key of the runs before these options)
    for name in ("level", "quantiles"):
        if getattr(args, name) is not None:
            key[name] = getattr(args, name)
    for name in ("futr_data", "static_data"):
        if getattr(args, name) is not None:
            key[name] = _file_key(getattr(args, name))
    writer = PartsWriter(args.out, key, resume=args.resume)
    total = check_grouped(args.data, args.chunk_rows)
    futr_rows, static_rows = _rows_by_series(futr), _rows_by_series(static)
    n_series = 0
    with tqdm(total=total, unit="rows", disable=args.no_progress, desc="predict") as bar:
        groups = _complete_series(iter_table(args.data, args.chunk_rows))
        for index, group in enumerate(groups):
            if index >= writer.parts_done:  # parts written by the interrupted run are kept
                writer.write(model.predict(group, futr_df=futr_rows(group),
                                           static_df=static_rows(group), **options))
            n_series += group["unique_id"].nunique()
            bar.update(len(group))
    writer.finish()
    print(f"Wrote forecasts for {n_series} series to {args.out}")
    return 0


def _file_key(path: str) -> dict[str, Any]:
    """What tells a file's version apart in a resume key: its full path, size and time."""
    source = Path(path)
    return {"data": str(source.resolve()), "size": source.stat().st_size,
            "modified": source.stat().st_mtime_ns}


def _rows_by_series(table: pd.DataFrame | None) -> Any:
    """A function of a chunk of series giving the rows of `table` (None: None) that belong to
    them. `predict` reads only its series' rows of futr_df and static_df, so a chunk gets the
    same forecast from these as from the whole table, without indexing all of it again."""
    import numpy as np

    if table is None:
        return lambda chunk: None
    if "unique_id" not in table.columns:  # let predict say what the table lacks
        return lambda chunk: table
    ids = table["unique_id"].astype(str)
    positions = ids.groupby(ids, sort=False).indices

    def rows(chunk: pd.DataFrame) -> pd.DataFrame:
        found = [positions[uid] for uid in chunk["unique_id"].astype(str).unique()
                 if uid in positions]
        return table.iloc[np.sort(np.concatenate(found)) if found else []]

    return rows


def _predict_videos(model: Any, args: argparse.Namespace) -> int:
    """Continue the videos of a .npy file `[n, T, C, H, W]` by `--n-frames` frames into a .npy
    file `[n, n_frames, C, H, W]`, `--chunk-rows` videos at a time (the input is memory-mapped,
    the output written beside its path and moved into place only when complete)."""
    import numpy as np

    if args.n_frames is None:
        raise ValueError("--n-frames is needed: how many frames to predict after each video.")
    for name in ("data", "out"):
        if Path(getattr(args, name)).suffix != ".npy":
            raise ValueError(f"--{name} must be a .npy file of videos [n, T, C, H, W] for a "
                             f"VideoPredictor, got {getattr(args, name)}.")
    videos = np.load(args.data, mmap_mode="r")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial.npy")
    try:
        result = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                           shape=(len(videos), args.n_frames, *videos.shape[2:]))
        per_chunk = args.chunk_rows or 64
        for start in range(0, len(videos), per_chunk):
            chunk = np.asarray(videos[start: start + per_chunk])
            result[start: start + len(chunk)] = model.predict(chunk, args.n_frames)
        result.flush()
        del result
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    print(f"Wrote {args.n_frames} predicted frames for {len(videos)} videos to {args.out}")
    return 0


def cmd_enhance(args: argparse.Namespace) -> int:
    """Enhance an audio file, or every audio file of a folder into another folder, with a saved
    SpeechEnhancer (each output written whole or not at all)."""
    from tqdm.auto import tqdm

    import tsk
    from tsk.datasets.audio import audio_files

    model = tsk.load(args.model)
    if not isinstance(model, tsk.SpeechEnhancer):
        raise ValueError(f"{args.model} holds a {type(model).__name__}, not a SpeechEnhancer.")
    source, target = Path(args.source), Path(args.target)
    if source.is_file():
        model.enhance_file(source, target)
        print(f"Wrote {target}")
        return 0
    files = audio_files(source)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{source} is a folder, so the output {target} must be a folder too.")
    for file in tqdm(files, unit="file", disable=args.no_progress, desc="enhance"):
        model.enhance_file(file, target / file.name)
    print(f"Wrote {len(files)} enhanced files to {target}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a saved Forecaster for inference without tsk's training stack: its network as a
    torch.export program with what predict needs around it (`tsk.exported.load(OUT).predict(df)`
    forecasts as the saved model does)."""
    import tsk

    model = tsk.load(args.model)
    if not isinstance(model, tsk.Forecaster):
        raise ValueError(f"{args.model} holds a {type(model).__name__}; only a Forecaster exports.")
    folder = model.export(args.out)
    print(f"Exported the {model.backbone} forecaster to {folder} (network.pt2, forecaster.json, "
          "arrays.npz); load it with tsk.exported.load")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Search hyperparameters with Optuna, print the best trials, save the best model."""
    import optuna

    from tsk.datasets import load_csv, load_dataset
    from tsk.datasets.tables import read_table
    from tsk.tuning import default_space, space_from_json, tune

    if not args.verbose:  # the progress bar and the final table say what matters
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.plots:  # before a long study, not after it
        require("matplotlib", "plot", feature="tsk tune --plots")
    model = _forecaster(args)
    space = None
    if args.space:
        space = space_from_json(json.loads(Path(args.space).read_text()), default_space(args.backbone))
    if args.dataset:
        data = load_dataset(args.dataset, args.data_dir)
        name = data.name
    else:
        frame = read_table(args.data)
        data = frame if "unique_id" in frame.columns else load_csv(args.data)
        name = Path(args.data).name
    result = tune(
        model, data, space=space, n_trials=args.trials, timeout=args.timeout, metric=args.metric,
        storage=args.storage, study_name=args.study, pruner=args.pruner,
        random_state=args.sampler_seed, n_folds=args.folds, show_progress_bar=not args.no_progress,
    )
    states = result.trials_dataframe()["state"].value_counts().to_dict()
    print(f"\nStudy {result.study_.study_name!r} on {name}: {result.n_trials_} trials "
          + ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items())))
    print(result.top_trials(args.top).to_string(index=False))
    print(f"Best {args.metric} {result.best_score_:.4f} with {json.dumps(result.best_params_)}")
    best = result.best_estimator_
    if hasattr(data, "test"):
        metrics = best.evaluate(data.test(best.lookback_))
        print(f"Refit on train + validation; test mse {metrics['mse']:.4f} mae {metrics['mae']:.4f}")
    if args.out:
        best.save(args.out)
        print(f"Saved the best model to {args.out}")
    if args.plots:
        matplotlib = require("matplotlib", "plot", feature="tsk tune --plots")
        matplotlib.use("Agg")
        plots = Path(args.plots)
        result.plot_history(plots / "history.png")
        written = ["history.png"]
        try:
            result.plot_importances(plots / "importances.png")
            written.append("importances.png")
        except ValueError as err:
            print(f"No importance plot: {err}")
        print(f"Wrote {', '.join(written)} to {plots}")
    return 0


def _complete_series(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Regroup streamed chunks so each yielded frame holds whole series (file grouped by id)."""
    import pandas as pd

    carry = None
    for chunk in chunks:
        chunk = chunk if carry is None else pd.concat([carry, chunk], ignore_index=True)
        ids = chunk["unique_id"].astype(str)
        last = ids.iloc[-1]
        complete, carry = chunk[ids != last], chunk[ids == last]
        if len(complete):
            yield complete
    if carry is not None and len(carry):
        yield carry


# ---- argument parsing --------------------------------------------------------------------
def _add_model_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="benchmark dataset: ETTh1, ETTh2, ETTm1, ETTm2, "
                        "exchange_rate, national_illness (TSLib splits)")
    source.add_argument("--data", help="a CSV/Parquet file, long (unique_id, ds, y, ...) or "
                        "wide (ds + one column per channel)")
    parser.add_argument("--data-dir", default=None,
                        help="where datasets live (default: $TSK_DATA_DIR, else ./data)")
    parser.add_argument("--backbone", default="s4d", help="see `tsk backbones` (default s4d)")
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--lookback", type=int, default=None,
                        help="input steps (default: 336, shorter for short series)")
    parser.add_argument("--exogenous", nargs="*", default=None, help="past-covariate columns")
    parser.add_argument("--futr-exog", nargs="+", default=None, metavar="COL",
                        help="covariates known ahead (e.g. a promotion, a holiday flag): inputs "
                             "over the horizon too, read from the data where it has them (`tsk "
                             "forecast` reads their values after the data's end from --futr-data)")
    intervals = parser.add_argument_group(
        "probabilistic forecasts", "learn the intervals in training (generic-head backbones; "
        "--level then asks for the model's own intervals, not conformal ones)")
    intervals.add_argument("--quantiles", type=_probability, nargs="+", default=None, metavar="Q",
                           help="learn these quantiles (pinball loss), e.g. 0.1 0.5 0.9; the "
                                "forecast is the median (`forecast` and `backtest` also write "
                                "the quantile columns, y-q-10, ...)")
    intervals.add_argument("--distribution", choices=["normal", "student_t"], default=None,
                           help="learn this distribution's parameters (negative log-likelihood); "
                                "the forecast is its mean")
    parser.add_argument("--time-features", action=argparse.BooleanOptionalAction, default=None,
                        help="calendar features of the timestamps as inputs (default: as the "
                             "backbone's paper; TPGN uses them)")
    parser.add_argument("--instance-norm", action=argparse.BooleanOptionalAction, default=True,
                        help="RevIN: standardize each window, undo it on the forecast (default on)")
    parser.add_argument("--ridge-init", action=argparse.BooleanOptionalAction, default=None,
                        help="start from the closed-form ridge forecast (default: the generic "
                             "head does, a paper's own network trains as its paper)")
    parser.add_argument("--channel-mixing", action="store_true",
                        help="model channels jointly (default: channel-independent, jointly "
                             "for a grid backbone such as chimera)")
    parser.add_argument("--missing", choices=["raise", "mask", "interpolate"], default="raise",
                        help="missing values (NaN, and the steps --freq inserts into gaps): raise "
                             "(default), mask (left out of the loss and scaling, flagged in the "
                             "inputs) or interpolate (linear in time); see docs/data.md")
    parser.add_argument("--freq", default=None,
                        help="put each series on this pandas frequency's grid, e.g. h, 10min, D "
                             "(gaps become missing steps); default: infer each series' frequency")
    parser.add_argument("--duplicates", choices=["raise", "drop_exact", "mean"], default="raise",
                        help="rows of one series at one timestamp: raise (default), drop_exact "
                             "(drop identical rows) or mean (average them)")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--n-layers", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="a training budget in optimizer steps (validated every tenth)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: 64, 128 or 256, the largest leaving 2,000 steps an epoch")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default 1e-3 (x sqrt(batch / 64) with the default batch size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _patch_len(text: str) -> int | str:
    """`--patch-len`: a positive number of steps, or 'auto' (a usage error otherwise)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of steps or 'auto': {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of steps")
    return value


def _probability(text: str) -> float:
    """A quantile's probability, strictly between 0 and 1 (a usage error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


def _add_level_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--level", type=float, nargs="+", default=None,
                        help=f"interval levels in percent, e.g. 80 95 (conformal, or with "
                             f"--quantiles / --distribution the model's own): {what}")


def _add_static_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--static-data", default=None, metavar="FILE",
                        help="CSV/Parquet of static covariates: unique_id and one column per "
                             f"feature, a row per series (numbers standardized, text one-hot); {what}")


def _add_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-dir", default=None,
                        help="keep the training checkpoints in this folder; run the same command "
                             "again to resume a fit that was interrupted")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsk", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("forecast", help="fit, evaluate on held-out data, write the forecast",
                       description=cmd_forecast.__doc__)
    _add_model_args(p)
    p.add_argument("--out", default="forecast.csv", help="forecast file (.csv or .parquet)")
    p.add_argument("--save-model", default=None, help="also save the fitted model to this folder")
    _add_level_arg(p, "fit with conformal calibration (on its validation windows), report the "
                      "intervals' coverage and write them beside the forecast (y-lo-80, y-hi-80)")
    _add_static_arg(p, "the fit, the scores and the forecast read it")
    p.add_argument("--futr-data", default=None, metavar="FILE",
                   help="the --futr-exog columns over the horizon after each series' end "
                        "(unique_id, ds and those columns), for the forecast after the data's "
                        "end; the held-out scoring reads them from the data")
    _add_checkpoint_arg(p)
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("fit", help="fit on a dataset or file and save the model",
                       description=cmd_fit.__doc__)
    _add_model_args(p)
    p.add_argument("--out", required=True, help="folder to save the model in")
    _add_level_arg(p, "fit with conformal calibration (on its validation windows) and check that "
                      "it gives these levels (`tsk predict --level` writes them)")
    _add_static_arg(p, "the model keeps each series' features (`tsk predict` needs --static-data "
                       "only for other series or new values)")
    _add_checkpoint_arg(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="batch-forecast many series with a saved model",
                       description=cmd_predict.__doc__)
    p.add_argument("--model", required=True, help="folder written by `tsk fit` / est.save")
    p.add_argument("--data", required=True, help="CSV or Parquet history, grouped by unique_id "
                   "(a classifier also reads .ts/.tsv series; a speech classifier, an audio file "
                   "or a folder of them; a video predictor, a .npy file of videos [n, T, C, H, W])")
    p.add_argument("--out", required=True, help="output file (.csv or .parquet; .npy for videos)")
    p.add_argument("--chunk-rows", type=int, default=None, help="rows read per chunk (default "
                   "100,000; for a video predictor, videos per chunk, default 64)")
    p.add_argument("--n-frames", type=int, default=None, help="frames to predict after each "
                   "video (a video predictor only)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run after the "
                   "series it finished (same data, model, --chunk-rows, --level, --quantiles, "
                   "--futr-data and --static-data)")
    _add_level_arg(p, "add the interval columns (y-lo-80, y-hi-80) of a forecaster fit with "
                      "conformal calibration (`tsk fit --level`), --quantiles or --distribution")
    p.add_argument("--quantiles", type=_probability, nargs="+", default=None, metavar="Q",
                   help="add these quantile columns (y-q-5, y-q-95 for 0.05 0.95) of a forecaster "
                        "fit with --distribution (any) or --quantiles (those it learned)")
    p.add_argument("--futr-data", default=None, metavar="FILE",
                   help="CSV/Parquet of the covariates known ahead of a model fit with "
                        "--futr-exog: unique_id, ds and those columns over the horizon after each "
                        "series' end (read once; rows of other series are not read)")
    _add_static_arg(p, "for series the fit did not see, or new values (default: the fit's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("backtest", help="backtest a forecaster over rolling forecast origins "
                       "(Nixtla's cross-validation)", description=cmd_backtest.__doc__)
    _add_model_args(p)
    p.add_argument("--n-windows", type=int, required=True,
                   help="forecast origins (cutoffs) per series; the last one `horizon` steps "
                        "before its end")
    p.add_argument("--step-size", type=int, default=None,
                   help="steps between cutoffs (default: the horizon)")
    p.add_argument("--refit", type=int, default=0,
                   help="refit every K windows (default 0: fit once, on the data up to the "
                        "first cutoff; 1: at every cutoff)")
    _add_level_arg(p, "each fit calibrates on its validation windows; adds the intervals and "
                      "their coverage")
    _add_static_arg(p, "every fit and forecast read it (the covariates known ahead come from "
                       "the data)")
    p.add_argument("--out", required=True, help="forecasts beside the actual values (.csv or "
                   ".parquet)")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("export", help="export a saved forecaster to run without the training stack",
                       description=cmd_export.__doc__)
    p.add_argument("model", help="folder written by `tsk fit` / est.save (a Forecaster)")
    p.add_argument("out", help="folder to write the exported forecaster to")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tune", help="search hyperparameters with Optuna and save the best model",
                       description=cmd_tune.__doc__)
    _add_model_args(p)
    p.add_argument("--trials", type=int, default=50, help="trials to run (in this process)")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--metric", default="mse", help="mse, mae, mase or smape on validation")
    p.add_argument("--storage", default=None, help="Optuna RDB URL, e.g. sqlite:///tsk-tuning.db "
                   "or postgresql://...; with --study, re-running resumes and workers share it")
    p.add_argument("--study", default=None, help="study name (to resume or share a study)")
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    p.add_argument("--folds", type=int, default=1, help="rolling-origin folds (long data only)")
    p.add_argument("--space", default=None, help="JSON file: name -> Optuna distribution JSON, "
                   "overriding the backbone's default space (null removes a name)")
    p.add_argument("--sampler-seed", type=int, default=None,
                   help="seed of the sampler (give each parallel worker its own)")
    p.add_argument("--top", type=int, default=10, help="rows of the final table")
    p.add_argument("--out", default=None, help="folder to save the best (refit) model in")
    p.add_argument("--plots", default=None, help="folder for history.png and importances.png")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("classify", help="fit a classifier, print test metrics, write predictions",
                       description=cmd_classify.__doc__)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a UCR/UEA archive set under --data-dir/classification "
                        "(e.g. GunPoint, BasicMotions, JapaneseVowels), with its own train/test split")
    source.add_argument("--train", help="training series: .ts/.tsv (optionally .gz), or a long "
                        "CSV/Parquet (unique_id, ds or position, channels, label)")
    p.add_argument("--test", help="test series, in the same forms as --train (labels optional)")
    p.add_argument("--data-dir", default=None,
                   help="where datasets live (default: $TSK_DATA_DIR, else ./data)")
    p.add_argument("--backbone", default="s4d", help="see `tsk backbones` (default s4d)")
    p.add_argument("--d-model", type=int, default=None)
    p.add_argument("--n-layers", type=int, default=None)
    p.add_argument("--pooling", default="mean", choices=["mean", "last", "attention"])
    p.add_argument("--bidirectional", action="store_true", help="also read each series backwards")
    p.add_argument("--patch-len", type=_patch_len, default="auto", help="tokens of this many "
                   "steps, or 'auto' (default: one token per step, patches of 8 for a grid "
                   "backbone on series of 64 steps or more)")
    p.add_argument("--max-epochs", type=int, default=None, help="default: the Classifier's")
    p.add_argument("--max-steps", type=int, default=None,
                   help="a training budget in optimizer steps (validated every tenth)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the Classifier's")
    p.add_argument("--learning-rate", type=float, default=None, help="default: the Classifier's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--out", default="predictions.csv", help="test predictions (.csv or .parquet)")
    p.add_argument("--save-model", default=None, help="also save the fitted model to this folder")
    _add_checkpoint_arg(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("enhance", help="remove noise from speech with a saved SpeechEnhancer",
                       description=cmd_enhance.__doc__)
    p.add_argument("--model", required=True, help="folder written by SpeechEnhancer.save")
    p.add_argument("source", help="an audio file, or a folder of them")
    p.add_argument("target", help="the output file, or folder for a folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_enhance)

    p = sub.add_parser("backbones", help="list the available backbones")
    p.set_defaults(func=cmd_backbones)
    return parser


# a Forecaster's errors name its arguments: the options that give them
_OPTION_OF = {"futr_df": "--futr-data", "static_df": "--static-data"}


def _option_hint(message: str) -> str:
    """`message`, and which option gives each Forecaster argument it names."""
    named = [f"{option} FILE gives {argument}" for argument, option in _OPTION_OF.items()
             if argument in message]
    return f"{message} ({'; '.join(named)})" if named else message


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for users; the traceback with --debug
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"tsk {args.command}: error: {_option_hint(message)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
