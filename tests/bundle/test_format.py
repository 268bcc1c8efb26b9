"""Reading a bundle's files: anything changed, missing, foreign or hand-edited is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blastscan.bundle import (
    CARD,
    CLASSIFIER,
    FORMAT_VERSION,
    MANIFEST,
    OOD_ARRAYS,
    WEIGHTS,
    load_bundle,
)
from blastscan.errors import BlastscanError


def _rewrite_manifest(path: Path, change) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", [WEIGHTS, OOD_ARRAYS, CLASSIFIER, CARD])
def test_a_changed_file_is_refused(copy, name):
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(BlastscanError, match="sha256 does not match"):
        load_bundle(copy)


def test_a_missing_file_is_refused(copy):
    (copy / OOD_ARRAYS).unlink()
    with pytest.raises(BlastscanError, match="missing or unreadable"):
        load_bundle(copy)


def test_another_format_version_is_refused(copy):
    _rewrite_manifest(copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(BlastscanError, match="format version 2"):
        load_bundle(copy)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.pop("classes"),
        lambda m: m.pop("input"),
        lambda m: m.pop("ood"),
        lambda m: m.update(classes=4),
    ],
    ids=["no classes", "no input", "no ood", "classes a number"],
)
def test_a_hand_edited_manifest_is_a_blastscan_error(copy, edit):
    _rewrite_manifest(copy, edit)
    with pytest.raises(BlastscanError, match="missing or malformed"):
        load_bundle(copy)


def test_a_path_outside_the_bundle_is_refused(copy):
    _rewrite_manifest(copy, lambda m: m["files"].update({"../escape.bin": "0" * 64}))
    with pytest.raises(BlastscanError, match="not a plain file name"):
        load_bundle(copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BlastscanError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_load_bundle_on_a_missing_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(BlastscanError, match=r"nope: does not exist; pass a bundle directory"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BlastscanError, match="no bundle.json"):  # a folder, but not a bundle
        load_bundle(tmp_path)
