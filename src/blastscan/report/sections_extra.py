"""The report's sections beyond the paper: calibration, segmented coverage, what colour gives
away (and the colour swap), stage wall times and any other figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blastscan.report.blocks import Block, Figure, Table, _h, _p, fmt_pct, fmt_seconds
from blastscan.report.protocols import _figure, _protocols


def _calibration_section(metrics: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    """Reliability diagram and ECE/Brier of the CNN and the SVM on the holdout test images."""
    calibration = _protocols(metrics).get("holdout", {}).get("calibration")
    if not calibration:
        return []
    rows = [
        [
            model,
            str(m["n"]),
            f"{100 * m['accuracy']:.2f}%",
            f"{100 * m['mean_confidence']:.2f}%",
            f"{m['ece']:.4f}",
            f"{m['mce']:.3f}",
            f"{m['brier']:.4f}",
            f"{m['nll']:.3f}",
        ]
        for model, m in calibration["models"].items()
    ]
    header = ["Model", "Test images", "Accuracy", "Mean confidence", "ECE", "MCE", "Brier", "NLL"]
    caption = (
        f"Holdout protocol: the CNN's softmax and {calibration['classifier']} (fitted on the 70% "
        "with Platt-scaled probabilities) on the same test images. ECE: top-label expected "
        f"calibration error over {calibration['n_bins']} equal-width confidence bins (0 is "
        "perfect); MCE: the worst bin's gap; Brier: multiclass Brier score (0 is perfect, 2 "
        "worst)."
    )
    blocks = [
        _h(2, "Calibration: reliability diagram and expected calibration error"),
        _p(
            "Not in the paper. A confident model is only useful if its confidence means "
            "something: of the images it labels with 90% confidence, about 90% should be right."
        ),
        Block("table", Table(header, rows, caption)),
    ]
    path = _figure(figures, "holdout", "reliability")
    if path is not None:
        caption = "Reliability diagram (holdout test images): accuracy against confidence per bin"
        blocks.append(Block("figure", Figure(path, caption)))
    return blocks


def _coverage_section(metrics: dict[str, Any]) -> list[Block]:
    """Segmented runs: how much of each image is cell, per class, and accuracy on empty ones."""
    coverage = metrics.get("dataset", {}).get("foreground")
    if not coverage:
        return []
    rows = [
        [
            name,
            str(c["n"]),
            f"{100 * c['median_foreground']:.2f}%",
            f"{100 * c['p10_foreground']:.2f}%",
            f"{c['nearly_empty']} ({100 * c['nearly_empty_fraction']:.1f}%)",
        ]
        for name, c in coverage["per_class"].items()
    ]
    header = ["Class", "Images", "Median foreground", "10th percentile", "Nearly empty"]
    blocks = [
        _h(2, "Segmented images: how much cell each image shows"),
        Block("table", Table(header, rows, f"Rule: {coverage['rule']}.")),
    ]
    empty = _protocols(metrics).get("holdout", {}).get("nearly_empty")
    if empty and empty["n_test"]:
        by_class = ", ".join(f"{k} {v}" for k, v in empty["by_class"].items() if v)
        rows = [
            [model, fmt_pct(acc), fmt_pct(empty["accuracy_rest"][model])]
            for model, acc in empty["accuracy"].items()
        ]
        header = ["Model", f"Nearly empty ({empty['n_test']})", "All other test images"]
        caption = (
            f"Holdout test images ({by_class} nearly empty). Nearly empty images are almost "
            "all Pro-B, so 'empty' alone points to Pro-B: high accuracy on them need not mean "
            "the model sees cells."
        )
        blocks.append(Block("table", Table(header, rows, caption)))
    return blocks


def _colour_section(metrics: dict[str, Any]) -> list[Block]:
    """How much of the class a few colour numbers give away, without any cell shape."""
    colour = metrics.get("colour_baseline")
    if not colour:
        return []
    rows = [
        [name, str(b["n_statistics"]), fmt_pct(b["accuracy"])]
        for name, b in colour["baselines"].items()
    ]
    protocols = _protocols(metrics)
    cnn = (protocols.get("holdout") or protocols.get("paper") or {}).get("cnn") or {}
    accuracy = cnn.get("test_metrics", {}).get("accuracy")
    if accuracy:  # the same test images
        rows.append(["the CNN on every pixel, for comparison", "-", fmt_pct(accuracy)])
    caption = (
        f"{colour['classifier']}, fitted on the CNN's {colour['n_train']} training images and "
        f"scored on its {colour['n_test']} test images; 95% Wilson intervals."
    )
    blocks = [
        _h(2, "What colour alone gives away"),
        _p(
            "A classifier that never sees a cell's shape, only a few colour numbers per image. "
            "Well above the majority class, the classes differ in colour; when even the lighter "
            "half of the pixels (plasma, background, red cells) tells them apart, they were "
            "stained or lit differently. Then part of what any model scores here can come from "
            "stain and light, which smears from another laboratory do not share (a network "
            "reading the light is also one that brightness shifts break; see `blastscan "
            "robustness`), and group splits inside each class do not remove it."
        ),
        Block("table", Table(["Statistics", "Numbers per image", "Accuracy"], rows, caption)),
    ]
    blocks += _colour_swap_blocks(metrics)
    if metrics.get("dataset", {}).get("variant") == "Segmented":
        blocks.insert(
            2,
            Block(
                "warn",
                "Segmented images have a black background, so their lighter half is the cell "
                "itself: here neither row separates stain and light from the cell (run the "
                "Original images for that).",
            ),
        )
    return blocks


def _colour_swap_blocks(metrics: dict[str, Any]) -> list[Block]:
    """Whether the CNN itself reads the colour: its test images in each class's colour."""
    swap = metrics.get("colour_swap")
    if not swap:
        return []
    names = metrics.get("dataset", {}).get("class_names") or list(range(len(swap["matrix"])))
    rows = [
        [str(name), *(fmt_pct(a) for a in line)]
        for name, line in zip(names, swap["matrix"], strict=True)
    ]
    caption = (
        f"Accuracy of the CNN on its {swap['n']} test images of each class (rows) given the "
        f"colour of each class (columns): {swap['colours']}; clean {fmt_pct(swap['clean'])}."
    )
    return [
        _h(3, "Does the CNN follow the colour?"),
        _p(
            "Every test image is given each class's colour in turn, the cells staying where "
            "they are, and the CNN asked again. A network that reads the cells keeps its clean "
            "accuracy in every column; one that reads colour is right on the diagonal only. In "
            f"another class's colour it is right {fmt_pct(swap['other_colour'])} of the time, "
            f"and its answer becomes the colour's class {fmt_pct(swap['follows_the_colour'])}. "
            "Networks that cannot count on colour: `blastscan train --input-norm stain` (each "
            "image's colour standardised in the first layer) or `--recolour P` (training images "
            "in other images' colours); docs/robustness.md."
        ),
        Block("table", Table(["Images of", *map(str, names)], rows, caption)),
    ]


