"""The bundle a user gets by default is the safe one: `train` writes it with the OOD detector
and the deciding head; a bundle without a detector is loud everywhere it is used; a flagged
image's class reads as not to be trusted in the table, the CSV, the JSON and the web page."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import DISPLAY, tiny_meta, tiny_parts
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from blastscan import serve as S
from blastscan.bundle import load_bundle, write_bundle
from blastscan.cli import app

runner = CliRunner()


def non_smears(folder: Path, size: int = 48) -> Path:
    """Images no smear looks like: sensor noise, a flat dark field, a grey ramp, pure colour."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0, 255, size, dtype=np.uint8), (size, 1))
    images = {
        "noise": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "dark": np.full((size, size, 3), 20, np.uint8),
        "ramp": np.stack([ramp] * 3, axis=-1),
        "green": np.broadcast_to(np.array([0, 200, 0], np.uint8), (size, size, 3)).copy(),
    }
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`blastscan train` with its defaults (tiny: 1 epoch at 32 px), as a new user runs it."""
    from helpers import make_image_folder

    root = tmp_path_factory.mktemp("safe")
    data = make_image_folder(root / "data", per_class=10, size=32)
    args = ["train", "--data", str(data), "--out", str(root / "run"), "--epochs", "1",
            "--batch-size", "8", "--image-size", "32", "--quiet",
            "--cache-dir", str(root / "cache")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return root / "run"


def test_train_writes_a_bundle_with_ood_and_the_deciding_head(trained):
    bundle = load_bundle(trained / "bundle")
    assert bundle.ood is not None and bundle.default_head == "features+classifier"
    rate = bundle.manifest["metrics"]["ood_false_flags"]
    assert rate["n"] == bundle.manifest["metrics"]["n_test"] and rate["target"] == pytest.approx(
        0.01
    )
    card = (trained / "bundle" / "MODEL_CARD.md").read_text()
    assert f"{rate['k']} of the run's {rate['n']} held-out test images flagged" in card


def test_the_default_path_flags_images_unlike_smears(trained, tmp_path):
    folder = non_smears(tmp_path / "odd")
    out = tmp_path / "results.csv"
    result = runner.invoke(
        app, ["predict", str(trained / "bundle"), str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 4
    for row in rows:
        assert row["ood"] == "True", row
        assert row["predicted"] == "out of distribution" and row["class"] == "out_of_distribution"
        assert row["nearest"] in DISPLAY
    assert "warning" not in result.output


@pytest.fixture
def unchecked_bundle(tmp_path) -> Path:
    """A bundle as older versions wrote them (or made with --cnn-only): no OOD detector."""
    model, _, _, _ = tiny_parts()
    return write_bundle(tmp_path / "old", model, tiny_meta(), ood=None)


def test_predict_with_a_bundle_without_ood_warns_and_says_unchecked(unchecked_bundle, tmp_path):
    folder = non_smears(tmp_path / "odd", size=32)
    result = runner.invoke(app, ["predict", str(unchecked_bundle), str(folder), "--out", "-"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "has no OOD detector" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["ood"] for r in rows] == ["unchecked"] * 4  # never False: nothing was checked
    assert all(r["predicted"] in DISPLAY for r in rows)
    table = runner.invoke(app, ["predict", str(unchecked_bundle), str(folder)], terminal_width=200)
    assert "unchecked" in table.stdout and "no OOD check" in " ".join(table.stdout.split())


def test_serve_says_when_a_bundle_cannot_flag(unchecked_bundle):
    with TestClient(S.create_app(unchecked_bundle)) as client:
        page = client.get("/").text
        assert 'id="unchecked"' in page and "no out-of-distribution detector" in page
        assert client.get("/health").json()["ood_check"].startswith("unchecked")
        buffer = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), 20, np.uint8)).save(buffer, format="PNG")
        files = {"file": ("dark.png", buffer.getvalue(), "image/png")}
        body = client.post("/api/predict", files=files).json()
        assert body["ood"] == "unchecked" and body["predicted"] in DISPLAY


def test_flagged_images_read_as_untrusted_in_json_and_on_the_page(trained, tmp_path):
    folder = non_smears(tmp_path / "odd")
    out = tmp_path / "results.json"
    result = runner.invoke(
        app, ["predict", str(trained / "bundle"), str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    predictions = json.loads(out.read_text())["predictions"]
    assert {p["predicted"] for p in predictions} == {"out of distribution"}
    assert all(p["ood"] is True and p["nearest"] in DISPLAY for p in predictions)
    with TestClient(S.create_app(trained / "bundle")) as client:
        page = client.get("/").text
        assert 'id="unchecked"' not in page and "Do not trust the class" in page
        files = {"file": ("noise.png", (folder / "noise.png").read_bytes(), "image/png")}
        body = client.post("/api/predict", files=files).json()
        assert body["predicted"] == "out of distribution" and body["ood"] is True
