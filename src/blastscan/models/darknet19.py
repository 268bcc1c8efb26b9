"""DarkNet-19 (Redmon & Farhadi, YOLO9000), layer for layer as darknet19.cfg.

The network ends, as the cfg does, in a 1x1 convolution to 1000 channels and a global
average pool: those 1000 pooled values are the paper's deep features. A K-class linear
head sits on top of them so the same module is both the classifier and the feature
extractor. Inputs are RGB in [0, 1], as Darknet feeds them (no mean/std normalisation).
"""

from __future__ import annotations

import torch
from torch import nn

from blastscan.errors import BlastscanError
from blastscan.models.colour_gate import ColourGatedNorm, GatedBatchNorm2d
from blastscan.models.input_norm import input_norm_layer

# (out_channels, kernel) per conv layer; "M" is a 2x2/2 max-pool. Straight from darknet19.cfg.
DARKNET19_CFG: list[tuple[int, int] | str] = [
    (32, 3), "M",
    (64, 3), "M",
    (128, 3), (64, 1), (128, 3), "M",
    (256, 3), (128, 1), (256, 3), "M",
    (512, 3), (256, 1), (512, 3), (256, 1), (512, 3), "M",
    (1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3),
]  # fmt: skip
FEATURE_DIM = 1000


class ConvBNLeaky(nn.Sequential):
    """Darknet's `batch_normalize=1, activation=leaky` convolution: no conv bias, BN, LeakyReLU(0.1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        norm: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            norm(out_channels),
            nn.LeakyReLU(0.1, inplace=True),
        )


class DarkNet19(nn.Module):
    """DarkNet-19 backbone + conv19 (1000 channels) + global average pool + K-class head."""

    def __init__(
        self, num_classes: int = 4, in_channels: int = 3, input_norm: str = "none"
    ) -> None:
        super().__init__()
        # Parameter-free but for the colour gate's buffers; its six planes widen the first conv.
        self.input_norm: nn.Module = input_norm_layer(input_norm, num_classes)
        # A colour-gated network normalises passed and shut images each by their own statistics.
        gated = isinstance(self.input_norm, ColourGatedNorm)
        norm = GatedBatchNorm2d if gated else nn.BatchNorm2d
        layers: list[nn.Module] = []
        channels = getattr(self.input_norm, "out_channels", in_channels)
        for item in DARKNET19_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out_channels, kernel = item
                layers.append(ConvBNLeaky(channels, out_channels, kernel, norm))
                channels = out_channels
        self.body = nn.Sequential(*layers)
        # a plain list, not registered twice: the layers that take the gate's decision
        self._gated_norms = [m for m in self.body.modules() if isinstance(m, GatedBatchNorm2d)]
        self.conv19 = nn.Conv2d(channels, FEATURE_DIM, 1, bias=True)  # linear activation in the cfg
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_classes = num_classes
        # With num_classes == 1000 the network is exactly Darknet's ImageNet classifier:
        # conv19's pooled output already is the logits, so no extra head is added.
        self.head: nn.Module = (
            nn.Identity() if num_classes == FEATURE_DIM else nn.Linear(FEATURE_DIM, num_classes)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for the leaky convs, zero-centred head: trains well from scratch."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """conv18's output (1024 channels): the last 3x3 conv block, where Grad-CAM looks."""
        if not self._gated_norms:
            return self.body(self.input_norm(x))
        planes, passed = self.input_norm.planes_and_gate(x)
        if not self.training:
            self._set_gated_norms(route=passed)
            return self.body(planes)
        # training: passed and shut images as two sub-batches, each through its batch-norms
        maps, order = [], []
        for kind, rows in (("open", passed), ("shut", ~passed)):
            index = rows.nonzero().flatten()
            if len(index):
                self._set_gated_norms(kind=kind)
                maps.append(self.body(planes[index]))
                order.append(index)
        self._set_gated_norms()
        return torch.cat(maps)[torch.argsort(torch.cat(order))]

    def _set_gated_norms(self, kind: str | None = None, route: torch.Tensor | None = None) -> None:
        for norm in self._gated_norms:
            norm.kind, norm.route = kind, route

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1000-d pooled conv19 output: the paper's deep features."""
        return self.features_from_map(self.feature_map(x))

    def features_from_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The deep features of a `feature_map` output (Grad-CAM differentiates through this)."""
        return self.pool(self.conv19(feature_map)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def conv_layers(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
        """The 19 convolutions in cfg order, each with its batch-norm (None for conv19)."""
        if self._gated_norms:
            raise BlastscanError(
                "a colour-gated DarkNet-19 (six input planes, two batch-norms per layer) has no "
                "Darknet .weights layout; save and load it as safetensors"
            )
        pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = [
            (block[0], block[1]) for block in self.body if isinstance(block, ConvBNLeaky)
        ]
        pairs.append((self.conv19, None))
        return pairs


def darknet19(
    num_classes: int = 4, pretrained: str | None = None, input_norm: str = "none"
) -> DarkNet19:
    """Build DarkNet-19; `pretrained` is a Darknet `.weights` file or a safetensors checkpoint."""
    model = DarkNet19(num_classes=num_classes, input_norm=input_norm)
    if pretrained:
        from blastscan.models.weights import load_pretrained

        load_pretrained(model, pretrained)
    return model
