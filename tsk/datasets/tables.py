"""Tables on disk: CSV (`.csv`, `.csv.gz`) or Parquet, read whole or streamed in chunks, written
in chunks; `ds` (or `date`) parsed as datetimes."""

from __future__ import annotations

import os
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
        ids = ids.astype(str).to_numpy()
        runs = ids[np.r_[ids[0] != current, ids[1:] != ids[:-1]]]  # ids where a new run starts
        for uid in runs:
            if uid in done:
                raise ValueError(f"Series {uid!r} appears in several places: group the file's "
                                 "rows by unique_id (e.g. sort by unique_id, ds) first.")
            done.add(uid)
        current, rows = ids[-1], rows + len(ids)
    return rows


class TableWriter:
    """Append frames to a CSV or Parquet file, chosen by the file name."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path, self._parquet, self._started = Path(path), _is_parquet(Path(path)), False
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        if self._parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if not self._started:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table)
        else:
            frame.to_csv(self.path, mode="a" if self._started else "w", header=not self._started,
                         index=False)
        self._started = True

    def close(self) -> None:
        if self._parquet and self._started:
            self._writer.close()


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
