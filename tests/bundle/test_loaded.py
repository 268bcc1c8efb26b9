"""A loaded bundle: it predicts like the model it was written from, and it never unpickles."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import DISPLAY, SIZE, Stranger, tiny_bundle, tiny_meta, tiny_parts

from blastscan.bundle import CLASSIFIER, MANIFEST, load_bundle
from blastscan.bundle.heads import HEAD_CLASSICAL, HEAD_CNN
from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError
from blastscan.runtime.infer import infer


def _rewrite_manifest(path: Path, change) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_loaded_bundle_predicts_like_the_model(built):
    model, _, pipeline, _ = tiny_parts(SIZE)  # what was written, compared with what was read
    bundle = load_bundle(built)
    images = synthetic_smears(6, SIZE, seed=7)
    reference = infer(model, images, 8)
    got = bundle.predict(images)
    np.testing.assert_allclose(got.cnn_probabilities, reference.probabilities, atol=1e-6)
    np.testing.assert_allclose(
        got.probabilities, pipeline.predict_proba(reference.features), atol=1e-9
    )
    assert got.head == HEAD_CLASSICAL
    assert got.ood_distance.shape == (6,) and got.ood.dtype == bool
    row = got.record(0, "x.png")
    assert row["head"] == HEAD_CLASSICAL and abs(sum(row[f"p_{n}"] for n in DISPLAY) - 1) < 1e-9


def test_cnn_head_can_be_forced_and_other_sizes_are_resized(built):
    bundle = load_bundle(built)
    big = synthetic_smears(2, 80, seed=3)
    got = bundle.predict(big, head="cnn")
    assert got.head == HEAD_CNN
    np.testing.assert_allclose(got.probabilities, got.cnn_probabilities)
    with pytest.raises(BlastscanError, match="unknown head"):
        bundle.predict(big, head="svm")


def test_bundle_without_classifier_decides_with_the_cnn(tmp_path_factory):
    bundle = load_bundle(tiny_bundle(tmp_path_factory.getbasetemp(), classical=False))
    assert bundle.classical is None and bundle.default_head == HEAD_CNN
    with pytest.raises(BlastscanError, match="no features\\+classifier head"):
        bundle.predict(synthetic_smears(1, SIZE), head="classical")


def test_loading_never_unpickles(built, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a bundle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    bundle = load_bundle(built)
    assert bundle.classical is not None and bundle.ood is not None


def test_a_classifier_outside_the_allow_list_is_refused_at_load(copy):
    import skops.io as sio

    data = sio.dumps(Stranger())
    (copy / CLASSIFIER).write_bytes(data)
    _rewrite_manifest(
        copy, lambda m: m["files"].update({CLASSIFIER: hashlib.sha256(data).hexdigest()})
    )
    with pytest.raises(BlastscanError, match="outside the allow-list"):
        load_bundle(copy)


def test_a_bundle_told_to_decide_with_the_cnn_keeps_its_classical_head(tmp_path):
    from bundle_helpers import tiny_meta, tiny_parts

    from blastscan.bundle import write_bundle

    model, ood, pipeline, _ = tiny_parts(SIZE, True)
    path = write_bundle(
        tmp_path / "b", model, tiny_meta(SIZE), classical=pipeline, ood=ood,
        metrics={"head_choice": {"decides": HEAD_CNN, "cnn": {"k": 9, "n": 10},
                                 "classical": {"k": 7, "n": 10}}},
        decides=HEAD_CNN,
    )  # fmt: skip
    bundle = load_bundle(path)
    assert bundle.classical is not None and bundle.default_head == HEAD_CNN
    assert bundle.predict(synthetic_smears(2, SIZE)).head == HEAD_CNN
    assert bundle.predict(synthetic_smears(2, SIZE), head="classical").head == HEAD_CLASSICAL
    assert "CNN softmax right on 9, the classical head on 7" in (path / "MODEL_CARD.md").read_text()


def test_a_colour_gated_bundle_says_per_image_whether_it_read_the_colour(tmp_path):
    """The gate travels in model.safetensors: a reloaded bundle passes the training lab's
    colours, shuts on a hue turn, and says so in every record (`lab_colour`)."""
    import torch

    from blastscan.bundle import write_bundle
    from blastscan.data import rotate_hue, to_float_tensor
    from blastscan.models import darknet19
    from blastscan.models.input_norm import fit_input_norm

    torch.manual_seed(0)
    model = darknet19(4, input_norm="colour-gated").eval()
    lab = synthetic_smears(48, SIZE, seed=3)
    fit_input_norm(model, to_float_tensor(lab), np.arange(48) % 4)
    meta = tiny_meta()
    meta["config"] = {**meta["config"], "input_norm": "colour-gated"}
    bundle = load_bundle(write_bundle(tmp_path / "gated", model, meta))
    turned = (rotate_hue(to_float_tensor(lab[:2]), 60.0) * 255).round().byte()
    images = np.concatenate([lab[:2], turned.permute(0, 2, 3, 1).numpy()])
    prediction = bundle.predict(images)
    assert [prediction.record(i)["lab_colour"] for i in range(4)] == [True, True, False, False]
    plain = load_bundle(tiny_bundle(tmp_path, classical=False)).predict(images[:1])
    assert "lab_colour" not in plain.record(0)
