"""The bundle's heads: the CNN through eager PyTorch, the mRMR + classifier head, and what
they say about N images (`Prediction`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from blastscan.errors import BlastscanError

HEAD_CNN = "cnn"
HEAD_CLASSICAL = "features+classifier"
# What a prediction says when the OOD detector flags an image, or when there is none.
OUT_OF_DISTRIBUTION = "out of distribution"
OUT_OF_DISTRIBUTION_KEY = "out_of_distribution"
UNCHECKED = "unchecked"
NO_DETECTOR = (
    "not checked: this bundle has no OOD detector (rebuild it with blastscan bundle RUN --data DIR)"
)


@dataclass
class ClassicalHead:
    """mRMR-selected deep features -> standardisation -> a fitted classifier.

    `columns` index the 1000 features in the order the classifier saw them; `class_index`
    maps the classifier's `classes_` to the bundle's class order.
    """

    columns: np.ndarray
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    classifier: Any
    class_index: np.ndarray
    name: str = "classifier"
    scores: np.ndarray | None = None  # mRMR scores of the selected columns, for the card
    n_inputs: int | None = None  # deep features the selector chose from (1000)
    mrmr: dict[str, Any] | None = None  # its rule: {"threshold": T} or {"n_features": K}

    def predict_proba(self, features: np.ndarray, n_classes: int) -> np.ndarray:
        """Class probabilities in bundle order; one-hot when the classifier has no probabilities."""
        Z = (
            np.asarray(features, dtype=np.float64)[:, self.columns] - self.scaler_mean
        ) / self.scaler_scale
        if len(Z) == 0:
            return np.zeros((0, n_classes))
        try:
            proba = np.asarray(self.classifier.predict_proba(Z), dtype=np.float64)
        except (AttributeError, NotImplementedError):
            picked = np.searchsorted(self.classifier.classes_, self.classifier.predict(Z))
            proba = np.eye(len(self.classifier.classes_))[picked]
        out = np.zeros((len(Z), n_classes))
        out[:, self.class_index] = proba
        return out

    @classmethod
    def from_pipeline(
        cls, pipeline: Any, classes: list[str], name: str | None = None
    ) -> ClassicalHead:
        """From a fitted `make_classifier` pipeline: [select ->] StandardScaler -> classifier."""
        steps = (
            dict(pipeline.named_steps) if hasattr(pipeline, "named_steps") else {"clf": pipeline}
        )
        selector, scaler = steps.get("select"), steps.get("scale")
        classifier = steps.get("clf", list(steps.values())[-1])
        n_in = getattr(selector or scaler or classifier, "n_features_in_", None)
        columns = (
            np.flatnonzero(selector.get_support())
            if selector is not None
            else np.arange(n_in or 1000)
        )
        scores = (
            np.asarray(selector.scores_)[columns]
            if selector is not None and hasattr(selector, "scores_")
            else None
        )
        mean = getattr(scaler, "mean_", None)
        scale = getattr(scaler, "scale_", None)
        return cls(
            columns.astype(np.int64),
            np.zeros(len(columns)) if mean is None else np.asarray(mean, dtype=np.float64),
            np.ones(len(columns)) if scale is None else np.asarray(scale, dtype=np.float64),
            classifier,
            _class_index(classifier.classes_, classes),
            name or type(classifier).__name__,
            scores,
            int(n_in) if n_in is not None else None,
            _selection_rule(selector),
        )


def _selection_rule(selector: Any) -> dict[str, Any] | None:
    """How a fitted selector chose its columns, for the model card (None: no selector)."""
    if selector is None:
        return None
    if getattr(selector, "n_features", None):
        return {"n_features": int(selector.n_features)}
    threshold = getattr(selector, "threshold", None)
    return {"threshold": None if threshold is None else float(threshold)}


def _class_index(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Bundle class index of each classifier label (an index, a class or a display name)."""
    from blastscan.data import DISPLAY_NAMES

    out = []
    for label in np.asarray(labels).tolist():
        if isinstance(label, int) and 0 <= label < len(classes):
            out.append(label)
            continue
        names = {c: i for i, c in enumerate(classes)} | {
            DISPLAY_NAMES.get(c, c): i for i, c in enumerate(classes)
        }
        if str(label) not in names:
            raise BlastscanError(
                f"classifier label {label!r} is not one of the model's classes {classes}"
            )
        out.append(names[str(label)])
    return np.asarray(out, dtype=np.int64)


