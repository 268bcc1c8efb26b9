"""Paired comparison of two runs: McNemar's exact test and `compare_runs` on run directories."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blastscan import data as D
from blastscan import training as T
from blastscan.cli import app
from blastscan.errors import BlastscanError
from blastscan.evaluation import mcnemar
from blastscan.models import darknet19
from blastscan.robustness.paired import compare_runs


def test_mcnemar_counts_only_the_images_one_classifier_gets_right():
    a = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1], bool)
    b = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1], bool)
    test = mcnemar(a, b)
    assert (test["a_only"], test["b_only"], test["both_wrong"]) == (0, 5, 1)
    assert test["p_value"] == pytest.approx(2 * 0.5**5)  # 5 of 5 discordant go to B
    assert test["difference"] == pytest.approx(5 / 12)
    assert test["accuracy_a"]["k"] == 6 and test["accuracy_b"]["k"] == 11


def test_mcnemar_of_equal_results_is_one_and_of_balanced_disagreement_is_one():
    same = np.array([1, 0, 1], bool)
    assert mcnemar(same, same)["p_value"] == 1.0
    a, b = np.array([1, 0, 1, 0], bool), np.array([0, 1, 0, 1], bool)
    assert mcnemar(a, b)["p_value"] == pytest.approx(1.0)
    with pytest.raises(BlastscanError, match="shape"):
        mcnemar(a, b[:3])


def _run(folder: Path, run: Path, split: dict, seed: int) -> Path:
    dataset = D.scan_dataset(folder)
    (run / "checkpoints").mkdir(parents=True)
    (run / "split.json").write_text(json.dumps(split))
    meta = {"classes": dataset.classes, "display_names": dataset.display_names, "image_size": 32,
            "epoch": 0, "history": []}  # fmt: skip
    torch.manual_seed(seed)
    model = darknet19(4)
    T.save_checkpoint(
        run / "checkpoints" / "final.safetensors", model, torch.optim.SGD(model.parameters()), meta
    )
    return run


def test_compare_runs_pairs_the_same_images(image_folder, tmp_path):
    paths = [s.path for s in D.scan_dataset(image_folder).samples]
    split = {"train": paths[1::3] + paths[2::3], "val": [], "test": paths[0::3]}
    a = _run(image_folder, tmp_path / "a", split, seed=0)
    b = _run(image_folder, tmp_path / "b", split, seed=1)
    out = tmp_path / "cmp"
    result = compare_runs(a, b, image_folder, out, {"brightness": (0.8,)}, tmp_path / "cache")
    assert [(r["condition"], r["strength"]) for r in result["rows"]] == [
        ("clean", ""), ("brightness", "x0.8")
    ]  # fmt: skip
    for row in result["rows"]:
        assert row["n"] == len(split["test"])
        k_a, k_b = row["accuracy_a"]["k"], row["accuracy_b"]["k"]
        assert row["b_only"] - row["a_only"] == k_b - k_a
    assert json.loads((out / "compare.json").read_text())["n"] == len(split["test"])
    assert "McNemar p" in (out / "compare.md").read_text()

    (tmp_path / "taken").write_text("user data")
    with pytest.raises(BlastscanError, match="is a file; --out takes a folder"):
        compare_runs(a, b, image_folder, tmp_path / "taken", cache_dir=tmp_path / "cache")
    with pytest.raises(BlastscanError, match="A and B are the same run"):
        compare_runs(a, a, image_folder, tmp_path / "self", cache_dir=tmp_path / "cache")
    copy = shutil.copytree(a, tmp_path / "a-copy")  # the same network under another name
    itself = compare_runs(a, copy, image_folder, tmp_path / "self", cache_dir=tmp_path / "cache")
    row = itself["rows"][0]
    assert (row["a_only"], row["b_only"], row["p_value"]) == (0, 0, 1.0)
    # the shift battery, paired: both networks see the same corrupted images
    battered = compare_runs(a, copy, image_folder, tmp_path / "battery",
                            cache_dir=tmp_path / "cache", battery=["jpeg"], n_images=3)  # fmt: skip
    assert [(r["condition"], r["strength"]) for r in battered["rows"]] == [
        ("clean", ""), *[("jpeg", f"severity {s}") for s in range(1, 6)]
    ]  # fmt: skip
    assert all(r["n"] == 3 and r["a_only"] == r["b_only"] == 0 for r in battered["rows"])

    other = _run(image_folder, tmp_path / "c", {**split, "test": paths[1::3]}, seed=0)
    with pytest.raises(BlastscanError, match="held out different test images"):
        compare_runs(a, other, image_folder, tmp_path / "x", cache_dir=tmp_path / "cache")


def test_compare_command_names_an_unknown_perturbation(tmp_path):
    result = CliRunner().invoke(
        app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--data", str(tmp_path),
              "--out", str(tmp_path / "o"), "--perturbation", "fog"],
    )  # fmt: skip
    assert result.exit_code == 2 and "unknown perturbation(s) ['fog']" in result.output


def test_compare_command_reports_each_condition_on_stderr(image_folder, tmp_path):
    paths = [s.path for s in D.scan_dataset(image_folder).samples]
    split = {"train": paths[1::3] + paths[2::3], "val": [], "test": paths[0::3]}
    a = _run(image_folder, tmp_path / "a", split, seed=0)
    b = _run(image_folder, tmp_path / "b", split, seed=1)
    args = ["compare", str(a), str(b), "--data", str(image_folder), "--out", str(tmp_path / "o"),
            "--perturbation", "brightness"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "brightness x0.7: A " in result.stderr and "McNemar p = " in result.stderr
    quiet = CliRunner().invoke(app, [*args[:-4], "--out", str(tmp_path / "q"), "--quiet"])
    assert quiet.exit_code == 0 and "McNemar" not in quiet.stderr
