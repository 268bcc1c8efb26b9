"""`blastscan robustness` and `compare`: the options reach the library, a bundle goes in loaded."""

from pathlib import Path

from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()


def test_robustness_loads_the_bundle_and_passes_the_object(monkeypatch, tmp_path: Path):
    import blastscan.bundle as bundle_module
    import blastscan.robustness as robustness_module

    loaded = object()
    monkeypatch.setattr(bundle_module, "load_bundle", lambda path: (Path(path), loaded))
    seen = {}

    def fake_run(run, data, out, **kwargs):
        seen.update(kwargs)
        return {"scored": "bundle b", "summary": {"clean_accuracy": 0.5}}

    monkeypatch.setattr(robustness_module, "run_robustness", fake_run)
    args = ["robustness", "r", "--data", "d", "--out", str(tmp_path), "--perturbation", "blur"]
    result = runner.invoke(app, [*args, "--bundle", "b", "--head", "cnn"])
    assert result.exit_code == 0, result.output
    assert seen["bundle"] == (Path("b"), loaded) and seen["head"] == "cnn"
    assert list(seen["perturbations"]) == ["blur"]
    assert "bundle b: clean 50.0%" in result.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["bundle"] is None


def test_an_unknown_perturbation_is_a_one_line_error(tmp_path: Path):
    for command in (["robustness", "r"], ["compare", "a", "b"]):
        args = [*command, "--data", "d", "--out", str(tmp_path), "--perturbation", "fog"]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "unknown perturbation(s) ['fog']; choose from" in result.output


def test_battery_passes_its_options_and_prints_the_summary(monkeypatch, tmp_path: Path):
    import blastscan.robustness as robustness_module

    seen = {}

    def fake_battery(run, data, out, **kwargs):
        seen.update(kwargs)
        worst = {"kind": "hue-plus", "severity": 4, "accuracy": 0.25}
        summary = {"clean_accuracy": 1.0, "battery_mean": 0.75, "worst": worst, "mce": 0.5,
                   "relative_mce": 0.4}  # fmt: skip
        return {"scored": "the CNN", "summary": summary}

    monkeypatch.setattr(robustness_module, "run_battery", fake_battery)
    args = ["robustness", "r", "--data", "d", "--out", str(tmp_path), "--battery",
            "--kind", "jpeg", "--images", "8", "--seed", "3", "--reference", "ref.json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["kinds"] == ["jpeg"] and seen["n_images"] == 8 and seen["seed"] == 3
    assert seen["reference"] == Path("ref.json") and seen["bundle"] is None
    assert "battery mean 75.0%; worst 25.0% (hue-plus severity 4); mCE 0.500" in result.output


def test_an_unknown_battery_kind_is_a_one_line_error(tmp_path: Path):
    args = ["robustness", str(tmp_path), "--data", "d", "--out", str(tmp_path / "o"),
            "--battery", "--kind", "fog"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "unknown corruption kind 'fog'" in result.output
