"""The model card: what the model is for, what it saw, how it was measured, and its limits."""

from __future__ import annotations

from typing import Any

from blastscan.bundle.format import DEFAULT_DATA
from blastscan.bundle.heads import HEAD_CNN
from blastscan.bundle.ood import describe_pixel_statistics


def model_card(manifest: dict[str, Any]) -> str:
    """A short model card: what the model is for, what it saw, how it was measured, its limits."""
    facts = manifest.get("card_facts") or {}
    metrics = manifest.get("metrics") or {}
    config = manifest["training"].get("config") or {}
    measured = _measured(metrics, manifest)
    lines = [
        f"# Model card: {manifest['name']}",
        "",
        "**Research use only. Not a medical device; not for diagnosis or treatment decisions.**",
        "",
        *_unchecked_warning(manifest),
        "## Model",
        f"- DarkNet-19 CNN, {len(manifest['classes'])} classes: "
        f"{', '.join(manifest['display_names'])}.",
        f"- Input: whole image resized to {manifest['input']['size']} px, RGB in [0, 1], "
        + _input_norm_words(manifest["input"].get("input_norm", "none"))
        + ".",
        f"- Deciding head: {manifest['heads']['decides']}"
        + (f", {_classical_line(manifest)}" if manifest["heads"]["classical"] else "")
        + _choice_line(metrics.get("head_choice"))
        + ".",
        "",
        "## Data",
        f"- {facts.get('data', DEFAULT_DATA)}",
        "",
        "## Protocol",
        f"- {facts.get('protocol', _protocol(config, manifest['training'].get('epochs')))}",
        f"- Measured: {measured}.",
        "",
        "## Out-of-distribution flag",
        f"- {_ood_line(manifest.get('ood'))}",
        *_ood_measured(metrics),
        "",
        "## Limits",
        "- Trained on one centre's images, one stain and microscope; other laboratories' smears",
        "  may be misclassified with high confidence. The OOD flag catches gross mismatches only.",
        "- Knows only the classes above: T-ALL, AML or other cells are forced into one of them.",
        "- Small dataset with near-duplicate fields of view; held-out accuracy may be optimistic.",
        "",
        "## Versions",
        *(f"- {k} {v}" for k, v in manifest["versions"].items()),
    ]
    return "\n".join(lines) + "\n"


def _classical_line(manifest: dict[str, Any]) -> str:
    """What the classical head sees: all deep features, or how many mRMR kept and by what rule."""
    info = manifest["classical"]
    name, kept = info["name"], info["n_features"]
    total = info.get("n_inputs") or manifest.get("outputs", {}).get("features", kept)
    if info.get("selection") != "mRMR":
        return f"{name} on all {kept} deep features, no selection"
    rule = info.get("mrmr") or {}
    if rule.get("n_features"):
        how, at = f"the top {rule['n_features']} of its ranking", ""
    elif rule.get("threshold") is not None:
        how = f"threshold {rule['threshold']:g}"
        at = f" at {how}"
    else:
        how, at = "score above 0" if "threshold" in rule else "its rule", ""
    if kept >= total:
        return f"{name} on all {total} deep features (mRMR{at} kept every one)"
    return f"{name} on {kept} of {total} deep features kept by mRMR ({how})"


def _input_norm_words(name: str) -> str:
    if name == "none":
        return "no mean/std normalisation"
    if name == "colour-gated":
        return (
            "read by the network's first layer as value-chroma planes, plus colour planes only "
            "where the image's colour is like the training images' (the colour gate; "
            "otherwise the network reads the cells without colour)"
        )
    return f"normalised per image by the network's parameter-free first layer ({name})"


def _choice_line(choice: dict[str, Any] | None) -> str:
    """Why this head decides, when it was chosen on the run's validation images."""
    if not choice or "cnn" not in choice:
        return ""
    cnn, classical = choice["cnn"], choice["classical"]
    return (
        f"; chosen on the run's {cnn['n']} validation images (CNN softmax right on {cnn['k']}, "
        f"the classical head on {classical['k']}; the classical head decides unless it is "
        "worse)"
    )


