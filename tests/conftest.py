"""Shared fixtures: generated image folders, and the real dataset when it is present."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REAL_DATA, make_image_folder


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "Original").is_dir():
        pytest.skip(f"real dataset not found at {REAL_DATA}; get it as the README says")
    return REAL_DATA


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "data")
