"""Writing a bundle: what bundle.json records, atomic writes, and what --overwrite may replace."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from bundle_helpers import CLASSES, DISPLAY, SIZE, Stranger, tiny_meta, tiny_model, tiny_parts

from blastscan.bundle import FORMAT_VERSION, MANIFEST, ClassicalHead, load_bundle, write_bundle
from blastscan.bundle.heads import HEAD_CLASSICAL
from blastscan.errors import BlastscanError


def test_manifest_records_what_a_user_needs(built):
    manifest = json.loads((built / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["classes"] == CLASSES and manifest["display_names"] == DISPLAY
    assert manifest["input"]["size"] == SIZE
    assert manifest["input"]["mean"] == [0.0, 0.0, 0.0] and manifest["input"]["range"] == [0.0, 1.0]
    assert {"blastscan", "torch", "skops"} <= set(manifest["versions"])
    assert manifest["metrics"]["accuracy"] == 0.25
    assert manifest["heads"]["decides"] == HEAD_CLASSICAL
    assert manifest["ood"]["quantile"] == 0.99
    listed = set(manifest["files"])
    on_disk = {p.name for p in built.iterdir()} - {MANIFEST}
    assert listed == on_disk
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((built / name).read_bytes()).hexdigest() == digest


def test_a_classifier_outside_the_allow_list_is_refused_at_write(tmp_path):
    head = ClassicalHead(
        np.arange(3), np.zeros(3), np.ones(3), Stranger(), np.arange(4), "stranger"
    )
    out = tmp_path / "b"
    with pytest.raises(BlastscanError, match="types a bundle may not load"):
        write_bundle(out, tiny_model(), tiny_meta(), classical=head)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too


def test_write_is_atomic_and_does_not_overwrite_by_default(built, tmp_path):
    with pytest.raises(BlastscanError, match="already exists"):
        write_bundle(built, tiny_model(), tiny_meta())
    out = write_bundle(tmp_path / "b", tiny_model(), tiny_meta())
    replaced = write_bundle(out, tiny_model(), tiny_meta(), overwrite=True)
    assert replaced == out and load_bundle(out).ood is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_overwrite_never_deletes_a_folder_that_is_not_a_bundle(tmp_path):
    runs = tmp_path / "runs"
    (runs / "r1" / "checkpoints").mkdir(parents=True)
    (runs / "r1" / "split.json").write_text("{}")
    for target in (runs, runs / "r1", runs / "r1" / "split.json"):
        with pytest.raises(BlastscanError, match="not a bundle"):
            write_bundle(target, tiny_model(), tiny_meta(), overwrite=True)
    assert (runs / "r1" / "split.json").read_text() == "{}"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_bundle(write_bundle(empty, tiny_model(), tiny_meta(), overwrite=True))


def test_bundle_json_writes_nan_as_null_and_still_loads(tmp_path):
    model, _, _, _ = tiny_parts(SIZE, False)
    meta = tiny_meta()
    meta["history"] = [{"epoch": 1, "val_loss": float("nan"), "val_accuracy": np.float32("nan")}]
    out = write_bundle(tmp_path / "b", model, meta, metrics={"accuracy": 0.5, "ece": np.inf})

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    manifest = json.loads((out / MANIFEST).read_text(), parse_constant=refuse)
    assert manifest["training"]["last_epoch"]["val_loss"] is None
    assert manifest["metrics"]["ece"] is None
    assert load_bundle(out).manifest["metrics"]["accuracy"] == 0.5
