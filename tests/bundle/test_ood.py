"""The OOD detector: it flags what is not a smear and passes smears it never saw."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_helpers import SIZE, tiny_model
from helpers import REAL_DATA

from blastscan.bundle.build import fit_ood_from
from blastscan.bundle.ood import (
    Mahalanobis,
    OODDetector,
    fit_ood,
    image_statistics,
    value_chroma_statistics,
)
from blastscan.data.synthetic import synthetic_smears
from blastscan.robustness.corruptions import brightness, contrast, hue
from blastscan.runtime.infer import infer

REAL = REAL_DATA / "Original"


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


def test_value_chroma_statistics_ignore_what_a_value_chroma_network_cannot_see():
    """A hue turn leaves them exactly as they were, a lamp or contrast change nearly so; the
    colour statistics of other networks move under all three."""
    smears = synthetic_smears(12, SIZE, seed=5)
    before = value_chroma_statistics(smears)
    assert before.shape == (12, 9) and np.isfinite(before).all()
    np.testing.assert_allclose(value_chroma_statistics(hue(smears, 30)), before, atol=1e-4)
    for shifted in (brightness(smears, 0.8), contrast(smears, 0.8)):
        assert np.abs(value_chroma_statistics(shifted) - before).max() < 0.05
        assert np.abs(image_statistics(shifted) - image_statistics(smears)).max() > 0.1
    assert np.abs(image_statistics(hue(smears, 30)) - image_statistics(smears)).max() > 0.01


def test_a_value_chroma_detector_passes_hue_turns_and_flags_grayscale_and_non_smears():
    model = tiny_model()
    train, held_out = synthetic_smears(80, SIZE, seed=10), synthetic_smears(40, SIZE, seed=11)
    f_train, f_held = infer(model, train, 40).features, infer(model, held_out, 40).features
    detector = fit_ood_from(
        (f_train, np.arange(80) % 4, train), (f_held, None, held_out), 0.99, "value-chroma"
    )
    assert detector.pixel_statistics == 3 and detector.summary()["pixel_statistics"] == 3
    restored = OODDetector.from_arrays(detector.to_arrays(), detector.summary())
    assert restored.pixel_statistics == 3
    fresh = synthetic_smears(40, SIZE, seed=12)
    plain = detector.pixels.distances(value_chroma_statistics(fresh))
    turned = detector.pixels.distances(value_chroma_statistics(hue(fresh, 90)))
    np.testing.assert_allclose(turned, plain, atol=1e-3)
    gray = np.repeat(fresh.mean(axis=3, keepdims=True).round().astype(np.uint8), 3, axis=3)
    odd = np.concatenate([gray, np.stack(list(_not_smears(SIZE).values()))])
    pixel = detector.pixels.distances(value_chroma_statistics(odd))
    assert (pixel > detector.pixels.threshold).all()
    assert (
        fit_ood_from((f_train, None, train), (f_held, None, held_out), 0.99).pixel_statistics == 2
    )


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
