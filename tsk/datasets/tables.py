"""Tables on disk: CSV (`.csv`, `.csv.gz`) or Parquet, read whole or streamed in chunks, written
whole or in resumable parts, never half; `ds` (or `date`) parsed as datetimes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A whole CSV (`.csv`, `.csv.gz`) or Parquet file, with `ds` parsed as datetimes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    frame = pd.read_parquet(path) if _is_parquet(path) else pd.read_csv(path)
    return _parse_time(frame)


def iter_table(path: str | os.PathLike, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Stream a CSV or Parquet file in chunks of about `chunk_rows` rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    if _is_parquet(path):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield _parse_time(batch.to_pandas())
    else:
        for chunk in pd.read_csv(path, chunksize=chunk_rows):
            yield _parse_time(chunk)


def check_grouped(path: str | os.PathLike, chunk_rows: int) -> int:
    """First pass over the `unique_id` column: each series' rows must be contiguous (so streaming
    sees whole series). Returns the number of rows."""
    path, rows, done, current = Path(path), 0, set(), None
    if _is_parquet(path):
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        if "unique_id" not in file.schema_arrow.names:
            raise ValueError("The model was fit on long data: the file needs a 'unique_id' column.")
        batches = file.iter_batches(chunk_rows, columns=["unique_id"])
        chunks = (batch.column(0).to_pandas() for batch in batches)
    else:
        if "unique_id" not in pd.read_csv(path, nrows=0).columns:
            raise ValueError("The model was fit on long data: the file needs a 'unique_id' column.")
        chunks = (c["unique_id"] for c in pd.read_csv(path, usecols=["unique_id"],
                                                      chunksize=chunk_rows))
    for ids in chunks:
        if len(ids) == 0:
            continue
        ids = ids.astype(str).to_numpy()
        runs = ids[np.r_[ids[0] != current, ids[1:] != ids[:-1]]]  # ids where a new run starts
        for uid in runs:
            if uid in done:
                raise ValueError(f"Series {uid!r} appears in several places: group the file's "
                                 "rows by unique_id (e.g. sort by unique_id, ds) first.")
            done.add(uid)
        current, rows = ids[-1], rows + len(ids)
    if rows == 0:
        raise ValueError(f"{path} has no rows (only a header?): nothing to predict.")
    return rows


class PartsWriter:
    """Write a large table in parts and assemble it only when every part is in: a reader never
    sees half a file, and a run cut short (an error, Ctrl-C, a killed process) can be resumed.

    Each `write(frame)` becomes one numbered part file in a folder beside the target
    (`.<name>.parts/`), written whole (to a temporary name, then renamed). `finish()` joins the
    parts into the target (CSV or Parquet by its name), again through a temporary file, and
    removes the folder. With `resume=True` a folder left by an interrupted run of the same `key`
    (e.g. the input file, the model and the chunk size) is kept: `parts_done` says how many
    parts to skip. Without it, old parts are discarded.
    """

    def __init__(self, path: str | os.PathLike, key: dict, resume: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = self.path.with_name(f".{self.path.name}.parts")
        manifest = self.folder / "run.json"
        self.key = json.loads(json.dumps(key, default=str))
        if resume and manifest.is_file():
            if json.loads(manifest.read_text()) != self.key:
                raise ValueError(f"{self.folder} holds the parts of another run (other input, "
                                 "model or chunk size): run without --resume to start over.")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            manifest.write_text(json.dumps(self.key))
        self.parts_done = len(self._parts())

    def _parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def write(self, frame: pd.DataFrame) -> None:
        """Add the next part (kept as Parquet, which keeps the dtypes until `finish`)."""
        part = self.folder / f"part-{self.parts_done:06d}.parquet"
        temporary = part.with_suffix(".writing")
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, part)
        self.parts_done += 1

    def finish(self) -> Path:
        """Join the parts into the target file, one part in memory at a time, then remove them."""
        parts = self._parts()
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            if _is_parquet(self.path):
                import pyarrow.parquet as pq

                writer = None
                for part in parts:
                    table = pq.read_table(part)
                    writer = writer or pq.ParquetWriter(partial, table.schema)
                    writer.write_table(table)
                if writer is None:
                    pd.DataFrame().to_parquet(partial)
                else:
                    writer.close()
            else:
                compression = "gzip" if self.path.suffix == ".gz" else None
                if not parts:
                    pd.DataFrame().to_csv(partial, index=False, compression=compression)
                for number, part in enumerate(parts):
                    pd.read_parquet(part).to_csv(
                        partial, index=False, header=number == 0, mode="w" if number == 0 else "a",
                        compression=compression)
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.path


def _is_parquet(path: Path) -> bool:
    return path.suffix in (".parquet", ".pq")


def _parse_time(frame: pd.DataFrame) -> pd.DataFrame:
    if "ds" not in frame.columns and "date" in frame.columns:
        frame = frame.rename(columns={"date": "ds"})
    if "ds" in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame["ds"]):
        try:
            frame["ds"] = pd.to_datetime(frame["ds"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"Column 'ds' could not be read as datetimes: {err}") from None
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a whole frame as CSV or Parquet (by the file name) atomically: into a temporary
    file beside `path`, then renamed over it, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if _is_parquet(path):
            frame.to_parquet(partial, index=False)
        else:
            frame.to_csv(partial, index=False, compression="gzip" if path.suffix == ".gz" else None)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
