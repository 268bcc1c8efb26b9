"""The tiny bundle the predict tests use, and a folder of images in every common form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import single_thread, tiny_bundle  # noqa: F401
from PIL import Image

from blastscan.data.synthetic import synthetic_smears


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Images in every common form, in nested folders, with one broken file and a stray text."""
    root = tmp_path_factory.mktemp("images")
    (root / "a" / "b").mkdir(parents=True)
    smears = synthetic_smears(4, 120, seed=5)
    Image.fromarray(smears[0]).save(root / "one.jpg", quality=90)
    Image.fromarray(smears[1]).convert("RGBA").save(root / "a" / "alpha.png")
    Image.fromarray(smears[2]).convert("L").save(root / "a" / "gray.bmp")
    Image.fromarray(smears[3][..., 0].astype(np.uint16) * 257).save(root / "a" / "b" / "deep.tif")
    Image.fromarray(smears[0]).save(root / "a" / "b" / "pic.webp")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root
