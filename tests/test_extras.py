import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest

from tsk._extras import EXTRAS, require

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_a_missing_module_names_its_package_the_extra_and_the_install_commands():
    with pytest.raises(ImportError) as info:
        require("tsk_no_such_module", "speech", feature="audio datasets")
    message = str(info.value)
    assert "tsk_no_such_module is needed for audio datasets" in message
    assert "'speech' extra" in message
    assert 'pip install "tsk[speech]"' in message
    assert 'uv add "tsk[speech]"' in message
    assert "uv sync --extra speech" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_a_missing_package_is_named_for_a_submodule_or_as_given():
    with pytest.raises(ImportError, match=r"^tsk_no_such_module is needed but") as info:
        require("tsk_no_such_module.pyplot", "plot")
    assert 'pip install "tsk[plot]"' in str(info.value)
    with pytest.raises(ImportError, match=r"^tsk-no-such-dist is needed"):
        require("tsk_no_such_module", "vision", package="tsk-no-such-dist")


def test_an_installed_module_is_returned():
    assert require("json", "plot") is json
    assert require("importlib.util", "vision") is importlib.util


def test_an_import_error_inside_an_installed_module_is_not_blamed_on_the_extra(tmp_path, monkeypatch):
    (tmp_path / "tsk_broken_module.py").write_text("import tsk_its_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tsk_broken_module", raising=False)
    with pytest.raises(ModuleNotFoundError) as info:
        require("tsk_broken_module", "speech")
    assert info.value.name == "tsk_its_missing_dependency"
    assert "tsk[speech]" not in str(info.value)


def test_an_unknown_extra_is_a_programming_error():
    with pytest.raises(ValueError, match="no extra 'audio'"):
        require("json", "audio")


def test_the_extras_are_those_of_pyproject():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == {*EXTRAS, "all"}
    (everything,) = extras["all"]
    assert everything.startswith("tsk[") and set(everything[4:-1].split(",")) == set(EXTRAS)


@pytest.mark.parametrize("module,extra", [(m, e) for e, modules in EXTRAS.items() for m in modules])
def test_the_test_environment_has_every_extra(module, extra):
    """`uv sync` / `uv run pytest` install the dev group, which installs `tsk[all]`."""
    assert importlib.util.find_spec(module) is not None, f"{module} ({extra}) is not installed"
