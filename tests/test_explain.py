"""Grad-CAM: it is the class activation map, batches change nothing, and it follows the content."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bundle_helpers import SIZE, single_thread, tiny_bundle, tiny_model  # noqa: F401
from PIL import Image
from typer.testing import CliRunner

from blastscan.cli import app
from blastscan.data.synthetic import synthetic_smears
from blastscan.explain import colorize, explain_files, grad_cam, overlay, side_by_side
from blastscan.models import darknet19
from blastscan.runtime.infer import infer
from blastscan.training import recompute_bn_statistics


def blob_image(size: int, x: float, y: float, radius: float = 12, rng=None) -> np.ndarray:
    """Plasma-pink field with one dark purple disc (a nucleus) centred at (x, y)."""
    yy, xx = np.mgrid[:size, :size]
    image = np.empty((size, size, 3), np.float32)
    image[:] = (235, 200, 210)
    if rng is not None:
        image += rng.normal(0, 4, image.shape)
    image[(xx - x) ** 2 + (yy - y) ** 2 < radius**2] = (90, 40, 120)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_grad_cam_is_the_class_activation_map():
    """With a linear head after global pooling, Grad-CAM = ReLU(head row . conv19) per cell."""
    model = tiny_model(64)
    images = synthetic_smears(2, 64, seed=4)
    result = grad_cam(model, images, [1, 2])
    assert result.heatmaps.shape == (2, 64, 64) and result.grid == (2, 2)
    with torch.no_grad():
        x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
        cells = model.conv19(model.feature_map(x))  # (N, 1000, 2, 2)
        for i, k in enumerate([1, 2]):
            cam = F.relu(torch.einsum("c,chw->hw", model.head.weight[k], cells[i]))
            cam = F.interpolate(
                cam[None, None], size=(64, 64), mode="bilinear", align_corners=False
            )[0, 0]
            np.testing.assert_allclose(result.heatmaps[i], (cam / cam.max()).numpy(), atol=1e-4)


def test_batch_equals_one_at_a_time_and_defaults_to_the_argmax():
    model = tiny_model(64)
    images = synthetic_smears(3, 64, seed=6)
    batch = grad_cam(model, images)
    assert batch.targets.tolist() == infer(model, images, 3).logits.argmax(1).tolist()
    for i in range(3):
        one = grad_cam(model, images[i : i + 1])
        np.testing.assert_allclose(one.heatmaps[0], batch.heatmaps[i], atol=1e-4)
    assert batch.heatmaps.min() >= 0 and batch.heatmaps.max() == pytest.approx(1.0)
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_explaining_and_predicting_from_threads_at_once_changes_nothing():
    """The web server runs Grad-CAM and plain inference on one shared model in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    model = tiny_model(64)
    images = synthetic_smears(4, 64, seed=8)
    cams = grad_cam(model, images).heatmaps
    logits = infer(model, images, 4).logits
    jobs = [grad_cam, lambda m, x: infer(m, x, 2)] * 6
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: job(model, images), jobs))
    for result in results:
        if hasattr(result, "heatmaps"):
            np.testing.assert_allclose(result.heatmaps, cams, atol=1e-5)
        else:
            np.testing.assert_allclose(result.logits, logits, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
def test_heat_map_moves_with_the_blob():
    """Train a tiny model (a linear head on frozen random features: a few seconds) on images
    where a purple blob's presence decides the class; its Grad-CAM peak must follow the blob
    when the image content is shifted, to within one feature-map cell (32 px)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = darknet19(2)
    labels = np.arange(24) % 2
    train = np.stack([blob_image(96, *rng.uniform(8, 88, 2), 12 if k else -1, rng) for k in labels])
    recompute_bn_statistics(model, train, 24, torch.device("cpu"))
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=2000).fit(infer(model, train, 24).features, labels)
    with torch.no_grad():
        w = torch.as_tensor(probe.coef_[0], dtype=torch.float32)
        model.head.weight.copy_(torch.stack([-w / 2, w / 2]))
        model.head.bias.zero_()
    shifts = np.array([(0, 0), (96, 96), (0, 96), (96, 0)])  # (rows, columns)
    images = np.stack([blob_image(224, 56 + dx, 56 + dy) for dy, dx in shifts])
    result = grad_cam(model, images, [1] * len(images))
    assert (result.probabilities[:, 1] > 0.5).all()
    peaks = np.array([np.unravel_index(h.argmax(), h.shape) for h in result.heatmaps])
    assert np.abs(peaks[0] - 56).max() <= 32  # the unshifted peak sits on the blob
    np.testing.assert_array_less(np.abs((peaks - peaks[0]) - shifts), 33)


def test_pictures_have_the_right_shapes():
    image = Image.fromarray(synthetic_smears(1, 100, seed=1)[0])
    heat = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    assert colorize(heat).shape == (64, 64, 3)
    assert overlay(image, heat).size == (100, 100)
    figure = side_by_side(image, heat, "title", (2, 2))
    assert figure.width > 2.5 * figure.height


def test_explain_files_writes_overlays_and_figures(tmp_path_factory, tmp_path):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp(), size=64)
    Image.fromarray(synthetic_smears(1, 300, seed=3)[0]).save(tmp_path / "cell.jpg")
    (tmp_path / "bad.png").write_bytes(b"no")
    done, problems = explain_files(
        bundle, [tmp_path / "cell.jpg", tmp_path / "bad.png"], tmp_path / "out"
    )
    assert len(done) == 1 and [p for p, _ in problems] == [str(tmp_path / "bad.png")]
    overlay_png, figure_png = Image.open(done[0].overlay), Image.open(done[0].figure)
    assert overlay_png.format == "PNG" and overlay_png.size == (300, 300)
    assert figure_png.format == "PNG" and figure_png.width > 2.5 * figure_png.height
    record = json.loads((tmp_path / "out" / "explanations.json").read_text())
    assert record["images"][0]["predicted"] == done[0].predicted


def test_cli_explain_with_a_target_class(tmp_path_factory, tmp_path):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp(), size=64)
    Image.fromarray(synthetic_smears(1, 64, seed=8)[0]).save(tmp_path / "a.png")
    args = [
        "explain",
        str(bundle),
        str(tmp_path / "a.png"),
        "--out",
        str(tmp_path / "o"),
        "--target",
        "pro-b",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "a_gradcam.png").is_file() and (
        tmp_path / "o" / "a_overlay.png"
    ).is_file()
    explained = json.loads((tmp_path / "o" / "explanations.json").read_text())["images"][0]
    assert explained["explained_class"] == "Pro-B"
    bad = CliRunner().invoke(
        app,
        [
            "explain",
            str(bundle),
            str(tmp_path / "a.png"),
            "--out",
            str(tmp_path / "p"),
            "--target",
            "T-ALL",
        ],
    )
    assert bad.exit_code == 2 and "unknown class" in bad.output


def test_explain_writes_nothing_when_no_image_is_readable(tmp_path_factory, tmp_path):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp(), size=64)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    result = CliRunner().invoke(
        app, ["explain", str(bundle), str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "no readable image" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_explain_says_which_class_the_map_shows(tmp_path_factory, tmp_path):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp(), size=64)
    Image.fromarray(synthetic_smears(1, 64, seed=8)[0]).save(tmp_path / "a.png")
    out = tmp_path / "o"
    decided = CliRunner().invoke(
        app, ["explain", str(bundle), str(tmp_path / "a.png"), "--out", str(out)]
    )
    assert decided.exit_code == 0 and "map of" not in decided.output
    predicted = json.loads((out / "explanations.json").read_text())["images"][0]["predicted"]
    other = next(c for c in ("Benign", "Pro-B") if c != predicted)
    result = CliRunner().invoke(
        app,
        ["explain", str(bundle), str(tmp_path / "a.png"), "--out", str(out), "--target", other],
    )
    assert result.exit_code == 0, result.output
    assert f"{predicted} (" in result.output and f"map of {other})" in result.output


def test_explain_files_refuses_an_output_folder_that_is_a_file(tmp_path_factory, tmp_path):
    from blastscan.errors import BlastscanError

    (tmp_path / "taken").write_text("user data")
    with pytest.raises(BlastscanError, match="is a file; --out takes a folder"):
        explain_files(tmp_path / "no-bundle-needed-yet", [], tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "user data"
