"""The documentation site builds without a warning (MkDocs in strict mode: a broken link, a page
missing from the navigation or an API reference that no longer resolves fails), and the
repository's documents point to nothing outside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


def test_no_document_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout
    if not tracked:
        pytest.skip("not a git checkout")
    offenders = []
    for name in tracked.splitlines():
        path = REPO / name
        if (path.suffix not in {".md", ".py", ".yml", ".toml", ".ipynb"} or not path.is_file()
                or path == Path(__file__).resolve()):
            continue
        text = path.read_text(errors="replace")
        if "DESIGN.md" in text or "ANCHORS.md" in text or "LAYOUT.md" in text:
            offenders.append(name)
    assert not offenders, f"documents that point outside the repository: {offenders}"
