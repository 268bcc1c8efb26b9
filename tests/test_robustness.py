import json

import numpy as np
import pytest
import torch

from blastscan import robustness as R
from blastscan.errors import BlastscanError


@pytest.fixture
def batch() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(20, 236, (3, 16, 16, 3)).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(R.PERTURBATIONS))
def test_every_perturbation_keeps_shape_dtype_and_identity(batch, name):
    p = R.PERTURBATIONS[name]
    for strength in R.DEFAULT_GRID[name]:
        out = R.perturb(batch, name, strength)
        assert out.shape == batch.shape and out.dtype == np.uint8
        assert not np.shares_memory(out, batch)
    if p.identity is not None:
        assert np.array_equal(R.perturb(batch, name, p.identity), batch)
    with pytest.raises(BlastscanError):
        R.perturb(batch.astype(np.float32), name, 1.0)


def test_unknown_perturbation():
    with pytest.raises(BlastscanError, match="unknown perturbation"):
        R.perturb(np.zeros((1, 2, 2, 3), np.uint8), "fog", 1.0)


def test_brightness_scales_and_clips():
    x = np.array([[[[100, 200, 250]]]], np.uint8)
    assert R.brightness(x, 0.5).ravel().tolist() == [50, 100, 125]
    assert R.brightness(x, 1.4).ravel().tolist() == [140, 255, 255]


def test_contrast_keeps_the_mean_and_scales_deviations(batch):
    out = R.contrast(batch, 0.6).astype(float)
    x = batch.astype(float)
    assert out.mean(axis=(1, 2, 3)) == pytest.approx(x.mean(axis=(1, 2, 3)), abs=0.6)
    assert out.std(axis=(1, 2, 3)) == pytest.approx(0.6 * x.std(axis=(1, 2, 3)), rel=0.02)


def test_hue_rotation_matches_hsv_definition():
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    red = np.array([[[[255, 0, 0], [128, 128, 128]]]], np.uint8)
    out = R.hue(red, 120)
    assert out[0, 0, 0].tolist() == [0, 255, 0]  # red -> green
    assert out[0, 0, 1].tolist() == [128, 128, 128]  # grey has no hue
    assert np.array_equal(R.hue(red, 360), red)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    for degrees in (-30, 15, 200):
        hsv = rgb_to_hsv(x / 255.0)
        hsv[..., 0] = (hsv[..., 0] + degrees / 360) % 1
        ref = np.clip(np.rint(hsv_to_rgb(hsv) * 255), 0, 255)
        assert np.abs(R.hue(x, degrees).astype(int) - ref).max() <= 1


def test_stain_keeps_white_and_darkens_dye():
    x = np.array([[[[255, 255, 255], [128, 64, 200]]]], np.uint8)
    darker, lighter = R.stain(x, 1.4), R.stain(x, 0.7)
    assert darker[0, 0, 0].tolist() == [255, 255, 255] == lighter[0, 0, 0].tolist()
    assert (darker[0, 0, 1] < x[0, 0, 1]).all() and (lighter[0, 0, 1] > x[0, 0, 1]).all()
    assert darker[0, 0, 1, 0] == round(255 * (128 / 255) ** 1.4)


def test_blur_smooths_and_keeps_flat_images(batch):
    flat = np.full((1, 12, 12, 3), 77, np.uint8)
    assert np.array_equal(R.blur(flat, 2.0), flat)
    stds = [R.blur(batch, s).astype(float).std() for s in (0.0, 1.0, 3.0)]
    assert stds[0] > stds[1] > stds[2]


def test_jpeg_loses_more_at_low_quality(batch):
    yy, xx = np.mgrid[:32, :32]  # JPEG is made for smooth, natural images
    smooth = np.stack([yy * 6, xx * 6, (yy + xx) * 3], axis=-1)[None].astype(np.uint8) + 20
    err = [np.abs(R.jpeg(smooth, q).astype(int) - smooth).mean() for q in (95, 10)]
    assert err[0] < 3 and err[1] > err[0]
    with pytest.raises(BlastscanError):
        R.jpeg(batch, 0)


def test_normalize_stain_hits_targets_and_removes_affine_colour_shifts():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 24) * 0.5 + 0.2
    out = R.normalize_stain(x)
    assert out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out.mean(dim=(2, 3)), torch.tensor([R.TARGET_MEAN] * 2), atol=1e-5)
    assert torch.allclose(
        out.std(dim=(2, 3), unbiased=False), torch.tensor([R.TARGET_STD] * 2), atol=2e-3
    )
    # brightness, contrast and per-channel stain scales, without clipping: the same output
    gain = torch.tensor([0.7, 0.9, 1.2]).view(1, 3, 1, 1)
    shifted = (x * gain + 0.05).clamp(0, 1)
    assert torch.allclose(R.normalize_stain(shifted), out, atol=5e-3)
    layer = R.StainNorm()
    assert len(layer.state_dict()) == 0
    assert torch.allclose(layer(x), out)
    with pytest.raises(BlastscanError):
        R.normalize_stain(torch.rand(3, 8, 8))


