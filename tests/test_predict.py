"""`blastscan predict`: files in, table and CSV/JSON out; unreadable files listed; OOD flags."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bundle import DISPLAY, SIZE, single_thread, tiny_bundle, tiny_model  # noqa: F401
from typer.testing import CliRunner

from blastscan.bundle import load_bundle
from blastscan.cli import app
from blastscan.errors import BlastscanError
from blastscan.features import infer
from blastscan.predict import (
    Mahalanobis,
    OODDetector,
    collect_images,
    fit_ood,
    image_statistics,
    predict_files,
    synthetic_smears,
    write_results,
)

REAL = Path(__file__).resolve().parents[1] / "../shared/data/all-idb-taleqani/Original"


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Images in every common form, in nested folders, with one broken file and a stray text."""
    root = tmp_path_factory.mktemp("images")
    (root / "a" / "b").mkdir(parents=True)
    smears = synthetic_smears(4, 120, seed=5)
    Image.fromarray(smears[0]).save(root / "one.jpg", quality=90)
    Image.fromarray(smears[1]).convert("RGBA").save(root / "a" / "alpha.png")
    Image.fromarray(smears[2]).convert("L").save(root / "a" / "gray.bmp")
    Image.fromarray(smears[3][..., 0].astype(np.uint16) * 257).save(root / "a" / "b" / "deep.tif")
    Image.fromarray(smears[0]).save(root / "a" / "b" / "pic.webp")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


# ---------------------------------------------------------------- OOD


def _not_smears(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)
    return {
        "noise": rng.integers(0, 256, (size, size, 3)).astype(np.uint8),
        "flat gray": np.full((size, size, 3), 128, np.uint8),
        "flat plasma pink": np.full((size, size, 3), (232, 205, 212), np.uint8),
        "white": np.full((size, size, 3), 255, np.uint8),
        "gray ramp": np.repeat(np.tile(ramp, (size, 1))[..., None], 3, axis=2).astype(np.uint8),
        "purple ramp": (np.tile(ramp[:, None, None], (1, size, 1)) * [0.6, 0.3, 0.8]).astype(
            np.uint8
        ),
    }


def test_ood_flags_non_smears_and_passes_smears():
    model = tiny_model()
    train, held_out = synthetic_smears(80, SIZE, seed=10), synthetic_smears(40, SIZE, seed=11)
    f_train, f_held = infer(model, train, 40).features, infer(model, held_out, 40).features
    detector = fit_ood(
        f_train, np.arange(80) % 4, f_held, images=train, calibration_images=held_out
    )
    odd = _not_smears(SIZE)
    odd_images = np.stack(list(odd.values()))
    _, _, flags = detector.score(infer(model, odd_images, 8).features, odd_images)
    assert dict(zip(odd, flags.tolist(), strict=True)) == dict.fromkeys(odd, True)
    fresh = synthetic_smears(60, SIZE, seed=12)
    deep, pixel, fresh_flags = detector.score(infer(model, fresh, 30).features, fresh)
    assert fresh_flags.mean() <= 0.1  # thresholds at the 99th percentile of held-out smears
    noise = odd_images[:1]
    assert detector.distances(infer(model, noise, 1).features)[0] > 3 * detector.threshold


def test_mahalanobis_matches_scipy_for_one_gaussian():
    from scipy.spatial.distance import mahalanobis

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    m = Mahalanobis.fit(X, np.zeros(200, dtype=int))
    x = rng.normal(size=(3, 5))
    expected = [mahalanobis(row, m.means[0], m.precision) for row in x]
    np.testing.assert_allclose(m.distances(x), expected, rtol=1e-10)


def test_ood_takes_the_nearest_class_and_holds_out_a_fifth_without_calibration():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (100, 4)), rng.normal(20, 1, (100, 4))])
    y = np.repeat([0, 1], 100)
    detector = fit_ood(X, y)
    assert detector.n_fit == 160 and detector.n_calibration == 40 and detector.pixels is None
    d = detector.distances(np.array([[0.0] * 4, [20.0] * 4, [10.0] * 4]))
    assert d[0] < 1 and d[1] < 1 and d[2] > 5


