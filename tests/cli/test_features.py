"""`blastscan extract`, `select` and `evaluate` (damaged inputs: test_bad_input.py)."""

from pathlib import Path

from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()


def test_corrupt_features_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "f.npz"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["select", str(bad), "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and "not a readable features file" in result.output
