"""The run report: every table and figure of the paper, our numbers beside the paper's.

`write_report` renders one list of blocks twice, to report.md (figures linked) and to a
self-contained report.html (figures embedded as base64), so the two never disagree. It reads
the metrics.json structure documented in docs/metrics.md; any protocol present under
metrics["protocols"] gets its own columns, so strict/holdout/group protocols sit beside the
paper's. Paper numbers we do not have are shown as NA, never guessed.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blastscan.io import atomic_write_text

NA = "n/a (not in our copy)"

# What our copy of Dogan, Tasci, Tuncer 2023 states. Anything absent here is shown as NA.
PAPER: dict[str, Any] = {
    "citation": "Dogan, Tasci, Tuncer 2023",
    "n_images": 3256,
    "cnn_split": "70/30",
    "cnn_split_accuracy": 99.80,
    "n_features": 1000,
    "n_selected": 521,
    "mrmr_threshold": 0.25,
    "table2": {"SVM": {"all": 99.6, "selected": 99.94}},
    "table4": [
        ("Tusar et al. 2022", "MobileNetV2", 97.42),
        ("Basymeleh et al. 2022", "VGG16", 97.50),
        ("Dogan, Tasci, Tuncer 2023 (the paper)", "DarkNet-19 + mRMR + SVM", 99.94),
    ],
}
TABLE2_ROWS = ("SVM", "ANN", "KNN", "Naive Bayes")
FEATURE_SET_LABEL = {"all": "all features", "selected": "selected features"}


# --------------------------------------------------------------------------------------------
# Document model


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "h3" | "p" | "warn" | "table" | "figure"
    content: Any


def _h(level: int, text: str) -> Block:
    return Block(f"h{level}", text)


def _p(text: str) -> Block:
    return Block("p", text)


# --------------------------------------------------------------------------------------------
# Formatting


def fmt_pct(prop: dict[str, Any] | None, ci: bool = True) -> str:
    """A proportion from metrics.json as '99.94% (99.78-99.99)'; '-' when absent."""
    if not prop:
        return "-"
    text = f"{100 * prop['value']:.2f}%"
    if ci and "low" in prop:
        text += f" ({100 * prop['low']:.2f}–{100 * prop['high']:.2f})"
    return text


def fmt_paper(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}%"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d} min"


# --------------------------------------------------------------------------------------------
# Protocol helpers


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


# --------------------------------------------------------------------------------------------
# Sections


def _header(metrics: dict[str, Any]) -> list[Block]:
    ds = metrics.get("dataset", {})
    blocks = [
        _h(1, f"blastscan report: reproducing {PAPER['citation']}"),
        _p(
            "DarkNet-19 fine-tuned on the ALL blood-smear data set, 1000 deep features, mRMR "
            "selection, then SVM, ANN, KNN and naive Bayes under cross-validation. Each table "
            f"puts our numbers beside the paper's; '{NA}' marks a paper number we do not have. "
            "Our accuracies carry 95% Wilson confidence intervals."
        ),
    ]
    facts = [
        ("Data set", ds.get("name", "ALL")),
        ("Image set", ds.get("variant")),
        ("CNN trained on", metrics.get("cnn_variant")),
        ("Images", ds.get("n_images")),
        ("Classes", ", ".join(ds.get("class_names", [])) or None),
        ("Created", metrics.get("created")),
        ("blastscan", metrics.get("blastscan_version")),
    ]
    counts = ds.get("class_counts")
    if counts:
        facts.insert(3, ("Images per class", ", ".join(f"{k} {v}" for k, v in counts.items())))
    rows = [[k, str(v)] for k, v in facts if v is not None]
    if rows:
        blocks.append(Block("table", Table(["", ""], rows)))
    cnn_variant, variant = metrics.get("cnn_variant"), ds.get("variant")
    if cnn_variant and variant and cnn_variant != variant:
        blocks.append(Block("warn", _CROSS_VARIANT.format(cnn=cnn_variant, data=variant)))
    return blocks


_CROSS_VARIANT = (
    "**The CNN was trained on {cnn} images; every feature here comes from {data} images.** "
    "The same file names exist in both sets, so the CNN's 70/30 split carries over by name: the "
    "{data} images of its 30% test split are unseen, but the {data} images of its 70% are "
    "renderings of images it was trained on. The CNN rows measure how the network trained on "
    "{cnn} transfers; the classical rows measure how far its features still separate the classes."
)


def _protocol_section(metrics: dict[str, Any]) -> list[Block]:
    blocks = [_h(2, "Protocols: what the numbers mean")]
    n_images = metrics.get("dataset", {}).get("n_images")
    for name, protocol in _protocols(metrics).items():
        blocks += protocol_statement(name, protocol, n_images)
    return blocks


def _cnn_section(metrics: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    blocks = [_h(2, "CNN: DarkNet-19 accuracy on the held-out split")]
    rows = [["Paper", PAPER["cnn_split"], NA, fmt_paper(PAPER["cnn_split_accuracy"])]]
    for name, protocol in _protocols(metrics).items():
        cnn = protocol.get("cnn")
        if not cnn:
            continue
        test = cnn.get("test_metrics", {})
        fraction = cnn.get("train_fraction", 0.7)
        split = cnn.get("split", f"{round(100 * fraction)}/{round(100 * (1 - fraction))}")
        n_test = cnn.get("n_test", test.get("n", "-"))
        rows.append([f"Ours ({name})", split, str(n_test), fmt_pct(test.get("accuracy"))])
    blocks.append(
        Block(
            "table", Table(["Model", "Train/test split", "Test images", "Accuracy (95% CI)"], rows)
        )
    )
    blocks += _figures_for(
        metrics,
        figures,
        [
            ("training_accuracy", "Figure 3/4: DarkNet-19 training accuracy per epoch"),
            ("training_loss", "Figure 3/4: DarkNet-19 training loss per epoch"),
        ],
    )
    return blocks


def _selection_section(metrics: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    blocks = [_h(2, "Feature selection: mRMR")]
    paper = (
        f"{PAPER['n_selected']} of {PAPER['n_features']} (mRMR score > {PAPER['mrmr_threshold']})"
    )
    rows = [["Paper", "fitted on all images before CV", paper]]
    for name, protocol in _protocols(metrics).items():
        sel = protocol.get("classical", {}).get("selection", {})
        if sel.get("mode", "none") == "none":
            continue
        rows.append([f"Ours ({name})", _selection_mode(sel), _kept(sel, protocol)])
    blocks.append(Block("table", Table(["", "How selected", "Features kept"], rows)))
    blocks += _figures_for(metrics, figures, [("mrmr_scores", "Figure 5: mRMR feature scores")])
    return blocks


def _selection_mode(sel: dict[str, Any]) -> str:
    if sel.get("mode") == "precomputed":
        return "fitted on all images before CV"
    return "fitted inside each training fold"


def _kept(sel: dict[str, Any], protocol: dict[str, Any]) -> str:
    n_total = protocol.get("classical", {}).get("n_features", "?")
    detail = protocol.get("selection", {})
    rule = f" (mRMR score > {detail['threshold']})" if detail.get("threshold") is not None else ""
    if detail.get("n_features"):
        rule = f" (top {detail['n_features']} by mRMR)"
    if sel.get("mode") == "precomputed":
        return f"{sel.get('n_selected')} of {n_total}{rule}"
    counts = sel.get("n_selected_per_fold") or []
    if not counts:
        return "-"
    span = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
    return f"{span} of {n_total} per fold{rule}"


def _table2_section(metrics: dict[str, Any]) -> list[Block]:
    protocols = _protocols(metrics)
    header = ["Classifier", "Preset", "Paper: all", "Paper: selected"]
    for name in protocols:
        header += [f"Ours ({name}): all", f"Ours ({name}): selected"]
    rows = []
    for row in TABLE2_ROWS:
        paper = PAPER["table2"].get(row, {})
        presets = [
            p.get("classical", {}).get("paper_rows", {}).get(row) for p in protocols.values()
        ]
        shown = sorted({p for p in presets if p}) or ["-"]
        cells = [
            row,
            ", ".join(shown),
            fmt_paper(paper.get("all")),
            fmt_paper(paper.get("selected")),
        ]
        for protocol, preset in zip(protocols.values(), presets, strict=True):
            for fs in ("all", "selected"):
                cells.append(fmt_pct(_accuracy(_preset_result(protocol, preset, fs))))
        rows.append(cells)
    blocks = [
        _h(2, "Table 2: accuracy per classifier, all vs selected features"),
        Block("table", Table(header, rows, "Pooled out-of-fold accuracy, % (95% CI).")),
        _p(
            "The paper names its classifiers by family only; docs/classifiers.md explains which "
            "MATLAB Classification Learner preset stands for each row. Every preset we ran is "
            "listed below, so a different preset choice can be read off directly."
        ),
    ]
    for name, protocol in protocols.items():
        blocks += _all_presets_table(name, protocol)
    return blocks


def _all_presets_table(name: str, protocol: dict[str, Any]) -> list[Block]:
    presets = protocol.get("classical", {}).get("presets", {})
    if not presets:
        return []
    rows = []
    for preset, entry in presets.items():
        fs = entry["feature_sets"]
        seconds = sum(r.get("seconds", 0.0) for r in fs.values())
        rows.append(
            [
                entry.get("family", ""),
                preset,
                fmt_pct(_accuracy(fs.get("all"))),
                fmt_pct(_accuracy(fs.get("selected"))),
                fmt_seconds(seconds),
            ]
        )
    header = ["Family", "Preset", "All features", "Selected features", "CV wall time"]
    return [_h(3, f"All presets ({name})"), Block("table", Table(header, rows))]


def _best(protocol: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    best = protocol.get("classical", {}).get("best")
    if not best:
        return None
    result = _preset_result(protocol, best["preset"], best["feature_set"])
    return (best["preset"], best["feature_set"], result) if result else None


def _table3_section(metrics: dict[str, Any]) -> list[Block]:
    blocks = [_h(2, "Table 3: per-class results of the best model")]
    header = ["Class"]
    for metric in ("Accuracy", "F1", "Recall", "Precision"):
        header += [f"{metric} (ours)", f"{metric} (paper)"]
    header.append("Support")
    for name, protocol in _protocols(metrics).items():
        best = _best(protocol)
        if best is None:
            continue
        preset, fs, result = best
        rows = []
        for cls, m in result["metrics"]["per_class"].items():
            rows.append(
                [
                    cls,
                    fmt_pct(m["accuracy"]),
                    NA,
                    f"{100 * m['f1']:.2f}%",
                    NA,
                    fmt_pct(m["recall"]),
                    NA,
                    fmt_pct(m["precision"]),
                    NA,
                    str(m["support"]),
                ]
            )
        caption = (
            f"{name}: {preset} on {FEATURE_SET_LABEL.get(fs, fs)}, overall "
            f"{fmt_pct(result['metrics']['accuracy'])}. Per-class accuracy is one-vs-rest."
        )
        blocks += [_h(3, f"Best model ({name})"), Block("table", Table(header, rows, caption))]
    return blocks


def _figure6_section(
    run_dir: Path, metrics: dict[str, Any], figures: dict[str, Path]
) -> list[Block]:
    blocks = [_h(2, "Figure 6: confusion matrices")]
    for name, protocol in _protocols(metrics).items():
        best = _best(protocol)
        if best is None:
            continue
        preset = best[0]
        for fs in ("all", "selected"):
            result = _preset_result(protocol, preset, fs)
            if result is None:
                continue
            path = _figure(figures, name, f"confusion:{fs}")
            title = f"{preset}, {FEATURE_SET_LABEL.get(fs, fs)}"
            if path is None:
                path = _draw_confusion(run_dir, name, fs, result["metrics"], f"{title} ({name})")
            caption = f"Figure 6 ({name}): {title}, accuracy {fmt_pct(_accuracy(result))}"
            blocks.append(Block("figure", Figure(path, caption)))
    return blocks


def _draw_confusion(
    run_dir: Path, protocol: str, fs: str, metrics: dict[str, Any], title: str
) -> Path:
    from blastscan.evaluation import plot_confusion_matrix

    path = run_dir / "figures" / f"confusion_{_slug(protocol)}_{fs}.png"
    return plot_confusion_matrix(metrics["confusion_matrix"], metrics["class_names"], path, title)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


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


def _table4_section(metrics: dict[str, Any]) -> list[Block]:
    rows = [
        [study, method, fmt_paper(acc), "as published"] for study, method, acc in PAPER["table4"]
    ]
    for name, protocol in _protocols(metrics).items():
        best = _best(protocol)
        if best is None:
            continue
        preset, fs, result = best
        method = f"DarkNet-19 + {'mRMR + ' if fs == 'selected' else ''}{preset}"
        leaks = leakage(name, protocol)
        note = "leaky (see Protocols)" if leaks["cnn"] or leaks["selection"] else "leakage-free"
        rows.append([f"Ours ({name})", method, fmt_pct(_accuracy(result)), note])
    caption = (
        "Literature accuracies come from different splits and protocols, so they are not "
        "directly comparable with each other or with ours."
    )
    return [
        _h(2, "Table 4: comparison with the literature"),
        Block("table", Table(["Study", "Method", "Accuracy", "Protocol"], rows, caption)),
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


def _other_figures(figures: dict[str, Path]) -> list[Block]:
    known = ("training_accuracy", "training_loss", "mrmr_scores", "confusion:", "reliability")
    extra = {k: v for k, v in figures.items() if not any(part in k for part in known)}
    if not extra:
        return []
    return [_h(2, "Other figures")] + [
        Block("figure", Figure(Path(p), k)) for k, p in extra.items()
    ]


def build_report(run_dir: Path, metrics: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    """All sections in the paper's order, as blocks both renderers understand."""
    return [
        *_header(metrics),
        *_protocol_section(metrics),
        *_cnn_section(metrics, figures),
        *_selection_section(metrics, figures),
        *_table2_section(metrics),
        *_table3_section(metrics),
        *_figure6_section(run_dir, metrics, figures),
        *_calibration_section(metrics, figures),
        *_coverage_section(metrics),
        *_colour_section(metrics),
        *_table4_section(metrics),
        *_timings_section(metrics),
        *_other_figures(figures),
    ]


