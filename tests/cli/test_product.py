"""`blastscan predict`'s output: the table, CSV on stdout, and the OOD caption."""

import pytest
from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def sixty_smears(tmp_path_factory):
    """A bundle and a folder of 60 images: more rows than the table shows beside --out."""
    from bundle_helpers import tiny_bundle
    from PIL import Image

    from blastscan.data.synthetic import synthetic_smears

    root = tmp_path_factory.mktemp("sixty")
    folder = root / "smears"
    folder.mkdir()
    for i, smear in enumerate(synthetic_smears(60, 48, seed=5)):
        Image.fromarray(smear).save(folder / f"s{i:02d}.png")
    return tiny_bundle(root, classical=False), folder


def test_predict_without_out_shows_every_row(sixty_smears):
    bundle, folder = sixty_smears
    result = runner.invoke(app, ["predict", str(bundle), str(folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "s59.png" in result.output and "more (see --out)" not in result.output
    assert "no OOD check" not in " ".join(result.output.split())  # tiny_bundle has a detector


def test_predict_says_when_a_bundle_has_no_ood_check(sixty_smears, tmp_path):
    from bundle_helpers import tiny_meta, tiny_parts

    from blastscan.bundle import write_bundle

    _, folder = sixty_smears
    model, _, _, _ = tiny_parts()
    bundle = write_bundle(tmp_path / "no-ood", model, tiny_meta(), ood=None)
    result = runner.invoke(
        app, ["predict", str(bundle), str(folder / "s00.png")], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "no OOD check in this bundle" in " ".join(result.output.split())  # caption may wrap


def test_predict_to_stdout_writes_only_csv_there(sixty_smears):
    import csv
    import io

    bundle, folder = sixty_smears
    result = CliRunner().invoke(app, ["predict", str(bundle), str(folder), "--out", "-"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 60 and rows[0]["path"].endswith("s00.png")
    assert "60 predicted" in result.stderr


def test_predict_quiet_without_out_is_refused_before_any_work(sixty_smears, tmp_path):
    bundle, folder = sixty_smears
    result = runner.invoke(app, ["predict", str(tmp_path / "absent"), str(folder), "--quiet"])
    assert result.exit_code == 2
    assert "--quiet without --out would show no prediction" in result.output
