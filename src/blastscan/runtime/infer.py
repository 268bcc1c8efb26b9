"""Deep features and logits of a DarkNet-19 for a batch of images, in eval mode.

Training's validation, `extract` and `predict` all run the network through `infer`, so the
images reach the model the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from blastscan.data import to_float_tensor
from blastscan.runtime.precision import autocast, current_precision


@dataclass
class Inference:
    features: np.ndarray  # (N, 1000) float32: pooled conv19, the paper's deep features
    logits: np.ndarray  # (N, K) float32

    @property
    def probabilities(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@torch.inference_mode()
def infer(
    model: torch.nn.Module,
    images: np.ndarray,
    batch_size: int = 64,
    device: torch.device | None = None,
    on_batch: Callable[[int], None] | None = None,
    precision: str | None = None,
) -> Inference:
    """Features and logits for (N, H, W, 3) uint8 images, in eval mode, in order.

    `precision` fp32 or bf16 (autocast on channels_last input, outputs back in fp32); by default the
    one the command chose (`runtime.precision.use_precision`).
    """
    device = device or next(model.parameters()).device
    precision = precision or current_precision(device)
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = to_float_tensor(images[start : start + batch_size], device)
        with autocast(device, precision):
            f = model.features(batch)
            z = model.head(f)
        feats.append(f.float().cpu().numpy())
        logits.append(z.float().cpu().numpy())
        if on_batch:
            on_batch(len(batch))
    model.train(was_training)
    k = getattr(model, "num_classes", 0)
    return Inference(
        np.concatenate(feats) if feats else np.zeros((0, 1000), np.float32),
        np.concatenate(logits) if logits else np.zeros((0, k), np.float32),
    )
