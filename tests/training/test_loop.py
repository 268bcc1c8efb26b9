"""Whole training runs: the run directory, resuming, a real subset."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from blastscan import training as T
from blastscan.errors import BlastscanError
from blastscan.training import loop

TINY = T.TrainConfig(
    epochs=3, batch_size=8, lr=0.01, image_size=32, val_fraction=0.2, test_size=0.25
)


def test_run_directory_is_complete(image_folder: Path, tmp_path: Path):
    result = T.train(
        image_folder, tmp_path / "run", TINY, cache_dir=tmp_path / "cache", show_progress=False
    )
    run = result.run_dir
    for name in (
        "config.json",
        "manifest.csv",
        "split.json",
        "history.csv",
        "history.json",
        "metrics.json",
        "train.log",
        "figures/accuracy.png",
        "figures/loss.png",
        "checkpoints/last.safetensors",
        "checkpoints/final.safetensors",
        "checkpoints/best.json",
    ):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.sum(metrics["confusion_matrix"]) == metrics["n_test"] > 0
    split = json.loads((run / "split.json").read_text())
    assert set(split["train"]).isdisjoint(split["test"]) and set(split["val"]).isdisjoint(
        split["test"]
    )
    assert not list(image_folder.rglob("*.npy")), "nothing may be written into the dataset"
    meta = json.loads((run / "checkpoints" / "final.json").read_text())
    assert meta["classes"] == ["Benign", "Early", "Pre", "Pro"] and meta["image_size"] == 32
    from blastscan.runtime.precision import resolve_precision

    chosen = resolve_precision("auto", "cpu")  # the choice, and why, in config.json and the log
    config = json.loads((run / "config.json").read_text())
    assert (config["precision"], config["precision_reason"]) == (chosen.name, chosen.reason)
    assert (
        f"precision {chosen.name} ({chosen.reason}; torch CPU capability"
        in (run / "train.log").read_text()
    )
    with pytest.raises(BlastscanError, match="--resume"):
        T.train(image_folder, run, TINY, cache_dir=tmp_path / "cache", show_progress=False)


def test_resume_after_interruption_gives_the_same_result(
    image_folder: Path, tmp_path: Path, monkeypatch
):
    config = replace(TINY, schedule="onecycle", color_jitter=0.2)
    T.train(image_folder, tmp_path / "whole", config, cache_dir=tmp_path / "c", show_progress=False)

    real_epoch, calls = T.train_one_epoch, {"n": 0}

    def crash_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        T.train(
            image_folder, tmp_path / "cut", config, cache_dir=tmp_path / "c", show_progress=False
        )
    assert json.loads((tmp_path / "cut" / "checkpoints" / "last.json").read_text())["epoch"] == 0
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)
    T.train(
        image_folder,
        tmp_path / "cut",
        config,
        resume=True,
        cache_dir=tmp_path / "c",
        show_progress=False,
    )

    a = load_file(str(tmp_path / "whole" / "checkpoints" / "final.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "final.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_resumed_run_keeps_the_split_it_started_with(
    image_folder: Path, tmp_path: Path, monkeypatch
):
    run = tmp_path / "run"
    config = replace(TINY, epochs=1)
    T.train(image_folder, run, config, cache_dir=tmp_path / "c", show_progress=False)
    started_with = (run / "split.json").read_text()

    def split_differently(*args, **kwargs):
        raise AssertionError("a resumed run must not split the data again")

    monkeypatch.setattr(loop, "make_split", split_differently)
    for final in (run / "checkpoints").glob("final.*"):  # re-finalise, as docs/results.md does
        final.unlink()
    T.train(image_folder, run, config, resume=True, cache_dir=tmp_path / "c", show_progress=False)
    assert (run / "checkpoints" / "final.safetensors").is_file()
    assert (run / "split.json").read_text() == started_with


@pytest.mark.slow
def test_end_to_end_on_a_real_subset(real_data: Path, tmp_path: Path):
    config = replace(
        T.recipe_config("fast"),
        epochs=2,
        image_size=64,
        batch_size=16,
        max_per_class=20,
        val_fraction=0.0,
    )
    result = T.train(
        real_data, tmp_path / "run", config, cache_dir=tmp_path / "c", show_progress=False
    )
    assert result.test_metrics["n_test"] == 24
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0
    assert len(result.history) == 2 and result.history[-1]["train_loss"] < 10
