"""Checkpoints: stale statistics flagged, missing checkpoints named."""

import json
from pathlib import Path

import pytest
import torch

from blastscan import training as T
from blastscan.errors import BlastscanError
from blastscan.models import darknet19


def test_a_final_checkpoint_with_class_sorted_statistics_is_flagged(tmp_path: Path, caplog):
    model = darknet19(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    meta = {"classes": ["a", "b"], "epoch": 0, "config": {}}
    old = tmp_path / "old.safetensors"
    T.save_checkpoint(
        old, model, optimizer, {**meta, "bn_statistics": T.CLASS_SORTED_BN_STATISTICS}
    )
    new = tmp_path / "new.safetensors"
    T.save_checkpoint(new, model, optimizer, {**meta, "bn_statistics": T.SHUFFLED_BN_STATISTICS})
    with caplog.at_level("WARNING", logger="blastscan.train"):
        T.load_trained_model(new)
        assert not caplog.records
        T.load_trained_model(old)
    assert "class-sorted" in caplog.text and "--resume" in caplog.text


def _final_checkpoint(path: Path, statistics: str, config: dict) -> Path:
    model = darknet19(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    meta = {"classes": ["a", "b"], "epoch": 0, "config": config, "bn_statistics": statistics}
    T.save_checkpoint(path, model, optimizer, meta)
    return path


@pytest.mark.parametrize(
    ("statistics", "config", "flagged"),
    [
        ("SHUFFLED_BN_STATISTICS", {"brighten": 0.45, "darken": 0.45}, True),
        ("SHUFFLED_BN_STATISTICS", {"color_jitter": 0.3}, True),
        ("SHUFFLED_BN_STATISTICS", {"brighten": 0.0}, False),  # flips do not move the statistics
        ("AUGMENTED_BN_STATISTICS", {"brighten": 0.45, "darken": 0.45}, False),
    ],
)
def test_statistics_of_unaugmented_images_are_flagged_only_when_training_relit_them(
    tmp_path: Path, caplog, statistics: str, config: dict, flagged: bool
):
    path = _final_checkpoint(tmp_path / "final.safetensors", getattr(T, statistics), config)
    with caplog.at_level("WARNING", logger="blastscan.train"):
        T.load_trained_model(path)
    assert ("un-augmented" in caplog.text) is flagged


def _run_with_checkpoints(root: Path, names: tuple[str, ...], val_fraction: float) -> Path:
    """A run folder whose checkpoints/ holds empty files of these names (never loaded here)."""
    (root / "checkpoints").mkdir(parents=True)
    for name in names:
        (root / "checkpoints" / f"{name}.safetensors").touch()
    (root / "config.json").write_text(json.dumps({"val_fraction": val_fraction}))
    return root


def test_a_checkpoint_the_run_lacks_names_the_ones_it_has(tmp_path: Path):
    run = _run_with_checkpoints(tmp_path / "run", ("final", "last"), 0.1)
    with pytest.raises(BlastscanError) as info:
        T.load_trained_model(run, "foo")
    message = str(info.value)
    assert "has checkpoints final, last, no foo" in message and "--checkpoint" in message
    assert "no checkpoint there" not in message and "--model" not in message


def test_best_of_a_run_without_validation_says_why_it_is_missing(tmp_path: Path):
    run = _run_with_checkpoints(tmp_path / "run", ("final", "last"), 0.0)
    with pytest.raises(BlastscanError, match=r"no best checkpoint \(trained with --val-fraction 0"):
        T.load_trained_model(run, "best")


def test_a_folder_that_is_not_a_run_names_no_option_unless_the_caller_has_it(tmp_path: Path):
    with pytest.raises(BlastscanError) as info:
        T.load_trained_model(tmp_path, "final")
    assert str(info.value).endswith("no checkpoint there; pass a training run directory")
    with pytest.raises(BlastscanError, match=r"pass a training run directory \(--model\)"):
        T.load_trained_model(tmp_path / "nope", option="--model")