class TorchEngine:
    """Eager PyTorch through `runtime.infer.infer`, the path training and extract use."""

    def __init__(self, model: torch.nn.Module, device: str | None = None) -> None:
        from blastscan.runtime.device import pick_device

        self.device = pick_device(device)
        self.model = model.to(self.device).eval()

    def infer(self, images: np.ndarray, batch_size: int = 32, on_batch=None):
        from blastscan.runtime.infer import infer

        return infer(self.model, images, batch_size, self.device, on_batch)


@dataclass
class Prediction:
    """What a bundle says about N images: both heads' probabilities and the OOD distance."""

    classes: list[str]
    display_names: list[str]
    probabilities: np.ndarray  # (N, K) of the head that decided
    cnn_probabilities: np.ndarray  # (N, K) softmax of the CNN head
    head: str  # HEAD_CNN or HEAD_CLASSICAL
    features: np.ndarray  # (N, 1000)
    ood_distance: np.ndarray | None = None  # deep-feature Mahalanobis distance
    ood_threshold: float | None = None
    ood_pixel_distance: np.ndarray | None = None  # colour/texture statistics distance
    ood_flag: np.ndarray | None = None
    ood_pixel_threshold: float | None = None
    # colour-gated networks only: whether each image's colour was the training lab's, so the
    # network read it (False: it read the cells without colour)
    lab_colour: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.probabilities)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def ood(self) -> np.ndarray | None:
        return self.ood_flag

    def _ood_reason(self, i: int) -> str:
        """Which check fired: the deep features, the colour/texture statistics, or both."""
        reasons = []
        if self.ood_threshold is not None and self.ood_distance[i] > self.ood_threshold:
            reasons.append("deep features")
        if (
            self.ood_pixel_distance is not None
            and self.ood_pixel_threshold is not None
            and self.ood_pixel_distance[i] > self.ood_pixel_threshold
        ):
            reasons.append("colour/texture")
        return " and ".join(reasons)

    def record(self, i: int, path: str = "") -> dict[str, Any]:
        """One image as a flat dict: the row of the CSV, the item of the JSON and the web API.

        A flagged image's `predicted` is OUT_OF_DISTRIBUTION, with the class the heads would
        have chosen as `nearest`: a class shown at p 0.99 beside a flag in another column reads
        as trusted. Without a detector `ood` is UNCHECKED, never False.
        """
        k = int(self.predicted[i])
        cnn_k = int(self.cnn_probabilities[i].argmax())
        flagged = self.ood_flag is not None and bool(self.ood_flag[i])
        row: dict[str, Any] = {
            "path": path,
            "predicted": OUT_OF_DISTRIBUTION if flagged else self.display_names[k],
            "nearest": self.display_names[k],
            "class": OUT_OF_DISTRIBUTION_KEY if flagged else self.classes[k],
            "probability": float(self.probabilities[i, k]),
            "head": self.head,
        }
        row.update(
            {
                f"p_{n}": float(p)
                for n, p in zip(self.display_names, self.probabilities[i], strict=True)
            }
        )
        row["cnn_predicted"] = self.display_names[cnn_k]
        row["cnn_probability"] = float(self.cnn_probabilities[i, cnn_k])
        if self.lab_colour is not None:
            row["lab_colour"] = bool(self.lab_colour[i])
        if self.ood_flag is None:
            row["ood"] = UNCHECKED
            row["ood_reason"] = NO_DETECTOR
            return row
        row["ood"] = flagged
        row["ood_distance"] = float(self.ood_distance[i])
        if self.ood_pixel_distance is not None:
            row["ood_pixel_distance"] = float(self.ood_pixel_distance[i])
        row["ood_reason"] = self._ood_reason(i)
        return row
