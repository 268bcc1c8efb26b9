"""Bundles from a training run: the OOD detector and classifier fitted on its training images,
and the CNN-only bundle a finished run gets (`write_cnn_bundle`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_helpers import CLASSES, tiny_meta, tiny_model

from blastscan.bundle import CARD, MANIFEST, load_bundle, write_cnn_bundle
from blastscan.bundle.heads import HEAD_CNN
from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError


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


def test_cli_bundle_needs_data_unless_asked_for_a_cnn_only_bundle(tmp_path):
    from typer.testing import CliRunner

    from blastscan.cli import app

    run, _ = _fake_run(tmp_path)
    refused = CliRunner().invoke(app, ["bundle", str(run), "--out", str(tmp_path / "c")])
    assert refused.exit_code == 2 and "pass --data" in refused.output
    assert "--cnn-only" in refused.output and not (tmp_path / "c").exists()
    ok = CliRunner().invoke(app, ["bundle", str(run), "--out", str(tmp_path / "b"), "--cnn-only"])
    assert ok.exit_code == 0 and load_bundle(tmp_path / "b").ood is None
    card = (tmp_path / "b" / "MODEL_CARD.md").read_text().splitlines()
    assert card[4].startswith("**No out-of-distribution detector")  # first lines, not buried


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


def test_write_cnn_bundle_gives_the_bundle_training_wrote(image_folder, tmp_path):
    """From the run's files alone: the final weights, config.json, history.json, metrics.json."""
    from blastscan.training import TrainConfig, train

    config = TrainConfig(epochs=2, batch_size=8, image_size=32, val_fraction=0.0, test_size=0.25)
    run = train(
        image_folder, tmp_path / "run", config, cache_dir=tmp_path / "cache", show_progress=False
    ).run_dir
    trained = run / "bundle"  # the one training wrote at its end, where it still does
    before = json.loads((trained / MANIFEST).read_text()) if trained.is_dir() else None
    shutil.rmtree(trained, ignore_errors=True)
    out = write_cnn_bundle(run)
    assert out == run / "bundle"
    bundle = load_bundle(out)
    manifest = bundle.manifest
    history = json.loads((run / "history.json").read_text())
    assert manifest["training"]["config"] == json.loads((run / "config.json").read_text())
    assert manifest["training"]["epochs"] == len(history) == 2
    assert manifest["training"]["last_epoch"] == history[-1]  # no validation: nulls kept
    assert manifest["training"]["bn_statistics"] is None
    assert manifest["metrics"] == json.loads((run / "metrics.json").read_text())
    assert manifest["classes"] == CLASSES and manifest["input"]["size"] == 32
    assert manifest["heads"]["decides"] == HEAD_CNN and bundle.ood is None
    if before is not None:
        assert manifest == before
    assert write_cnn_bundle(run) == out  # a second call replaces it
    with pytest.raises(BlastscanError, match="did not finish"):
        write_cnn_bundle(tmp_path / "not-a-run")


def test_the_classical_head_decides_unless_worse_on_validation():
    import numpy as np

    from blastscan.bundle import HEAD_CLASSICAL, HEAD_CNN
    from blastscan.bundle.build import choose_head

    class Head:  # answers class 0 for every image
        def predict_proba(self, features, k):
            return np.eye(k)[np.zeros(len(features), dtype=int)]

    labels = np.array([0, 0, 1, 1])
    right_logits = np.eye(4)[labels]
    val = (np.zeros((4, 3)), labels, None, right_logits)
    meta = {"classes": ["a", "b", "c", "d"]}
    choice = choose_head(Head(), val, meta)
    assert choice["decides"] == HEAD_CNN and (choice["cnn"]["k"], choice["classical"]["k"]) == (
        4,
        2,
    )
    tie = (np.zeros((4, 3)), labels, None, np.eye(4)[np.zeros(4, dtype=int)])
    assert choose_head(Head(), tie, meta)["decides"] == HEAD_CLASSICAL
    empty = (np.zeros((0, 3)), labels[:0], None, np.zeros((0, 4)))
    assert choose_head(Head(), empty, meta)["decides"] == HEAD_CLASSICAL
