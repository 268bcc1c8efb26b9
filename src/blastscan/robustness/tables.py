"""How a robustness result is shown: the Markdown table and the accuracy-against-strength figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write
from blastscan.robustness.evaluate import strength_label


def robustness_table_markdown(result: dict) -> str:
    """A Markdown table: one row per perturbation and strength, clean first."""
    clean = result["clean"]
    c = clean["accuracy"]["value"]
    rows = [
        "| perturbation | strength | accuracy | 95% CI | change vs clean | ECE |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| none (clean) | | {100 * c:.1f}% | {100 * clean['accuracy']['low']:.1f}–"
        f"{100 * clean['accuracy']['high']:.1f}% | | {clean['ece']:.3f} |",
    ]
    for name, block in result["perturbations"].items():
        for pt in block["points"]:
            a = pt["accuracy"]
            rows.append(
                f"| {name} | {strength_label(name, pt['strength'])} | {100 * a['value']:.1f}% | "
                f"{100 * a['low']:.1f}–{100 * a['high']:.1f}% | {100 * (a['value'] - c):+.1f} pp | "
                f"{pt['ece']:.3f} |"
            )
    return "\n".join(rows) + "\n"


def plot_robustness(result: dict, path: str | Path) -> Path:
    """Accuracy (with 95% intervals) against strength, one panel per perturbation, as a PNG.

    The clean accuracy is drawn at each perturbation's identity strength (and as a dashed line);
    the JPEG axis runs from high to low quality, so stronger shifts are to the right everywhere.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = result["perturbations"]
    if not blocks:
        raise BlastscanError("the result holds no perturbations to plot")
    cols = min(3, len(blocks))
    rows = -(-len(blocks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), dpi=110, squeeze=False)
    clean = result["clean"]["accuracy"]
    for ax, (name, block) in zip(axes.flat, blocks.items(), strict=False):
        pts = [(pt["strength"], pt["accuracy"]) for pt in block["points"]]
        if block.get("identity") is not None:
            pts.append((block["identity"], clean))
        pts.sort(key=lambda t: t[0])
        x = np.array([s for s, _ in pts])
        v = np.array([a["value"] for _, a in pts])
        err = np.array(
            [[a["value"] - a["low"] for _, a in pts], [a["high"] - a["value"] for _, a in pts]]
        )
        ax.errorbar(x, v, yerr=err, marker="o", ms=4, capsize=3)
        ax.axhline(clean["value"], ls="--", color="grey", lw=1, label="clean")
        ax.set(title=name, xlabel=block.get("label", "strength"), ylabel="accuracy", ylim=(0, 1.02))
        if name == "jpeg":
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    axes.flat[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Accuracy under image shifts ({result['n']} held-out images, 95% Wilson CI)")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
