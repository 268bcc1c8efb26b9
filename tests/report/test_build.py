"""The report: both files written into the run directory, from full or minimal metrics."""

import json

from blastscan.outputs import atomic_write_json
from blastscan.report import write_report


def test_both_files_are_written_in_the_run_dir(written):
    run_dir, md, html, _, _ = written
    assert md == run_dir / "report.md" and html == run_dir / "report.html"
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_metrics_round_trip_through_json(tmp_path, metrics):
    atomic_write_json(tmp_path / "metrics.json", metrics)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))


def test_report_survives_minimal_metrics(tmp_path):
    md, html = write_report(tmp_path, {"protocols": {}}, {})
    assert "Table 4" in md.read_text() and "Tusar" in html.read_text()