def _timings_section(metrics: dict[str, Any]) -> list[Block]:
    rows = [[stage, "whole run", fmt_seconds(s)] for stage, s in metrics.get("timings", {}).items()]
    for name, protocol in _protocols(metrics).items():
        rows += [[stage, name, fmt_seconds(s)] for stage, s in protocol.get("timings", {}).items()]
        classical = protocol.get("classical", {})
        if "seconds" in classical.get("selection", {}):
            seconds = classical["selection"]["seconds"]
            rows.append(["feature selection, fitted per fold", name, fmt_seconds(seconds)])
        if "seconds" in classical:
            rows.append(
                ["classical classifiers (all presets, CV)", name, fmt_seconds(classical["seconds"])]
            )
    if not rows:
        return []
    return [
        _h(2, "Stage wall times"),
        Block("table", Table(["Stage", "Protocol", "Wall time"], rows)),
    ]


def _other_figures(figures: dict[str, Path]) -> list[Block]:
    known = ("training_accuracy", "training_loss", "mrmr_scores", "confusion:", "reliability")
    extra = {k: v for k, v in figures.items() if not any(part in k for part in known)}
    if not extra:
        return []
    return [_h(2, "Other figures")] + [
        Block("figure", Figure(Path(p), k)) for k, p in extra.items()
    ]
