"""The shift battery on a training run or its bundle: battery.json, battery.md, the figure.

This layer never imports `blastscan.bundle`: a bundle comes in loaded (see `runs`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write, atomic_write_json, atomic_write_text, check_output_dir
from blastscan.robustness.battery import SEVERITIES, kind
from blastscan.robustness.battery_eval import (
    battery_summary,
    bundle_scorer,
    evaluate_battery,
    model_scorer,
)

log = logging.getLogger("blastscan.robustness")


def _pct(p: dict | None) -> str:
    return "" if p is None else f"{100 * p['value']:.1f}"


def battery_table_markdown(result: dict) -> str:
    """Accuracy (95% interval) per kind x severity, the OOD share where a detector scored, and
    the summary numbers."""
    has_ood = result["clean"].get("ood") is not None
    head = "| kind | " + " | ".join(f"sev {s}" for s in SEVERITIES) + " | mean |"
    lines = [head, "| --- |" + " ---: |" * (len(SEVERITIES) + 1)]
    c = result["clean"]["accuracy"]
    lines.append(f"| clean | {100 * c['value']:.1f} ({100 * c['low']:.1f}–{100 * c['high']:.1f})"
                 + " |" * len(SEVERITIES) + " |")  # fmt: skip
    for name, block in result["kinds"].items():
        cells = [f"{_pct(x['accuracy'])} ({100 * x['accuracy']['low']:.1f}–"
                 f"{100 * x['accuracy']['high']:.1f})" for x in block["cells"]]  # fmt: skip
        mean = np.mean([x["accuracy"]["value"] for x in block["cells"]])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * mean:.1f} |")
    text = ["Accuracy in % (95% Wilson interval), "
            f"{result['n']} images, corruption seed {result['seed']}.", "", *lines]  # fmt: skip
    if has_ood:
        text += ["", "Share flagged out-of-distribution, %:", "",
                 "| kind | " + " | ".join(f"sev {s}" for s in SEVERITIES) + " |",
                 "| --- |" + " ---: |" * len(SEVERITIES),
                 f"| clean | {_pct(result['clean']['ood'])}" + " |" * len(SEVERITIES)]  # fmt: skip
        for name, block in result["kinds"].items():
            text.append(f"| {name} | " + " | ".join(_pct(x["ood"]) for x in block["cells"]) + " |")
    return "\n".join(text + ["", summary_markdown(result["summary"])]) + "\n"


def summary_markdown(summary: dict) -> str:
    """The summary numbers as a short list."""
    out = [f"- clean accuracy: {100 * summary['clean_accuracy']:.2f}%"]
    if "battery_mean" in summary:
        out.append(f"- battery mean accuracy: {100 * summary['battery_mean']:.2f}%")
        for key in [k for k in summary if k.startswith("worst")]:
            w = summary[key]
            out.append(f"- {key.replace('_', ' ')}: {100 * w['accuracy']:.1f}% "
                       f"({w['kind']}, severity {w['severity']})")  # fmt: skip
    if summary.get("mce") is not None:
        rel = summary["relative_mce"]
        rel_text = (
            "undefined (the reference lost nothing to the shifts)" if rel is None else f"{rel:.3f}"
        )
        out.append(f"- mCE {summary['mce']:.3f}, relative mCE {rel_text} (the reference: 1)")
    return "\n".join(out)


def plot_battery(result: dict, path: str | Path) -> Path:
    """One panel per kind: accuracy against severity with 95% intervals, the clean accuracy
    dashed, and the share flagged OOD where a detector scored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = result["kinds"]
    if not blocks:
        raise BlastscanError("the battery result holds no kinds to plot")
    cols = min(5, len(blocks))
    rows = -(-len(blocks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.6 * rows), dpi=110, squeeze=False)
    clean = result["clean"]["accuracy"]["value"]
    for ax, (name, block) in zip(axes.flat, blocks.items(), strict=False):
        acc = [c["accuracy"] for c in block["cells"]]
        v = np.array([a["value"] for a in acc])
        err = np.array([v - [a["low"] for a in acc], [a["high"] for a in acc] - v])
        ax.errorbar(SEVERITIES, v, yerr=err, marker="o", ms=3, capsize=2, label="accuracy")
        if block["cells"][0].get("ood") is not None:
            ax.plot(SEVERITIES, [c["ood"]["value"] for c in block["cells"]], "s:", ms=3,
                    color="tab:red", label="flagged OOD")  # fmt: skip
        ax.axhline(clean, ls="--", color="grey", lw=1)
        ax.set(title=name, xlabel="severity", ylim=(0, 1.02), xticks=SEVERITIES)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    axes.flat[0].legend(loc="lower left", fontsize=7)
    fig.suptitle(f"Shift battery: {result['n']} images, 95% Wilson intervals")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def subsample(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded stratum-free subsample of `n` of `n_total` images (all if None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def _names(paths: list[str]) -> list[str]:
    """class folder / file name of each path: the same images wherever the dataset is mounted."""
    return [f"{Path(p).parent.name}/{Path(p).name}" for p in paths]


def load_reference(path: str | Path) -> dict:
    """A battery.json written before, for mCE; a one-line error when it is not one."""
    try:
        reference = json.loads(Path(path).read_text())
        reference["kinds"], reference["clean"]  # noqa: B018 - the keys mCE needs
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BlastscanError(f"{path}: not a battery.json of `blastscan robustness --battery` "
                             f"({e})") from None  # fmt: skip
    return reference


def run_battery(
    run_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    bundle: Any = None,
    head: str = "auto",
    kinds: Sequence[str] | None = None,
    seed: int = 0,
    n_images: int | None = None,
    reference: str | Path | None = None,
    batch_size: int = 64,
    device: str | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """The battery on a run's held-out test images (a seeded subsample of `n_images` if given),
    scoring its CNN or a loaded `bundle` of it; writes battery.json, battery.md and
    figures/battery.png under `out_dir`."""
    from blastscan import data as D
    from blastscan.robustness.runs import _scored_model, split_images
    from blastscan.runtime.device import pick_device
    from blastscan.runtime.distributed import configure_threads
    from blastscan.training import load_trained_model

    for name in kinds or []:
        kind(name)  # a wrong name fails before the model and the images load
    configure_threads()
    check_output_dir(Path(out_dir))
    ref = load_reference(reference) if reference is not None else None
    run_dir = Path(run_dir)
    model, meta = load_trained_model(run_dir)
    torch_device = pick_device(device)
    dataset, indices = D.run_split(run_dir, data_dir, meta)
    images, labels, paths = split_images(run_dir, dataset, indices, "test", meta, cache_dir)
    keep = subsample(len(images), n_images, seed)
    images, labels = images[keep], np.asarray(labels)[keep]
    chosen = [str(paths[i]) for i in keep]
    if ref is not None and (_names(ref.get("images", chosen)) != _names(chosen)
                            or ref.get("seed", seed) != seed):  # fmt: skip
        raise BlastscanError(f"{reference}: scored other images or another --seed; mCE needs the "
                             "reference's battery on the same --images and --seed")  # fmt: skip
    _, what = _scored_model(model, bundle, head, batch_size, meta, run_dir)
    scorer = (bundle_scorer(bundle, head, batch_size) if bundle is not None
              else model_scorer(model, batch_size, torch_device))  # fmt: skip
    log.info("battery on %s: %d test images at %d px", what, len(images), meta["image_size"])
    result = evaluate_battery(
        scorer, images, labels, kinds, seed,
        on_step=lambda n, s, c: log.info(
            "%s: %.1f%%", f"{n} {s}" if s else n, 100 * c["accuracy"]["value"]
        ),
    )  # fmt: skip
    result["summary"] = battery_summary(result, ref)
    result = {"run": str(run_dir), "scored": what, "data": str(data_dir),
              "image_size": meta["image_size"], "reference": str(reference) if reference else None,
              "images": chosen, **result}  # fmt: skip
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "battery.json", result)
    atomic_write_text(out_dir / "battery.md", battery_table_markdown(result))
    plot_battery(result, out_dir / "figures" / "battery.png")
    return result