class MeanModel(torch.nn.Module):
    """Class 1 if an image's mean is above 0.5, else class 0: brightness-sensitive on purpose."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def features(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]

    def head(self, f):
        return torch.cat([-(f - 0.5), f - 0.5], dim=1) * self.scale


def _two_level_images():
    images = np.concatenate(
        [np.full((4, 8, 8, 3), 100, np.uint8), np.full((4, 8, 8, 3), 160, np.uint8)]
    )
    return images, np.array([0] * 4 + [1] * 4)


def test_evaluate_robustness_counts_right(tmp_path):
    images, labels = _two_level_images()
    grid = {"brightness": (0.7, 1.4), "blur": (1.0,)}
    result = R.evaluate_robustness(MeanModel(), images, labels, grid, batch_size=3, chunk=5)
    json.dumps(result)
    assert result["n"] == 8 and result["clean"]["accuracy"]["value"] == 1.0
    bright = {
        pt["strength"]: pt["accuracy"] for pt in result["perturbations"]["brightness"]["points"]
    }
    assert bright[0.7]["value"] == 0.5 and bright[1.4]["value"] == 0.5  # one class flips each way
    assert bright[0.7]["low"] < 0.5 < bright[0.7]["high"] and bright[0.7]["n"] == 8
    assert result["perturbations"]["blur"]["points"][0]["accuracy"]["value"] == 1.0
    assert result["summary"]["brightness_0.7_1.3_worst"] == {"strength": 0.7, "accuracy": 0.5}
    table = R.robustness_table_markdown(result)
    assert "| brightness | x0.7 | 50.0% |" in table and "-50.0 pp" in table
    assert table.count("\n") == 2 + 1 + 3
    path = R.plot_robustness(result, tmp_path / "figures" / "robustness.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(BlastscanError, match="unknown"):
        R.evaluate_robustness(MeanModel(), images, labels, {"fog": (1,)})
    with pytest.raises(BlastscanError):
        R.evaluate_robustness(MeanModel(), images, labels[:3])


def _coloured_shapes() -> tuple[np.ndarray, np.ndarray]:
    """Three classes, each with a colour of its own and a dark square in a quadrant of its own."""
    rng = np.random.default_rng(0)
    base = np.array([[0.35, 0.5, 0.6], [0.6, 0.4, 0.5], [0.5, 0.6, 0.35]])
    images, labels = [], []
    for k in range(3):
        for _ in range(5):
            x = base[k] + rng.normal(0, 0.02, (16, 16, 3))
            r, c = divmod(k, 2)
            x[8 * r : 8 * r + 8, 8 * c : 8 * c + 8] -= 0.2
            images.append(np.rint(x * 255).astype(np.uint8))
            labels.append(k)
    return np.stack(images), np.array(labels)


def _by_colour(colours: np.ndarray):
    """Predicts the class whose mean colour is nearest the image's: a pure colour reader."""

    def predict(images):
        means = images.reshape(len(images), -1, 3).mean(1) / 255
        pred = np.linalg.norm(means[:, None] - colours[None, :, 0], axis=2).argmin(1)
        return pred, np.eye(3)[pred]

    return predict


def _by_shape(images):
    """Predicts from where the dark square is: blind to colour."""
    grey = images.astype(float).mean(3)
    quadrants = np.stack([grey[:, :8, :8], grey[:, :8, 8:], grey[:, 8:, :8]], 1).mean((2, 3))
    pred = quadrants.argmin(1)
    return pred, np.eye(3)[pred]


def test_recolour_moves_each_channel_to_the_colour_at_8_bits():
    images, labels = _coloured_shapes()
    colours = R.class_colours(images, labels, 3)
    assert colours.shape == (3, 2, 3)
    moved = R.recolour(images[labels == 0], colours[2])
    assert moved.dtype == np.uint8
    np.testing.assert_allclose(moved.reshape(-1, 3).mean(0) / 255, colours[2, 0], atol=2e-3)
    with pytest.raises(BlastscanError, match="class"):
        R.class_colours(images[labels < 2], labels[labels < 2], 3)


def test_colour_swap_tells_a_colour_reader_from_a_shape_reader():
    images, labels = _coloured_shapes()
    colours = R.class_colours(images, labels, 3)
    reader = R.evaluate_colour_swap(_by_colour(colours), images, labels, colours, chunk=4)
    json.dumps(reader)
    values = np.array([[a["value"] for a in row] for row in reader["matrix"]])
    np.testing.assert_array_equal(values, np.eye(3))  # right only in its own class's colour
    assert reader["own_colour"]["value"] == 1 and reader["other_colour"]["value"] == 0
    assert reader["follows_the_colour"]["value"] == 1 and reader["other_colour"]["n"] == 30
    blind = R.evaluate_colour_swap(_by_shape, images, labels, colours)
    assert blind["other_colour"]["value"] == 1 and blind["follows_the_colour"]["value"] == 0
    table = R.colour_swap_markdown(reader, ["a", "b", "c"])
    assert "| a | 100.0% | 0.0% | 0.0% |" in table and "100.0% of the answers" in table


