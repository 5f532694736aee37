"""Pytest fixtures of the data tests (helpers live in data_fixtures.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .data_fixtures import FIXTURES, make_images


@pytest.fixture
def fixture_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of tests/data/fixtures plus images, made the current directory (config paths are relative)."""
    workspace = tmp_path / "sources"
    shutil.copytree(FIXTURES, workspace)
    make_images(workspace)
    monkeypatch.chdir(workspace)
    return workspace
