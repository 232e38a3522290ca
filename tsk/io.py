"""The saved-model folder format: `config.json`, `model.safetensors` and
`preprocessing.safetensors` (fitted arrays such as scalers and the last context windows).
Which estimator a folder holds, and loading it, is `tsk.estimators.registry`'s business."""

from __future__ import annotations

import json
import logging
import os
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


def write_folder(
    path: str | os.PathLike, config: dict[str, Any], weights: dict[str, torch.Tensor],
    arrays: dict[str, np.ndarray],
) -> Path:
    """Write the three files of a saved estimator into `path` (created if needed)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, "versions": versions(), **config}
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))
    save_tensors({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                 str(folder / "model.safetensors"))
    save_arrays({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                str(folder / "preprocessing.safetensors"))
    return folder


def read_folder(
    path: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Read a saved estimator folder; a version mismatch warns, a missing file raises."""
    folder = Path(path)
    for name in ("config.json", "model.safetensors", "preprocessing.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing: {folder} is not a model saved by tsk (est.save)."
            )
    config = json.loads((folder / "config.json").read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{folder} has format version {config.get('format_version')}; this tsk reads "
            f"version {FORMAT_VERSION}."
        )
    saved, now = config.get("versions", {}), versions()
    diffs = [f"{k} {saved.get(k)} (now {now[k]})" for k in now if saved.get(k) != now[k]]
    if diffs:
        warnings.warn(f"{folder} was saved with {', '.join(diffs)}.", stacklevel=3)
    weights = load_tensors(str(folder / "model.safetensors"))
    arrays = load_arrays(str(folder / "preprocessing.safetensors"))
    return config, weights, arrays
