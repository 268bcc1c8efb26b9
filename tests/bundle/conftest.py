"""The tiny bundle the bundle tests read (`built`) and a copy of it they may change (`copy`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bundle_helpers import single_thread, tiny_bundle  # noqa: F401


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture
def copy(built, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(built, target)
    return target