def _measured(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    """Whose held-out score the card shows: the run's metrics are the CNN softmax's, always."""
    acc = metrics.get("accuracy")
    if not isinstance(acc, int | float):
        return "no held-out metrics were given when the bundle was written"
    n_test = metrics.get("n_test", "?")
    split = metrics.get("split", "held-out split")
    if manifest["heads"].get("decides") == HEAD_CNN:
        return (
            f"CNN softmax (the deciding head) on the run's {n_test} held-out test images: "
            f"accuracy {acc:.4f} ({split})"
        )
    cnn = f"CNN softmax on the run's {n_test} held-out test images: accuracy {acc:.4f} ({split})"
    head = metrics.get("classical_head") or {}
    if not isinstance(head.get("accuracy"), dict):
        return f"{cnn}; the deciding {manifest['classical']['name']} head was not scored on them"
    score = head["accuracy"]
    fitted = f", fitted on {head['n_fit']} training images" if head.get("n_fit") else ""
    return (
        f"the deciding {head.get('name', 'classical')} head{fitted}, on the run's {score['n']} "
        f"held-out test images: accuracy {score['value']:.4f} (95% CI {score['low']:.4f}-"
        f"{score['high']:.4f}); the CNN softmax on them: accuracy {acc:.4f} ({split})"
    )


def _protocol(config: dict[str, Any], epochs_done: int | None = None) -> str:
    if not config:
        return "Training protocol not recorded."
    planned = config.get("epochs", "?")
    epochs = (
        f"{epochs_done} of {planned} planned epochs"
        if epochs_done and epochs_done != planned
        else f"{planned} epochs"
    )
    return (
        f"Recipe '{config.get('recipe', '?')}', {epochs}, image size "
        f"{config.get('image_size', '?')} px, seed {config.get('seed', '?')}; duplicate-aware "
        f"stratified split, {config.get('test_size', 0.3):.0%} held out for testing."
    )


def _ood_line(ood: dict[str, Any] | None) -> str:
    if not ood:
        return "No OOD detector in this bundle."
    what = describe_pixel_statistics(ood.get("pixel_statistics", 1))
    pixel = (
        f" or the distance of 9 {what} exceeds {ood['pixel_threshold']:.2f}"
        if "pixel_threshold" in ood
        else ""
    )
    return (
        f"Flagged when the Mahalanobis distance of the deep features to the nearest class mean "
        f"(tied Ledoit-Wolf covariance, shrinkage {ood['shrinkage']:.3f}, {ood['n_fit']} training "
        f"images) exceeds {ood['threshold']:.2f}{pixel}; thresholds set so that about "
        f"{1 - ood['quantile']:.0%} of {ood['n_calibration']} held-out in-distribution images "
        "are flagged."
    )


def _unchecked_warning(manifest: dict[str, Any]) -> list[str]:
    """First lines of a card whose bundle cannot flag what it does not know."""
    if manifest.get("ood"):
        return []
    return [
        "**No out-of-distribution detector: this bundle gives one of its classes to any image, "
        "however unlike a smear it is. Rebuild it with `blastscan bundle RUN --out DIR --data "
        "DATA`.**",
        "",
    ]


def _ood_measured(metrics: dict[str, Any]) -> list[str]:
    """The false-flag rate measured on the run's held-out test images, against the target."""
    rate = metrics.get("ood_false_flags")
    if not isinstance(rate, dict):
        return []
    return [
        f"- Measured: {rate['k']} of the run's {rate['n']} held-out test images flagged "
        f"({rate['value']:.1%}, 95% CI {rate['low']:.1%}-{rate['high']:.1%}); target "
        f"{rate['target']:.0%}."
    ]