def test_a_bundle_detector_keeps_the_pixel_statistics_it_was_fitted_on():
    """Bundles made before log saturation say nothing, and are scored on linear saturation."""
    smears, held_out = synthetic_smears(40, SIZE, seed=3), synthetic_smears(20, SIZE, seed=4)
    rng = np.random.default_rng(0)
    features, held = rng.normal(size=(40, 2)), rng.normal(size=(20, 2))
    detector = fit_ood(features, None, held, images=smears, calibration_images=held_out)
    info, arrays = detector.summary(), detector.to_arrays()
    assert info["pixel_statistics"] == 2
    assert OODDetector.from_arrays(arrays, info).pixel_statistics == 2
    old = OODDetector.from_arrays(
        arrays, {k: v for k, v in info.items() if k != "pixel_statistics"}
    )
    assert old.pixel_statistics == 1
    _, pixel, _ = old.score(features[:5], smears[:5])
    linear = image_statistics(smears[:5], log_saturation=False)
    np.testing.assert_allclose(pixel, old.pixels.distances(linear))
    assert not np.allclose(pixel, old.pixels.distances(image_statistics(smears[:5])))


def test_image_statistics_are_finite_even_for_flat_images():
    stats = image_statistics(np.stack(list(_not_smears(16).values())))
    assert stats.shape == (6, 9) and np.isfinite(stats).all()


# ---------------------------------------------------------------- files


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


def test_predict_files_reads_every_format_and_lists_unreadable(bundle_path, folder):
    bundle = load_bundle(bundle_path)
    seen = []
    run = predict_files(bundle, [folder], batch_size=2, on_progress=seen.append)
    assert len(run.rows) == 5 and sum(seen) == 6
    assert [Path(p).name for p, _ in run.unreadable] == ["broken.jpg"]
    assert "not a readable image" in run.unreadable[0][1]
    for row in run.rows:
        assert row["predicted"] in DISPLAY and row["head"] == "features+classifier"
        assert abs(sum(row[f"p_{n}"] for n in DISPLAY) - 1) < 1e-6
        assert isinstance(row["ood"], bool) and row["ood_distance"] > 0


def test_same_pixels_give_the_same_answer_in_any_container(bundle_path, tmp_path):
    bundle = load_bundle(bundle_path)
    image = synthetic_smears(1, 96, seed=2)[0]
    Image.fromarray(image).save(tmp_path / "x.png")
    Image.fromarray(image).convert("RGBA").save(tmp_path / "y.png")
    run = predict_files(bundle, [tmp_path / "x.png", tmp_path / "y.png"])
    assert run.rows[0]["p_Benign"] == pytest.approx(run.rows[1]["p_Benign"], abs=1e-6)


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


# ---------------------------------------------------------------- command line


def test_cli_predict_prints_a_table_and_writes_csv(bundle_path, folder, tmp_path):
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(
        app, ["predict", str(bundle_path), str(folder), "--out", str(out), "--batch-size", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "5 predicted, 1 unreadable" in result.output and "unreadable" in result.output
    text = out.read_text()
    assert text.count("\n") == 7 and "broken.jpg" in text


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


@pytest.mark.dataset
def test_a_detector_fitted_on_real_smears_flags_non_smears():
    """Real images: OOD fitted on real smears flags noise, flat colours and ramps."""
    if not REAL.is_dir():
        pytest.skip(
            f"real dataset not found at {REAL.resolve()} (ALL-IDB Taleqani, Original/<Class>/*.jpg)"
        )
    from blastscan.data import load_image_array

    paths = [sorted((REAL / c).glob("*.jpg"))[:20] for c in ("Benign", "Early", "Pre", "Pro")]
    images = np.stack([load_image_array(p, 64) for group in paths for p in group])
    labels = np.repeat(np.arange(4), 20)
    model = tiny_model(64)
    feats = infer(model, images, 40).features
    fit_rows, cal_rows = np.arange(80) % 5 != 0, np.arange(80) % 5 == 0
    detector = fit_ood(
        feats[fit_rows],
        labels[fit_rows],
        feats[cal_rows],
        images=images[fit_rows],
        calibration_images=images[cal_rows],
    )
    odd = np.stack([a for a in _not_smears(64).values()])
    _, _, flags = detector.score(infer(model, odd, 8).features, odd)
    assert flags.all()
    # Grayscale copies of smears it never saw: only the colour says they are not stained smears.
    others = [sorted((REAL / c).glob("*.jpg"))[20:30] for c in ("Benign", "Early", "Pre", "Pro")]
    colour = np.stack([load_image_array(p, 64) for group in others for p in group])
    gray = np.repeat(colour.mean(axis=3, keepdims=True).round().astype(np.uint8), 3, axis=3)
    _, pixel, flags = detector.score(infer(model, gray, 40).features, gray)
    assert flags.all() and (pixel > detector.pixels.threshold).all()
    _, _, colour_flags = detector.score(infer(model, colour, 40).features, colour)
    assert colour_flags.mean() < 0.25  # the same smears in colour mostly pass
