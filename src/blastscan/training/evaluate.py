"""Scoring a network on held-out images: loss and accuracy per epoch, the final test metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from blastscan.runtime.infer import infer


def evaluate_logits(
    model, images, labels, batch_size, device, precision: str | None = None
) -> tuple[float, float, np.ndarray]:
    """Loss, accuracy and decisions, the network run in the training run's `precision`."""
    out = infer(model, images, batch_size=batch_size, device=device, precision=precision)
    logits = torch.from_numpy(out.logits)
    loss = F.cross_entropy(logits, torch.from_numpy(labels)).item() if len(labels) else float("nan")
    pred = out.logits.argmax(1)
    return loss, float((pred == labels).mean()) if len(labels) else float("nan"), pred


def final_test_metrics(model, images, labels, split, dataset, config, device) -> dict:
    """Confusion matrix and per-class precision/recall/F1 on the held-out 30%, final epoch."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    _, acc, pred = evaluate_logits(
        model,
        images[split.test],
        labels[split.test],
        2 * config.batch_size,
        device,
        config.precision,
    )
    y = labels[split.test]
    k = len(dataset.classes)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    return {
        "split": "held-out 30% (duplicate-aware), final epoch's weights",
        "n_test": len(y),
        "accuracy": acc,
        "classes": dataset.display_names,
        "confusion_matrix": confusion_matrix(y, pred, labels=range(k)).tolist(),
        "per_class": {
            name: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, name in enumerate(dataset.display_names)
        },
    }
