"""The first layers a DarkNet-19 can put in front of its first convolution, by name.

A run's config and a bundle's manifest store only the name; `input_norm_layer` rebuilds the
same layer from it wherever the network is loaded.
"""

from __future__ import annotations

import torch

from blastscan.errors import BlastscanError
from blastscan.models.colour_gate import GATE_QUANTILE, ColourGatedNorm
from blastscan.models.stain import (
    DarkPointNorm,
    DarkQuantileNorm,
    StainNorm,
    ValueChromaNorm,
    WhitePointNorm,
)

INPUT_NORMS: dict[str, type[torch.nn.Module]] = {
    "none": torch.nn.Identity,
    "stain": StainNorm,
    "whitepoint": WhitePointNorm,
    "darkpoint": DarkPointNorm,
    "value-chroma": ValueChromaNorm,
    "colour-gated": ColourGatedNorm,
}


def input_norm_layer(name: str, num_classes: int = 4) -> torch.nn.Module:
    """The first layer called `name` (see INPUT_NORMS).

    "whitepoint:0.1" or "darkpoint:0.1" sets the dark quantile (default 0.05). All but
    "colour-gated" are parameter-free; its gate is fitted on the training images
    (`fit_input_norm`) and travels in the checkpoint as buffers.
    """
    kind, _, argument = name.partition(":")
    if kind not in INPUT_NORMS or (
        argument and not issubclass(INPUT_NORMS[kind], DarkQuantileNorm)
    ):
        raise BlastscanError(
            f"unknown input normalisation {name!r}; choose one of {list(INPUT_NORMS)} "
            "(whitepoint:Q or darkpoint:Q sets the quantile, e.g. whitepoint:0.1)"
        )
    if kind == "colour-gated":
        return ColourGatedNorm(num_classes)
    if not argument:
        return INPUT_NORMS[kind]()
    try:
        quantile = float(argument)
    except ValueError:
        quantile = -1.0
    if not 0 < quantile < 1:
        raise BlastscanError(f"input normalisation {name!r}: the quantile must be in (0, 1)")
    return INPUT_NORMS[kind](quantile)


def input_norm_name(config: dict | None) -> str:
    """The input normalisation a saved config asks for; runs before it existed said stain_norm."""
    config = config or {}
    return config.get("input_norm") or ("stain" if config.get("stain_norm") else "none")


def input_norm_learns(model: torch.nn.Module) -> bool:
    """Whether the model's first layer is fitted on the training images (the colour gate)."""
    return hasattr(getattr(model, "input_norm", None), "fit")


def fit_input_norm(
    model: torch.nn.Module, images: torch.Tensor, labels, quantile: float = GATE_QUANTILE
) -> bool:
    """Fit a first layer that learns from the training images (the colour gate); True if one did.

    `images`: (N, 3, H, W) float in [0, 1], un-augmented, as the network sees them; `quantile`:
    the share of them the gate passes."""
    if not input_norm_learns(model):
        return False
    model.input_norm.fit(images, labels, quantile)
    return True
