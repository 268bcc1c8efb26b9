"""Finding the images: recursion, order, hidden files, and errors before any model work."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from blastscan.cli import app
from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError
from blastscan.predict import (
    collect_images,
    predict_files,
)


def test_collect_images_recurses_sorts_and_reports_missing(folder, tmp_path):
    files, problems = collect_images([folder, folder / "one.jpg", tmp_path / "nope"])
    names = [p.relative_to(folder).as_posix() for p in files]
    assert names == [
        "a/alpha.png",
        "a/b/deep.tif",
        "a/b/pic.webp",
        "a/broken.jpg",
        "a/gray.bmp",
        "one.jpg",
    ]
    assert problems == [(str(tmp_path / "nope"), "does not exist")]


def test_collect_images_skips_hidden_files_and_hidden_folders(tmp_path):
    root = tmp_path / ".cache" / "smears"  # a hidden folder named explicitly is still scanned
    (root / ".thumbs").mkdir(parents=True)
    (root / "case").mkdir()
    image = Image.fromarray(synthetic_smears(1, 40, seed=2)[0])
    image.save(root / "case" / "cell.jpg")
    image.save(root / ".thumbs" / "cell.jpg")
    (root / "case" / "._cell.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    files, problems = collect_images([root])
    assert files == [root / "case" / "cell.jpg"] and problems == []


def test_a_folder_without_images_or_a_missing_input_raises_before_any_model_work(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "._case.jpg").write_bytes(b"\x00\x05\x16\x07")
    (empty / "notes.txt").write_text("no smears here")
    with pytest.raises(BlastscanError, match=r"empty: no images found \(looked for .*\.jpg"):
        predict_files(None, [empty])  # no bundle: it must raise before using one
    with pytest.raises(BlastscanError, match=r"nope: does not exist"):
        predict_files(None, [tmp_path / "nope"])


def test_cli_predict_on_a_folder_without_images_is_an_error_and_writes_nothing(
    bundle_path, tmp_path
):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out.csv"
    args = ["predict", str(bundle_path), str(tmp_path / "empty"), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "no images found" in result.output
    assert "0 predicted" not in result.output and not out.exists()
