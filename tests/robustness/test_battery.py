"""The shift battery: every kind deterministic, shape- and dtype-keeping, ordered by severity;
the summary numbers, mCE, and the battery end to end on a tiny real subset."""

import sys
from pathlib import Path

import numpy as np
import pytest

from blastscan import data as D
from blastscan.errors import BlastscanError
from blastscan.robustness import battery as B
from blastscan.robustness import battery_eval as E
from blastscan.robustness import battery_report as R

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import REAL_DATA  # noqa: E402


@pytest.fixture(scope="module")
def smears() -> np.ndarray:
    return D.synthetic_smears(3, size=48, seed=1)


@pytest.mark.parametrize("name", list(B.BATTERY))
def test_each_kind_is_seeded_keeps_shape_and_grows_with_severity(smears, name):
    distances = []
    for severity in B.SEVERITIES:
        out = B.corrupt(smears, name, severity, seed=3)
        assert out.shape == smears.shape and out.dtype == np.uint8
        assert not np.shares_memory(out, smears)
        assert np.array_equal(out, B.corrupt(smears, name, severity, seed=3))
        distances.append(np.abs(out.astype(float) - smears).mean())
    assert distances[0] > 0
    assert all(b > a for a, b in zip(distances, distances[1:], strict=False)), distances


@pytest.mark.parametrize("name", ["stain-matrix", "motion-blur", "sensor-noise", "precipitate"])
def test_random_kinds_depend_on_the_seed_and_not_on_chunking(smears, name):
    whole = B.corrupt(smears, name, 3, seed=0)
    assert not np.array_equal(whole, B.corrupt(smears, name, 3, seed=1))
    parts = np.concatenate(
        [B.corrupt(smears[:1], name, 3, seed=0), B.corrupt(smears[1:], name, 3, seed=0, first=1)]
    )
    assert np.array_equal(whole, parts)


def test_bad_kind_severity_and_batch_give_one_line_errors(smears):
    with pytest.raises(BlastscanError, match="unknown corruption kind"):
        B.corrupt(smears, "fog", 1)
    with pytest.raises(BlastscanError, match="severity"):
        B.corrupt(smears, "jpeg", 6)
    with pytest.raises(BlastscanError, match="uint8"):
        B.corrupt(smears.astype(np.float32), "jpeg", 1)


def _result(accuracies: dict[str, list[float]], clean: float) -> dict:
    def cell(a):
        return {"accuracy": {"value": a}, "ood": None}

    kinds = {k: {"cells": [cell(a) for a in row]} for k, row in accuracies.items()}
    return {"clean": cell(clean), "kinds": kinds}


def test_summary_and_mce_against_a_reference():
    model = _result({"a": [0.9, 0.8, 0.7, 0.6, 0.5], "b": [1.0, 1.0, 0.95, 0.9, 0.85]}, 1.0)
    ref = _result({"a": [0.8, 0.6, 0.4, 0.2, 0.0], "b": [1.0, 1.0, 0.9, 0.8, 0.7]}, 0.9)
    s = E.battery_summary(model, ref)
    assert s["battery_mean"] == pytest.approx(0.82)
    assert s["worst"] == {"kind": "a", "severity": 5, "accuracy": 0.5}
    assert s["worst_up_to_3"] == {"kind": "a", "severity": 3, "accuracy": 0.7}
    assert s["ce"]["a"] == pytest.approx(1.5 / 3.0) and s["ce"]["b"] == pytest.approx(0.3 / 0.6)
    # relative: (1.5 - 0) / (3.0 - 5 * 0.1) and (0.3 - 0) / (0.6 - 0.5)
    assert s["relative_ce"]["a"] == pytest.approx(1.5 / 2.5)
    assert s["relative_ce"]["b"] == pytest.approx(3.0)
    assert s["mce"] == pytest.approx(0.5)
    assert E.battery_summary(ref, ref)["mce"] == pytest.approx(1.0)


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"the real dataset is not at {REAL_DATA}")
def test_battery_runs_on_a_tiny_real_subset(tmp_path):
    classes = sorted(p for p in (REAL_DATA / "Original").iterdir() if p.is_dir())
    paths = [f for c in classes for f in sorted(c.iterdir())[:2]]
    images = np.stack([D.load_image_array(p, 32) for p in paths])
    labels = np.repeat(np.arange(len(classes)), 2)
    bright = np.median(images.mean((1, 2, 3)))

    def scorer(x):  # a stand-in model: darker than the clean median is class 0
        mean = x.mean((1, 2, 3))
        return np.where(mean < bright, 0, 1), mean > 1.1 * bright

    result = E.evaluate_battery(scorer, images, labels, seed=0)
    assert list(result["kinds"]) == list(B.BATTERY)
    down = [c["ood"]["value"] for c in result["kinds"]["brightness-up"]["cells"]]
    assert down[-1] > down[0]  # the stand-in's OOD flag fires more as the lamp brightens
    assert 0 <= result["summary"]["battery_mean"] <= 1
    table = R.battery_table_markdown(result)
    assert "out-of-distribution" in table and "| air-bubbles |" in table
    assert R.plot_battery(result, tmp_path / "battery.png").stat().st_size > 0


def test_a_reference_that_is_no_battery_is_a_one_line_error(tmp_path):
    bad = tmp_path / "robustness.json"
    bad.write_text('{"perturbations": {}}')
    with pytest.raises(BlastscanError, match="not a battery.json"):
        R.load_reference(bad)
    assert R._names(["/a/Pre/x.png"]) == R._names(["/elsewhere/Pre/x.png"])
