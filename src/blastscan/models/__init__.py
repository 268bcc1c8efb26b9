"""Model architectures, one per file, with their weight loaders beside them."""

from blastscan.models.darknet19 import FEATURE_DIM, DarkNet19, darknet19
from blastscan.models.weights import (
    load_darknet_weights,
    load_pretrained,
    load_safetensors_weights,
    save_darknet_weights,
)

__all__ = [
    "FEATURE_DIM",
    "DarkNet19",
    "darknet19",
    "load_darknet_weights",
    "load_pretrained",
    "load_safetensors_weights",
    "save_darknet_weights",
]
