"""The saved-model folder format: `config.json`, `model.safetensors` and
`preprocessing.safetensors` (fitted arrays such as scalers and the last context windows), written
whole or not at all and checked against their recorded checksums when read.
Which estimator a folder holds, and loading it, is `tsk.estimators.registry`'s business."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save_file as save_tensors

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    from tsk import __version__

    return {"tsk": __version__, "torch": torch.__version__.split("+")[0]}


FILES = ("config.json", "model.safetensors", "preprocessing.safetensors")


def write_folder(
    path: str | os.PathLike, config: dict[str, Any], weights: dict[str, torch.Tensor],
    arrays: dict[str, np.ndarray],
) -> Path:
    """Write the three files of a saved estimator into `path`, whole or not at all.

    The files go to a temporary folder beside `path`, which then takes its place (an older model
    there is kept until the new one is complete); `config.json` records the SHA-256 of the two
    weight files, which `read_folder` checks.
    """
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder: save to a folder path.")
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.saving-"))
    try:
        save_tensors({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                     str(staging / "model.safetensors"))
        save_arrays({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                    str(staging / "preprocessing.safetensors"))
        checksums = {name: _sha256(staging / name) for name in FILES[1:]}
        config = {"format_version": FORMAT_VERSION, "versions": versions(), **config,
                  "checksums": checksums}
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str))
        _swap_in(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the complete `staging` folder at `folder`; an existing one is moved aside first and
    removed only once the new one is in place (and put back if that fails)."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
    os.replace(folder, old / "model")
    try:
        os.replace(staging, folder)
    except BaseException:
        os.replace(old / "model", folder)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_folder(
    path: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Read a saved estimator folder; a version mismatch warns; a missing, damaged or changed
    file raises an error that names it."""
    folder = Path(path)
    for name in FILES:
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing: {folder} is not a model saved by tsk (est.save)."
            )
    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not valid JSON ({err}): the file was cut "
                         "or edited; save the model again.") from err
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        version = config.get("format_version") if isinstance(config, dict) else None
        raise ValueError(
            f"{folder} has format version {version}; this tsk reads version {FORMAT_VERSION}."
        )
    for name, expected in (config.get("checksums") or {}).items():
        if _sha256(folder / name) != expected:
            raise ValueError(f"{folder / name} does not match the checksum config.json recorded "
                             "when it was saved: the file is damaged or was changed; save the "
                             "model again.")
    saved, now = config.get("versions", {}), versions()
    diffs = [f"{k} {saved.get(k)} (now {now[k]})" for k in now if saved.get(k) != now[k]]
    if diffs:
        warnings.warn(f"{folder} was saved with {', '.join(diffs)}.", stacklevel=3)
    weights = _read_safetensors(folder / "model.safetensors", load_tensors)
    arrays = _read_safetensors(folder / "preprocessing.safetensors", load_arrays)
    return config, weights, arrays


def _read_safetensors(path: Path, load: Any) -> dict[str, Any]:
    try:
        return load(str(path))
    except Exception as err:  # safetensors raises its own error types for cut or foreign files
        raise ValueError(f"{path} is not a readable safetensors file ({err}): the file was cut "
                         "or replaced; save the model again.") from err
