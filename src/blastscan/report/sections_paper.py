"""The report's sections that follow the paper: header, protocols, CNN, mRMR, Tables 2-4, Figure 6."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blastscan.report.blocks import Block, Figure, Table, _h, _p, fmt_paper, fmt_pct, fmt_seconds
from blastscan.report.paper import FEATURE_SET_LABEL, NA, PAPER, TABLE2_ROWS
from blastscan.report.protocols import (
    _accuracy,
    _best,
    _figure,
    _figures_for,
    _preset_result,
    _protocols,
    leakage,
    protocol_statement,
)


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
            "The paper names its classifiers by family only; docs/reference/classifiers.md explains which "
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
