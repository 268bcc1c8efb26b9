"""Robustness on a run directory: files written, split handling, a loaded bundle's head scored."""

import json

import pytest
import torch

from blastscan.errors import BlastscanError
from blastscan.robustness import runs


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
    result = runs.run_robustness(
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
    plain = runs.run_robustness(
        run, image_folder, tmp_path / "plain", tmp_path / "cache", grid, colour_swap=False
    )
    assert (
        "colour_swap" not in plain
        and "in the colour of" not in (tmp_path / "plain" / "robustness.md").read_text()
    )
    (tmp_path / "taken").write_text("user data")
    with pytest.raises(BlastscanError, match="is a file; --out takes a folder"):
        runs.run_robustness(run, image_folder, tmp_path / "taken", tmp_path / "cache", grid)
    (run / "split.json").write_text(json.dumps({"train": [], "val": [], "test": test}))
    with pytest.MonkeyPatch.context() as patch, pytest.raises(BlastscanError, match="no train"):
        patch.setattr(runs, "evaluate_robustness", lambda *a, **k: pytest.fail("perturbed first"))
        runs.run_robustness(run, image_folder, out, tmp_path / "cache", grid)
    runs.run_robustness(run, image_folder, out, tmp_path / "cache", grid, colour_swap=False)
    (run / "split.json").write_text(json.dumps({"train": train, "test": ["x/Benign/missing.png"]}))
    with pytest.raises(BlastscanError, match="not there"):
        runs.run_robustness(
            run, image_folder, out, cache_dir=tmp_path / "cache", perturbations=grid
        )


def test_run_robustness_scores_a_bundles_classifier_head(image_folder, tmp_path):
    """With a bundle of the run, the features + classifier decision is what gets scored."""
    from blastscan import data as D
    from blastscan import training as T
    from blastscan.bundle import bundle_from_run, load_bundle
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
    bundle = load_bundle(
        bundle_from_run(
            run, tmp_path / "bundle", image_folder, classifier="Fine KNN", n_features=8,
            show_progress=False, cache_dir=tmp_path / "cache",
        )
    )  # fmt: skip
    grid = {"brightness": (1.2,)}
    result = runs.run_robustness(
        run, image_folder, tmp_path / "out", cache_dir=tmp_path / "cache", perturbations=grid,
        bundle=bundle,
    )  # fmt: skip
    assert "features+classifier" in result["scored"] and result["n"] == len(split["test"])
    cnn = runs.run_robustness(
        run, image_folder, tmp_path / "out2", cache_dir=tmp_path / "cache", perturbations=grid
    )
    assert cnn["scored"] == "the CNN's softmax head"

    torch.manual_seed(1)  # another network in the run: the bundle no longer belongs to it
    other = darknet19(4)
    T.save_checkpoint(run / "checkpoints" / "final.safetensors", other, opt, meta)
    with pytest.raises(BlastscanError, match="not .*'s; bundle this run"):
        runs.run_robustness(run, image_folder, tmp_path / "out3", perturbations=grid, bundle=bundle)


def test_robustness_never_imports_the_product_layer():
    """The core sits under the product: no module of blastscan.robustness imports a bundle."""
    import ast
    from pathlib import Path

    import blastscan.robustness

    product = ("blastscan.bundle", "blastscan.predict", "blastscan.explain", "blastscan.serve",
               "blastscan.reproduce", "blastscan.cli")  # fmt: skip
    for path in Path(blastscan.robustness.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not [n for n in names if n.startswith(product)], (path.name, names)
