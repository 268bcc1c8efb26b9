"""Model bundles: round trip, what bundle.json records, and refusing anything tampered or foreign.

The helpers at the top (`tiny_model`, `tiny_bundle`) build a randomly initialised DarkNet-19 at
32 px with batch-norm statistics from synthetic smears; the other bundle tests import them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from blastscan.bundle import (
    CARD,
    CLASSIFIER,
    FORMAT_VERSION,
    MANIFEST,
    OOD_ARRAYS,
    WEIGHTS,
    ClassicalHead,
    _selection_rule,
    load_bundle,
    model_card,
    write_bundle,
)
from blastscan.classify import make_classifier
from blastscan.errors import BlastscanError
from blastscan.features import infer
from blastscan.models import darknet19
from blastscan.predict import HEAD_CLASSICAL, HEAD_CNN, fit_ood, synthetic_smears
from blastscan.selection import MRMR
from blastscan.training import recompute_bn_statistics

SIZE = 32
CLASSES = ["Benign", "Early", "Pre", "Pro"]
DISPLAY = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
_BUILT: dict[tuple, Path] = {}


@functools.lru_cache(maxsize=4)
def tiny_model(size: int = SIZE, seed: int = 0, classes: int = 4) -> torch.nn.Module:
    """Random DarkNet-19 whose batch-norm statistics come from smear-like images, so its
    activations have the scale a trained network's have. Cached: callers must not train it."""
    torch.manual_seed(seed)
    model = darknet19(classes)
    recompute_bn_statistics(model, synthetic_smears(24, size, seed), 24, torch.device("cpu"))
    return model.eval()


def tiny_meta(size: int = SIZE) -> dict:
    return {
        "classes": CLASSES,
        "display_names": DISPLAY,
        "image_size": size,
        "config": {"recipe": "fast", "epochs": 1, "image_size": size, "seed": 0},
        "history": [{"epoch": 1, "train_accuracy": 0.25, "val_accuracy": 0.25}],
    }


@functools.lru_cache(maxsize=4)
def tiny_parts(size: int = SIZE, classical: bool = True):
    """Model, OOD detector and (optionally) a fitted mRMR + Fine KNN pipeline (cached)."""
    model = tiny_model(size)
    images = synthetic_smears(64, size, seed=1)
    features = infer(model, images, 32).features
    labels = np.arange(len(images)) % 4
    ood = fit_ood(
        features[:44],
        labels[:44],
        features[44:],
        images=images[:44],
        calibration_images=images[44:],
    )
    pipeline = None
    if classical:
        pipeline = make_classifier("Fine KNN", selector=MRMR(n_features=12), probability=True)
        pipeline.fit(features, labels)
    return model, ood, pipeline, features


def tiny_bundle(root: Path, classical: bool = True, size: int = SIZE) -> Path:
    """A bundle built once per test session and folder (callers copy it before changing it)."""
    key = (str(root), classical, size)
    if key not in _BUILT or not _BUILT[key].is_dir():
        model, ood, pipeline, _ = tiny_parts(size, classical)
        _BUILT[key] = write_bundle(
            root / f"tiny-{size}-{'classical' if classical else 'cnn'}",
            model,
            tiny_meta(size),
            classical=pipeline,
            ood=ood,
            metrics={"accuracy": 0.25, "n_test": 8, "split": "synthetic"},
            card_facts={"data": "synthetic smear-like images (tests only)"},
        )
    return _BUILT[key]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One BLAS and one torch thread: the test machine's 2 cores are shared with a training
    run, and oversubscribed thread pools spin (10-20x slower); results are the same."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture
def copy(built, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(built, target)
    return target


def _rewrite_manifest(path: Path, change) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


# ---------------------------------------------------------------- round trip


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


def test_model_card_states_research_use_and_limits(built):
    card = (built / CARD).read_text()
    assert "Research use only" in card and "Not a medical device" in card
    assert "## Limits" in card and "synthetic smear-like images" in card
    assert "accuracy 0.2500" in card


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


def test_classical_head_from_pipeline_maps_string_labels():
    X = np.random.default_rng(0).normal(size=(40, 6))
    y = np.array(["Pro", "Benign"] * 20)
    X[y == "Pro"] += 2
    head = ClassicalHead.from_pipeline(make_classifier("Gaussian Naive Bayes").fit(X, y), CLASSES)
    assert head.class_index.tolist() == [0, 3]  # classes_ sorted: Benign, Pro
    proba = head.predict_proba(X, 4)
    assert proba.shape == (40, 4) and np.allclose(proba[:, [1, 2]], 0)


# ---------------------------------------------------------------- safety


def test_loading_never_unpickles(built, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a bundle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    bundle = load_bundle(built)
    assert bundle.classical is not None and bundle.ood is not None


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


class Stranger:
    """A type no bundle may load: not in the allow-list."""

    classes_ = np.array([0, 1, 2, 3])

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def test_a_classifier_outside_the_allow_list_is_refused_at_write(tmp_path):
    head = ClassicalHead(
        np.arange(3), np.zeros(3), np.ones(3), Stranger(), np.arange(4), "stranger"
    )
    out = tmp_path / "b"
    with pytest.raises(BlastscanError, match="types a bundle may not load"):
        write_bundle(out, tiny_model(), tiny_meta(), classical=head)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too


def test_a_classifier_outside_the_allow_list_is_refused_at_load(copy):
    import skops.io as sio

    data = sio.dumps(Stranger())
    (copy / CLASSIFIER).write_bytes(data)
    _rewrite_manifest(
        copy, lambda m: m["files"].update({CLASSIFIER: hashlib.sha256(data).hexdigest()})
    )
    with pytest.raises(BlastscanError, match="outside the allow-list"):
        load_bundle(copy)


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


# ---------------------------------------------------------------- from a training run


def _fake_run(root: Path) -> tuple[Path, Path]:
    """A run folder (checkpoint, split, dataset summary) and the class folders it names."""
    from PIL import Image

    from blastscan.training import save_checkpoint

    data, run = root / "data", root / "run"
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for k, name in enumerate(CLASSES):
        (data / name).mkdir(parents=True)
        for i, image in enumerate(synthetic_smears(7, 40, seed=k)):
            path = data / name / f"{name}-{i}.png"
            Image.fromarray(image).save(path)
            split["train" if i < 4 else "val" if i < 6 else "test"].append(str(path))
    model = tiny_model()
    (run / "checkpoints").mkdir(parents=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(
        run / "checkpoints" / "final.safetensors", model, optimizer, {**tiny_meta(), "epoch": 0}
    )
    (run / "split.json").write_text(json.dumps(split))
    (run / "dataset.json").write_text(
        json.dumps({"images": 28, "counts": dict.fromkeys(CLASSES, 7)})
    )
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "n_test": 4, "split": "fake"}))
    return run, data


