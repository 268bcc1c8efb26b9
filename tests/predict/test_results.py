"""Results: CSV and JSON files, and the table the command line prints."""

from __future__ import annotations

import csv
import json

import pytest
from bundle_helpers import DISPLAY
from typer.testing import CliRunner

from blastscan.bundle import load_bundle
from blastscan.cli import app
from blastscan.errors import BlastscanError
from blastscan.predict import predict_files, write_results


def test_results_as_csv_and_json(bundle_path, folder, tmp_path):
    bundle = load_bundle(bundle_path)
    run = predict_files(bundle, [folder])
    write_results(tmp_path / "r.csv", run, bundle)
    write_results(tmp_path / "r.json", run, bundle)
    with open(tmp_path / "r.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and rows[-1]["error"] and rows[-1]["path"].endswith("broken.jpg")
    assert {"path", "predicted", "probability", "head", "p_Pre-B", "ood", "ood_distance"} <= set(
        rows[0]
    )
    payload = json.loads((tmp_path / "r.json").read_text())
    assert len(payload["predictions"]) == 5 and payload["unreadable"][0]["path"].endswith(
        "broken.jpg"
    )
    assert payload["classes"] == DISPLAY and payload["ood_threshold"] > 0
    with pytest.raises(BlastscanError, match=".csv or .json"):
        write_results(tmp_path / "r.txt", run, bundle)


def test_cli_predict_prints_a_table_and_writes_csv(bundle_path, folder, tmp_path):
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(
        app, ["predict", str(bundle_path), str(folder), "--out", str(out), "--batch-size", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "5 predicted, 1 unreadable" in result.output and "unreadable" in result.output
    text = out.read_text()
    assert text.count("\n") == 7 and "broken.jpg" in text
