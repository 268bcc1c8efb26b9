import json
from pathlib import Path

import numpy as np
import pytest

from blastscan.errors import BlastscanError
from blastscan.evaluation import calibration as C


def _synthetic(n: int, k: int, conf: np.ndarray, accuracy: np.ndarray, rng) -> tuple:
    """Rows whose top probability is `conf`, right with probability `accuracy`."""
    y = rng.integers(0, k, n)
    correct = rng.random(n) < accuracy
    wrong = (y + rng.integers(1, k, n)) % k
    top = np.where(correct, y, wrong)
    proba = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    proba[np.arange(n), top] = conf
    return proba, y


def test_perfectly_calibrated_data_has_ece_near_zero():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 40_000)  # above 1/k=0.25, so the top label is the intended one
    proba, y = _synthetic(len(conf), 4, conf, conf, rng)
    assert C.expected_calibration_error(proba, y) < 0.015


def test_over_confident_data_has_large_ece():
    rng = np.random.default_rng(1)
    n = 5000
    proba, y = _synthetic(n, 4, np.full(n, 0.99), np.full(n, 0.7), rng)
    ece = C.expected_calibration_error(proba, y)
    assert ece == pytest.approx(0.99 - np.mean(proba.argmax(1) == y), abs=1e-9)
    assert 0.26 < ece < 0.32


def test_hand_computed_example():
    # n_bins = 2: bins (0, 0.5] and (0.5, 1].
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5], [0.6, 0.4]])
    y = np.array([0, 1, 1, 1, 0])
    # top conf: 0.9 ok, 0.8 wrong, 0.7 ok, 0.5 (argmax 0) wrong, 0.6 ok
    # bin 1 (0.5]: {0.5}: acc 0, conf 0.5 -> gap 0.5, weight 1/5
    # bin 2: {0.9, 0.8, 0.7, 0.6}: acc 3/4, conf 0.75 -> gap 0
    assert C.expected_calibration_error(proba, y, n_bins=2) == pytest.approx(0.1)
    curve = C.reliability_curve(proba, y, n_bins=2)
    assert curve.count.tolist() == [1, 4]
    assert curve.accuracy.tolist() == [0.0, 0.75]
    assert curve.confidence == pytest.approx([0.5, 0.75])
    assert curve.mce == pytest.approx(0.5)
    # 10 bins: each confidence alone in its bin, gaps |1-0.9|, |0-0.8|, |1-0.7|, |0-0.5|, |1-0.6|
    assert C.expected_calibration_error(proba, y, n_bins=10) == pytest.approx(
        (0.1 + 0.8 + 0.3 + 0.5 + 0.4) / 5
    )


def test_curve_counts_every_sample_and_empty_bins_are_nan():
    rng = np.random.default_rng(2)
    proba = C.softmax(rng.normal(size=(200, 4)) * 3)
    y = rng.integers(0, 4, 200)
    curve = C.reliability_curve(proba, y, n_bins=15)
    assert curve.count.sum() == 200
    assert np.isnan(curve.accuracy[curve.count == 0]).all()
    d = curve.to_dict()
    json.dumps(d)  # plain JSON, no NaN literals
    assert d["count"] == curve.count.astype(int).tolist()


def test_softmax_is_stable_and_summary_is_json():
    p = C.softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p, [[1, 0], [0.5, 0.5]])
    s = C.calibration_summary(p, np.array([0, 1]), n_bins=5)
    json.dumps(s)
    assert s["accuracy"] == 0.5 and s["brier"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "proba, y",
    [
        (np.ones((3, 2)) / 2, np.array([0, 1])),  # length mismatch
        (np.ones(3), np.array([0, 1, 0])),  # not 2-D
        (np.full((2, 2), np.nan), np.array([0, 1])),  # NaN
        (np.ones((2, 2)) / 2, np.array([0, 2])),  # label out of range
    ],
)
def test_bad_input_is_a_clear_error(proba, y):
    with pytest.raises(BlastscanError):
        C.expected_calibration_error(proba, y)


def test_plot_reliability_writes_png(tmp_path):
    rng = np.random.default_rng(3)
    proba = C.softmax(rng.normal(size=(100, 4)) * 2)
    y = rng.integers(0, 4, 100)
    path = C.plot_reliability(
        {"CNN": (proba, y), "SVM": (proba[::-1], y)}, tmp_path / "f" / "r.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_calibration_on_a_features_file(tmp_path):
    rng = np.random.default_rng(4)
    n, k = 80, 4
    y = np.repeat(np.arange(k), n // k)
    X = rng.normal(size=(n, 6)) + y[:, None] * 1.5
    logits = np.eye(k)[y] * 3 + rng.normal(size=(n, k))
    paths = np.array([f"data/c{c}/img{i}.png" for i, c in enumerate(y)])
    np.savez(tmp_path / "f.npz", X=X.astype(np.float32), y=y, logits=logits.astype(np.float32),
             paths=paths)  # fmt: skip
    test = [p for i, p in enumerate(paths) if i % 3 == 0]
    train = [p for i, p in enumerate(paths) if i % 3 != 0]
    (tmp_path / "split.json").write_text(json.dumps({"train": train, "test": test}))
    out = C.run_calibration(tmp_path / "f.npz", tmp_path / "split.json", tmp_path / "out",
                            classifier="Linear SVM")  # fmt: skip
    assert set(out["models"]) == {"CNN (softmax)", "Linear SVM (Platt)"}
    for summary in out["models"].values():
        assert summary["n"] == len(test) and 0 <= summary["ece"] <= 1
    assert json.loads((tmp_path / "out" / "calibration.json").read_text())["n_test"] == len(test)
    assert (tmp_path / "out" / "figures" / "reliability.png").is_file()
    (tmp_path / "split.json").write_text(json.dumps({"train": ["nope.png"], "test": test}))
    with pytest.raises(BlastscanError, match="not in"):
        C.run_calibration(tmp_path / "f.npz", tmp_path / "split.json", tmp_path / "o2")


def test_holdout_calibration_fits_on_train_only_and_returns_predictions(tmp_path):
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 30)
    X = rng.normal(size=(90, 5)) + y[:, None] * 2.0
    logits = np.eye(3)[y] * 4 + rng.normal(size=(90, 3))
    train, test = np.arange(0, 90, 3), np.setdiff1d(np.arange(90), np.arange(0, 90, 3))
    out = C.holdout_calibration(X, y, logits, train, test, tmp_path / "r.png", "Linear SVM")
    assert out["n_train"] == 30 and out["n_test"] == 60
    assert Path(out["figure"]).read_bytes()[:4] == b"\x89PNG"
    for name, summary in out["models"].items():
        assert 0 <= summary["ece"] <= 1 and 0 <= summary["brier"] <= 2
        pred = np.asarray(out["predictions"][name])
        assert summary["accuracy"] == pytest.approx(np.mean(pred == y[test]))
