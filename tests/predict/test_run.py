"""Predicting files: every format read, unreadable ones listed, and clean command-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_helpers import DISPLAY
from PIL import Image
from typer.testing import CliRunner

from blastscan.bundle import load_bundle
from blastscan.cli import app
from blastscan.data.synthetic import synthetic_smears
from blastscan.predict import (
    predict_files,
)


def test_predict_files_reads_every_format_and_lists_unreadable(bundle_path, folder):
    bundle = load_bundle(bundle_path)
    seen = []
    run = predict_files(bundle, [folder], batch_size=2, on_progress=seen.append)
    assert len(run.rows) == 5 and sum(seen) == 6
    assert [Path(p).name for p, _ in run.unreadable] == ["broken.jpg"]
    assert "not a readable image" in run.unreadable[0][1]
    for row in run.rows:
        assert row["nearest"] in DISPLAY and row["head"] == "features+classifier"
        assert abs(sum(row[f"p_{n}"] for n in DISPLAY) - 1) < 1e-6
        assert isinstance(row["ood"], bool) and row["ood_distance"] > 0


def test_same_pixels_give_the_same_answer_in_any_container(bundle_path, tmp_path):
    bundle = load_bundle(bundle_path)
    image = synthetic_smears(1, 96, seed=2)[0]
    Image.fromarray(image).save(tmp_path / "x.png")
    Image.fromarray(image).convert("RGBA").save(tmp_path / "y.png")
    run = predict_files(bundle, [tmp_path / "x.png", tmp_path / "y.png"])
    assert run.rows[0]["p_Benign"] == pytest.approx(run.rows[1]["p_Benign"], abs=1e-6)


def test_cli_predict_without_any_readable_image_fails_cleanly(bundle_path, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    out = tmp_path / "r.csv"
    result = CliRunner().invoke(
        app, ["predict", str(bundle_path), str(tmp_path / "bad.png"), "--quiet", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "no readable image" in result.output and "bad.png" in result.output
    assert not out.exists()  # a results file with no result in it would read as a success


def test_cli_predict_on_a_folder_that_is_not_a_bundle(tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 2 and "not a model bundle" in result.output
