"""Find dataset files under a data root, offline, and say exactly what is missing and where to get it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

DATA_DIR_ENV = "TSK_DATA_DIR"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: `root` if given, else `$TSK_DATA_DIR`, else `./data`."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path("data")


def find_file(
    root: str | os.PathLike | None, candidates: Sequence[str], *, what: str, source: str
) -> Path:
    """Return the first existing `root/candidate` (each also tried with `.gz`).

    Raises FileNotFoundError naming every path tried and the public `source` of the file.
    """
    base = data_root(root)
    tried = []
    for rel in candidates:
        for name in (rel, rel + ".gz") if not rel.endswith(".gz") else (rel,):
            path = base / name
            tried.append(str(path))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{what} not found. Looked for: {', '.join(tried)}. Download it from {source} and put it "
        f"at {tried[0]} (or pass root=/--data-dir, or set {DATA_DIR_ENV})."
    )