def test_run_robustness_on_a_run_directory(image_folder, tmp_path):
    """An untrained checkpoint in a run directory: the plumbing, files and split handling."""
    from blastscan import data as D
    from blastscan import training as T
    from blastscan.models import darknet19

    dataset = D.scan_dataset(image_folder)
    run = tmp_path / "run"
    test = [s.path for i, s in enumerate(dataset.samples) if i % 3 == 0]
    train = [s.path for i, s in enumerate(dataset.samples) if i % 3 != 0]
    (run / "checkpoints").mkdir(parents=True)
    (run / "split.json").write_text(json.dumps({"train": train, "val": [], "test": test}))
    torch.manual_seed(0)
    model = darknet19(4)
    meta = {"classes": dataset.classes, "display_names": dataset.display_names, "image_size": 32,
            "epoch": 0, "history": []}  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    T.save_checkpoint(run / "checkpoints" / "final.safetensors", model, opt, meta)
    out = tmp_path / "out"
    grid = {"brightness": (0.8,), "jpeg": (50.0,)}
    result = R.run_robustness(
        run, image_folder, out, cache_dir=tmp_path / "cache", perturbations=grid
    )
    assert result["n"] == len(test) and result["classes"] == dataset.display_names
    assert result["checkpoint"] == "final" and result["epochs_trained"] == 1
    saved = json.loads((out / "robustness.json").read_text())
    assert saved["perturbations"]["jpeg"]["points"][0]["strength"] == 50.0
    assert (out / "figures" / "robustness.png").is_file() and (out / "robustness.md").is_file()
    swap = saved["colour_swap"]
    assert len(swap["matrix"]) == 4 and swap["other_colour"]["n"] == 3 * len(test)
    assert saved["summary"]["colour_swap_follows_the_colour"] == swap["follows_the_colour"]["value"]
    assert "in the colour of" in (out / "robustness.md").read_text()
    plain = R.run_robustness(
        run, image_folder, tmp_path / "plain", tmp_path / "cache", grid, colour_swap=False
    )
    assert (
        "colour_swap" not in plain
        and "in the colour of" not in (tmp_path / "plain" / "robustness.md").read_text()
    )
    (tmp_path / "taken").write_text("user data")
    with pytest.raises(BlastscanError, match="is a file; --out takes a folder"):
        R.run_robustness(run, image_folder, tmp_path / "taken", tmp_path / "cache", grid)
    (run / "split.json").write_text(json.dumps({"train": [], "val": [], "test": test}))
    with pytest.MonkeyPatch.context() as patch, pytest.raises(BlastscanError, match="no train"):
        patch.setattr(R, "evaluate_robustness", lambda *a, **k: pytest.fail("perturbed first"))
        R.run_robustness(run, image_folder, out, tmp_path / "cache", grid)
    R.run_robustness(run, image_folder, out, tmp_path / "cache", grid, colour_swap=False)
    (run / "split.json").write_text(json.dumps({"train": train, "test": ["x/Benign/missing.png"]}))
    with pytest.raises(BlastscanError, match="not there"):
        R.run_robustness(run, image_folder, out, cache_dir=tmp_path / "cache", perturbations=grid)


def test_run_robustness_scores_a_bundles_classifier_head(image_folder, tmp_path):
    """With a bundle of the run, the features + classifier decision is what gets scored."""
    from blastscan import data as D
    from blastscan import training as T
    from blastscan.bundle import bundle_from_run
    from blastscan.models import darknet19

    dataset = D.scan_dataset(image_folder)
    run = tmp_path / "run"
    paths = [s.path for s in dataset.samples]
    split = {"train": paths[1::3] + paths[2::3], "val": [], "test": paths[0::3]}
    (run / "checkpoints").mkdir(parents=True)
    (run / "split.json").write_text(json.dumps(split))
    meta = {"classes": dataset.classes, "display_names": dataset.display_names, "image_size": 32,
            "epoch": 0, "history": []}  # fmt: skip
    torch.manual_seed(0)
    model = darknet19(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    T.save_checkpoint(run / "checkpoints" / "final.safetensors", model, opt, meta)
    bundle = bundle_from_run(
        run, tmp_path / "bundle", image_folder, classifier="Fine KNN", n_features=8,
        show_progress=False, cache_dir=tmp_path / "cache",
    )  # fmt: skip
    grid = {"brightness": (1.2,)}
    result = R.run_robustness(
        run, image_folder, tmp_path / "out", cache_dir=tmp_path / "cache", perturbations=grid,
        bundle=bundle,
    )  # fmt: skip
    assert "features+classifier" in result["scored"] and result["n"] == len(split["test"])
    cnn = R.run_robustness(
        run, image_folder, tmp_path / "out2", cache_dir=tmp_path / "cache", perturbations=grid
    )
    assert cnn["scored"] == "the CNN's softmax head"

    torch.manual_seed(1)  # another network in the run: the bundle no longer belongs to it
    other = darknet19(4)
    T.save_checkpoint(run / "checkpoints" / "final.safetensors", other, opt, meta)
    with pytest.raises(BlastscanError, match="not .*'s; bundle this run"):
        R.run_robustness(run, image_folder, tmp_path / "out3", perturbations=grid, bundle=bundle)