# --------------------------------------------------------------------------------------------
# Renderers


def render_markdown(blocks: list[Block], run_dir: Path) -> str:
    out = []
    for b in blocks:
        if b.kind.startswith("h"):
            out.append(f"{'#' * int(b.kind[1])} {b.content}")
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "warn":
            out.append(f"> ⚠ {b.content}")
        elif b.kind == "table":
            out.append(_md_table(b.content))
        elif b.kind == "figure":
            rel = os.path.relpath(b.content.path, run_dir)
            out.append(f"![{b.content.caption}]({Path(rel).as_posix()})\n\n*{b.content.caption}*")
    return "\n\n".join(out) + "\n"


def _md_table(t: Table) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(t.header), "|" + "---|" * len(t.header)] + [row(r) for r in t.rows]
    if t.caption:
        lines += ["", f"*{t.caption}*"]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1d2330;line-height:1.5}
h1{font-size:1.6rem;border-bottom:2px solid #2b6cb0;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2.2rem;color:#2b4c7e}h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #cfd6e0;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef3f9}tr:nth-child(even) td{background:#fafbfd}
caption{caption-side:bottom;font-size:.85rem;color:#4a5568;text-align:left;padding-top:.3rem}
.warn{background:#fff5e6;border-left:4px solid #dd6b20;padding:.6rem .9rem;margin:.8rem 0}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e2e8f0}
figcaption{font-size:.85rem;color:#4a5568}
"""


def render_html(blocks: list[Block], title: str) -> str:
    body = []
    for b in blocks:
        if b.kind.startswith("h"):
            body.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "warn":
            body.append(f'<div class="warn">⚠ {_inline(b.content)}</div>')
        elif b.kind == "table":
            body.append(_html_table(b.content))
        elif b.kind == "figure":
            body.append(_html_figure(b.content))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    """Escape, then turn the few Markdown marks we use (**bold**, `code`) into tags."""
    out, parts = [], html.escape(str(text)).split("**")
    for i, part in enumerate(parts):
        out.append(f"<strong>{part}</strong>" if i % 2 else part)
    code = "".join(out).split("`")
    return "".join(f"<code>{c}</code>" if i % 2 else c for i, c in enumerate(code))


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in t.header)
    rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    caption = f"<caption>{_inline(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_figure(f: Figure) -> str:
    try:
        data = base64.b64encode(Path(f.path).read_bytes()).decode("ascii")
    except OSError:
        return f"<p>(figure missing: {html.escape(str(f.path))})</p>"
    mime = {".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
        Path(f.path).suffix.lower(), "image/png"
    )
    caption = _inline(f.caption)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(f.caption)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def write_report(
    run_dir: Path, metrics: dict[str, Any], figures: dict[str, Path]
) -> tuple[Path, Path]:
    """Write report.md and a self-contained report.html into `run_dir`, each atomically.

    Confusion matrices not passed in `figures` are drawn from the metrics into run_dir/figures.
    """
    run_dir = Path(run_dir)
    figures = {k: Path(v) for k, v in (figures or {}).items()}
    blocks = build_report(run_dir, metrics, figures)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, render_markdown(blocks, run_dir))
    atomic_write_text(html_path, render_html(blocks, f"blastscan report: {PAPER['citation']}"))
    return md_path, html_path
