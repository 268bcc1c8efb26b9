"""Reading metrics.json for the report: protocols, presets, the best model, figures, leakage.

`protocol_statement` says in plain words what each protocol's numbers mean and what leaked into
its test folds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from blastscan.report.blocks import Block, Figure, _h, _p


def leakage(name: str, protocol: dict[str, Any]) -> dict[str, bool]:
    """Which test information reached fitting; the paper protocol leaks both ways by default."""
    declared = protocol.get("leakage", {})
    selection = protocol.get("classical", {}).get("selection", {})
    is_paper = name == "paper"
    return {
        "cnn": bool(declared.get("cnn_train_images_in_test_folds", is_paper)),
        "selection": bool(
            declared.get("selection_fitted_on_all_data", is_paper)
            or selection.get("fitted_on_all_data", False)
        ),
    }


def protocol_statement(name: str, protocol: dict[str, Any], n_images: int | None) -> list[Block]:
    """Plain words on what each number means, and what leaked into the test folds."""
    leaks = leakage(name, protocol)
    blocks = [_h(3, f"{protocol.get('title', name)} (`{name}`)")]
    if protocol.get("description"):
        blocks.append(_p(protocol["description"]))
    classical = protocol.get("classical", {})
    cv = classical.get("cv", {})
    images = f"{n_images:,}" if n_images else "all"
    if leaks["cnn"]:
        train = round(100 * protocol.get("cnn", {}).get("train_fraction", 0.7))
        text = _CNN_LEAK.format(images=images, k=cv.get("n_splits", 10), train=train)
        blocks.append(Block("warn", text))
    if leaks["selection"]:
        blocks.append(Block("warn", _SELECTION_LEAK))
    if not leaks["cnn"] and not leaks["selection"]:
        blocks.append(_p(_NO_LEAK))
    if cv:
        grouped = " Folds keep each group together." if cv.get("grouped") else ""
        blocks.append(
            _p(
                f"Classical stage: {cv.get('n_splits')}-fold {cv.get('method')} (seed "
                f"{cv.get('seed')}); standardisation and every classifier are fitted inside each "
                f"training fold.{grouped}"
            )
        )
    return blocks


_CNN_LEAK = (
    "**This protocol lets training images into the test folds.** DarkNet-19 was fine-tuned on "
    "a {train}% split; its deep features were then extracted from {images} images and the "
    "classical classifiers were scored by {k}-fold cross-validation over all of them. About "
    "{train}% of every "
    "test fold are images the CNN was trained on, labels included, so the cross-validated "
    "accuracies are optimistic and do not measure accuracy on unseen images."
)
_SELECTION_LEAK = (
    "**Feature selection saw the test folds.** mRMR was fitted on all images, labels included, "
    "before cross-validation, so the selected features were chosen with the labels of every "
    "test fold."
)
_NO_LEAK = (
    "No test image reached any fitted step: the CNN, the feature selection, the scaler and the "
    "classifiers were fitted on training data only."
)


def _protocols(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(metrics.get("protocols", {}))


def _preset_result(protocol: dict[str, Any], preset: str | None, feature_set: str) -> Any:
    if preset is None:
        return None
    entry = protocol.get("classical", {}).get("presets", {}).get(preset)
    return None if entry is None else entry["feature_sets"].get(feature_set)


def _accuracy(result: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if result is None else result["metrics"]["accuracy"]


def _figure(figures: dict[str, Path], protocol: str, key: str) -> Path | None:
    """A protocol's own figure ('paper:mrmr_scores') or else the run-wide one ('mrmr_scores')."""
    path = figures.get(f"{protocol}:{key}") or figures.get(key)
    return Path(path) if path else None


def _best(protocol: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    best = protocol.get("classical", {}).get("best")
    if not best:
        return None
    result = _preset_result(protocol, best["preset"], best["feature_set"])
    return (best["preset"], best["feature_set"], result) if result else None


def _figures_for(
    metrics: dict[str, Any], figures: dict[str, Path], keys: Iterable[tuple[str, str]]
) -> list[Block]:
    blocks, seen = [], set()
    for key, caption in keys:
        for name in [*_protocols(metrics), None]:
            path = _figure(figures, name, key) if name else figures.get(key)
            if path is None or Path(path) in seen:
                continue
            seen.add(Path(path))
            suffix = f" ({name})" if name and f"{name}:{key}" in figures else ""
            blocks.append(Block("figure", Figure(Path(path), caption + suffix)))
    if not blocks:
        blocks.append(_p("(figure not produced in this run)"))
    return blocks
