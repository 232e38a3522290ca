"""Optional dependencies: import a module that one of tsk's extras installs, or say which extra.

The core (`pip install tsk`) covers forecasting and classification; the parts only one domain
needs come with an extra (`pip install "tsk[speech]"`). Code that needs such a module imports it
through `require`, at the point of use, so that `import tsk` works without it and a missing one
fails with the command that installs it:

    torchaudio = require("torchaudio", "speech")
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS: dict[str, tuple[str, ...]] = {
    "speech": ("torchaudio", "soundfile", "pesq", "pystoi"),
    "vision": ("timm", "torchvision"),
    "plot": ("matplotlib",),
}
"""The extras of `pyproject.toml` (less `all`, which is every one of them) and the modules each
one installs."""


def require(module: str, extra: str, *, feature: str | None = None,
            package: str | None = None) -> ModuleType:
    """Import `module` and return it; when it (or the package it belongs to) is not installed,
    raise an ImportError that names the package and the command that installs tsk's `extra`.

    `feature` says what needs it ("tuning plots"); `package` is the distribution to name when it
    differs from the module's top-level name. An ImportError raised inside an installed package
    (one of its own dependencies missing, a broken build) propagates unchanged.
    """
    if extra not in EXTRAS:
        raise ValueError(f"tsk has no extra {extra!r}; its extras are {', '.join(EXTRAS)}.")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        parts = module.split(".")
        if err.name not in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}:
            raise
        raise ImportError(_missing_message(package or parts[0], extra, feature),
                          name=module) from err


def _missing_message(package: str, extra: str, feature: str | None) -> str:
    needed = f" for {feature}" if feature else ""
    return (
        f"{package} is needed{needed} but is not installed; it comes with tsk's {extra!r} extra.\n"
        f'Install it with:  pip install "tsk[{extra}]"\n'
        f'or, with uv:      uv add "tsk[{extra}]"  (in a project that uses tsk)\n'
        f"                  uv sync --extra {extra}  (in a checkout of tsk; plain `uv sync` "
        f"installs every extra with the dev group)"
    )