def test_cli_bundle_from_a_run_fits_ood_and_classifier_on_its_training_images(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from blastscan.cli import app

    run, data = _fake_run(tmp_path)
    out = tmp_path / "bundle"
    args = ["bundle", str(run), "--out", str(out), "--data", str(data), "--classifier", "fine knn",
            "--n-features", "8", "--quiet", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # every image of the dataset decoded once, into the file training fills and reads
    assert len(list((tmp_path / "cache").glob("images-*.npy"))) == 1  # one file, as training's
    bundle = load_bundle(out)
    assert bundle.classical.name == "Fine KNN" and len(bundle.classical.columns) == 8
    assert bundle.ood.n_fit == 16 and bundle.ood.n_calibration == 8  # train fits, val calibrates
    assert bundle.manifest["metrics"]["accuracy"] == 0.5
    assert "data: 28 images" in (out / CARD).read_text()
    # the deciding head's own held-out score: the run's 4 test images, as predict decides them
    test = json.loads((run / "split.json").read_text())["test"]
    decided = bundle.predict(np.stack([np.asarray(Image.open(p)) for p in test]), head="classical")
    labels = [CLASSES.index(Path(p).parent.name) for p in test]
    right = int(np.sum(decided.predicted == np.asarray(labels)))
    score = bundle.manifest["metrics"]["classical_head"]["accuracy"]
    assert (score["k"], score["n"]) == (right, 4)
    assert (
        f"Fine KNN head, fitted on 16 training images, on the run's 4 held-out test images: "
        f"accuracy {right / 4:.4f}" in (out / CARD).read_text()
    )
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output


def test_cli_bundle_without_data_has_no_ood_and_refuses_a_classifier(tmp_path):
    from typer.testing import CliRunner

    from blastscan.cli import app

    run, _ = _fake_run(tmp_path)
    ok = CliRunner().invoke(app, ["bundle", str(run), "--out", str(tmp_path / "b")])
    assert ok.exit_code == 0 and load_bundle(tmp_path / "b").ood is None
    refused = CliRunner().invoke(
        app, ["bundle", str(run), "--out", str(tmp_path / "c"), "--classifier", "Fine KNN"]
    )
    assert refused.exit_code == 2 and "--data" in refused.output


# ---------------------------------------------------------------- audit fixes


def test_load_bundle_on_a_missing_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(BlastscanError, match=r"nope: does not exist; pass a bundle directory"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BlastscanError, match="no bundle.json"):  # a folder, but not a bundle
        load_bundle(tmp_path)


def _card_manifest(built: Path, **classical) -> dict:
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["classical"].update(classical)
    return manifest


def test_model_card_says_how_many_features_mrmr_kept_and_by_what_rule(built):
    card = (built / CARD).read_text()  # mRMR(n_features=12) on 1000 features
    assert "on 12 of 1000 deep features kept by mRMR (the top 12 of its ranking)." in card
    assert "mRMR-selected" not in card
    every = _card_manifest(built, n_features=1000, mrmr={"threshold": 0.25}, name="Cubic SVM")
    assert "Cubic SVM on all 1000 deep features (mRMR at threshold 0.25 kept every one)" in (
        model_card(every)
    )
    assert _selection_rule(MRMR(threshold=0.25)) == {"threshold": 0.25}  # what the CLI fits
    some = _card_manifest(built, n_features=521, mrmr={"threshold": 0.25})
    assert "on 521 of 1000 deep features kept by mRMR (threshold 0.25)" in model_card(some)


def test_model_card_says_whose_held_out_accuracy_it_shows(built, tmp_path_factory):
    card = (built / CARD).read_text()
    assert "CNN softmax on the run's 8 held-out test images: accuracy 0.2500" in card
    assert "the deciding KNeighborsClassifier head was not scored on them" in card
    cnn_card = (tiny_bundle(tmp_path_factory.getbasetemp(), classical=False) / CARD).read_text()
    assert "CNN softmax (the deciding head) on the run's 8 held-out test images" in cnn_card


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


def test_bundle_options_are_checked_before_any_work(tmp_path):
    from blastscan.bundle import bundle_from_run

    not_a_run = tmp_path / "nothing-here"  # loading it would fail later, with another message
    with pytest.raises(BlastscanError, match="unknown classifier preset 'Bogus'"):
        bundle_from_run(not_a_run, tmp_path / "b", tmp_path, classifier="Bogus")
    with pytest.raises(BlastscanError, match="pass --data"):
        bundle_from_run(not_a_run, tmp_path / "b", None, classifier="Cubic SVM")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("user data")
    with pytest.raises(BlastscanError, match="already exists"):
        bundle_from_run(not_a_run, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "user data"
