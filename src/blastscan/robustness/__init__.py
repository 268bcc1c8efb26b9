"""Robustness of a trained DarkNet-19 to the shifts another lab's microscope and stain bring.

- `corruptions`: the perturbations (brightness, contrast, hue, stain, blur, jpeg) on uint8
  NHWC batches, `PERTURBATIONS`, `DEFAULT_GRID`, `perturb`.
- `evaluate`: `evaluate_robustness` reports the accuracy with a 95% Wilson interval (and the
  top-label ECE) for each perturbation and strength next to the clean accuracy.
- `colour_swap`: `evaluate_colour_swap` gives every test image each other class's colour (the
  mean colour of that class's training images): a network that reads the cells keeps its
  answer, one that reads stain and light moves to the colour's class.
- `tables`: the Markdown table and the figure of a result.
- `runs`: `run_robustness` and `run_colour_swap` on a training run's held-out test images.
- `paired`: `compare_runs`, two runs image by image with McNemar's exact test.
- `battery`, `shifts`, `battery_eval`, `battery_report`: the shift battery, 15 corruption
  kinds (`BATTERY`) x 5 severities, `corrupt`, `evaluate_battery` (accuracy and OOD flags
  per cell, battery mean, worst cell, mCE), `run_battery` on a run or its bundle.

`normalize_stain` (re-exported from `blastscan.models.stain`) is the per-image colour
standardisation the lead can switch on in training and inference (see docs/robustness.md).
"""

from blastscan.models.stain import (  # re-exported: benchmarks/ use them through here
    TARGET_MEAN,
    TARGET_STD,
    StainNorm,
    normalize_stain,
)
from blastscan.robustness.battery import BATTERY, SEVERITIES, Kind, corrupt
from blastscan.robustness.battery_eval import (
    battery_summary,
    bundle_scorer,
    corruption_errors,
    evaluate_battery,
    model_scorer,
)
from blastscan.robustness.battery_report import (
    battery_table_markdown,
    plot_battery,
    run_battery,
)
from blastscan.robustness.colour_swap import (
    COLOURS_FROM,
    class_colours,
    colour_swap_markdown,
    evaluate_colour_swap,
    recolour,
)
from blastscan.robustness.corruptions import (
    DEFAULT_GRID,
    PERTURBATIONS,
    Perturbation,
    blur,
    brightness,
    contrast,
    hue,
    jpeg,
    perturb,
    stain,
)
from blastscan.robustness.evaluate import (
    Predictor,
    as_predictor,
    bundle_predictor,
    evaluate_robustness,
    model_predictor,
    strength_label,
    summarize,
)
from blastscan.robustness.runs import (
    held_out_images,
    run_colour_swap,
    run_robustness,
    split_images,
    training_colours,
)
from blastscan.robustness.tables import plot_robustness, robustness_table_markdown

__all__ = [
    "BATTERY",
    "SEVERITIES",
    "Kind",
    "battery_summary",
    "battery_table_markdown",
    "bundle_scorer",
    "corrupt",
    "corruption_errors",
    "evaluate_battery",
    "model_scorer",
    "plot_battery",
    "run_battery",
    "COLOURS_FROM",
    "DEFAULT_GRID",
    "PERTURBATIONS",
    "TARGET_MEAN",
    "TARGET_STD",
    "Perturbation",
    "Predictor",
    "StainNorm",
    "as_predictor",
    "blur",
    "brightness",
    "bundle_predictor",
    "class_colours",
    "colour_swap_markdown",
    "contrast",
    "evaluate_colour_swap",
    "evaluate_robustness",
    "held_out_images",
    "hue",
    "jpeg",
    "model_predictor",
    "normalize_stain",
    "perturb",
    "plot_robustness",
    "recolour",
    "robustness_table_markdown",
    "run_colour_swap",
    "run_robustness",
    "split_images",
    "stain",
    "strength_label",
    "summarize",
    "training_colours",
]
