"""A first layer that reads colour only where the image looks like the training lab's own.

The dilemma it resolves: on this dataset the stain colour tells the class 96% of the time, and
a network that reads it is the most accurate on the training lab's own slides (the fast recipe,
99.6%); but another lab's stain batch, lamp or white balance moves that colour, and the same
network falls to 40% (docs/robustness.md). A network blind to hue and lamp (`value-chroma`)
holds every such shift but loses 1-2 points on the lab's own slides, where colour was right.

`ColourGatedNorm` gives the network both: the value-chroma planes of every image, and the
image's absolute colour planes only when its colour and sharpness statistics lie inside the
training lab's (the *colour gate*); otherwise the colour planes are zero. Trained on a mix of
untouched and shifted images, one network learns to use colour when the gate passes it and to
read the cells' darkness, chroma and shape when it does not; `GatedBatchNorm2d` gives each
kind of image its own batch-norm. The gate is a pure function of the
pixels and of buffers fitted on the training images, so training, inference, Grad-CAM and
ONNX all apply it the same way, and it is saved in every checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

from blastscan.errors import BlastscanError
from blastscan.models.stain import TARGET_MEAN, TARGET_STD, normalize_value_chroma

# Per-image numbers the gate compares with the training images': each channel's mean and s.d.;
# each channel's mean weighted by the pixel's chroma, which is the stained cells' colour (the
# background is nearly grey), moved most by a hue turn or a stain batch; and the log energy of
# the grey image's gradient and Laplacian, which blur lowers and noise raises. The gate passes
# what looks like the training lab's slides through its optics and camera, and nothing else.
GATE_STATISTICS = (
    "mean R", "mean G", "mean B", "s.d. R", "s.d. G", "s.d. B",
    "stain R", "stain G", "stain B", "log edge energy", "log Laplacian energy",
)  # fmt: skip
# Share of the training images whose look the gate passes; the rest of the lab's own images
# fall back to the colour-blind planes. Higher passes more shifted images too.
GATE_QUANTILE = 0.975
# Added to each class's covariance diagonal (relative to its mean variance): a class with few
# images still gets an invertible covariance.
_RIDGE = 1e-3


def gate_statistics(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 11): the numbers of GATE_STATISTICS.

    Written in torch, not taken from the OOD check's numpy statistics (`bundle.ood`, a layer
    above the models): the gate runs inside the network's graph, in training and in ONNX."""
    x = x.float()
    chroma = x.amax(1, keepdim=True) - x.amin(1, keepdim=True)
    stain = (x * chroma).sum(dim=(2, 3)) / chroma.sum(dim=(2, 3)).clamp_min(1e-6)
    grey = x.mean(1)
    dx, dy = grey[:, :, 1:] - grey[:, :, :-1], grey[:, 1:] - grey[:, :-1]
    edges = (dx**2).mean(dim=(1, 2)) + (dy**2).mean(dim=(1, 2))
    laplacian = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1] - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:]
    )  # fmt: skip
    texture = torch.stack(
        [edges.clamp_min(1e-8).log(), (laplacian**2).mean(dim=(1, 2)).clamp_min(1e-8).log()], 1
    )
    return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3), unbiased=False), stain, texture], 1)


def _squared_distances(
    statistics: torch.Tensor, means: torch.Tensor, precisions: torch.Tensor
) -> torch.Tensor:
    """(N, D), (K, D), (K, D, D) -> (N, K) squared Mahalanobis distances to each class.

    Written with broadcasts and sums, no matrix product: int8 quantisation of an exported graph
    rewrites MatMul nodes, and the gate's arithmetic must stay exact."""
    diff = statistics[:, None, :] - means[None]  # (N, K, D)
    return (diff[..., :, None] * precisions[None] * diff[..., None, :]).sum(dim=(-2, -1))


class ColourGatedNorm(torch.nn.Module):
    """Value-chroma planes, plus the colour planes where the colour gate passes: 6 channels.

    The gate passes an image when, for some class, its gate statistics lie within the
    `GATE_QUANTILE` of the training images' squared Mahalanobis distances to their own class
    (a Gaussian per class: the classes differ in colour, so one Gaussian over all would pass
    the colours between them too). Until `fit` is called the gate passes nothing.
    """

    out_channels = 6

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        dim = len(GATE_STATISTICS)
        self.register_buffer("gate_means", torch.zeros(num_classes, dim))
        self.register_buffer("gate_precisions", torch.zeros(num_classes, dim, dim))
        self.register_buffer("gate_threshold", torch.tensor(-1.0))

    @torch.no_grad()
    def fit(
        self,
        images: torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        quantile: float = GATE_QUANTILE,
    ) -> ColourGatedNorm:
        """Fit the gate on training images ((N, 3, H, W) in [0, 1]) and their class indices,
        passing the share `quantile` of them."""
        statistics = gate_statistics(images).double()
        labels = torch.as_tensor(np.asarray(labels))
        num_classes = self.gate_means.shape[0]
        missing = [k for k in range(num_classes) if int((labels == k).sum()) <= statistics.shape[1]]
        if missing:
            raise BlastscanError(
                f"the colour gate needs more than {statistics.shape[1]} training images of each "
                f"class; classes {missing} have fewer"
            )
        means, precisions = [], []
        for k in range(num_classes):
            own = statistics[labels == k]
            covariance = torch.cov(own.T)
            ridge = _RIDGE * covariance.diagonal().mean()
            means.append(own.mean(0))
            precisions.append(torch.linalg.inv(covariance + ridge * torch.eye(len(covariance))))
        self.gate_means.copy_(torch.stack(means))
        self.gate_precisions.copy_(torch.stack(precisions))
        own_distance = _squared_distances(statistics, torch.stack(means), torch.stack(precisions))
        own_distance = own_distance[torch.arange(len(labels)), labels]
        self.gate_threshold.fill_(float(torch.quantile(own_distance, quantile)))
        return self

    def gate_distance(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) the smallest squared Mahalanobis distance of each image's look to a class's."""
        return _squared_distances(
            gate_statistics(x), self.gate_means.float(), self.gate_precisions.float()
        ).amin(dim=1)

    def colour_passed(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bool: whether each image looks like the training lab's (colour, sharpness)."""
        return self.gate_distance(x) <= self.gate_threshold.float()

    def planes_and_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The six input planes and the (N,) bool gate decision they were made with."""
        x = x.float()
        mean = torch.as_tensor(TARGET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.as_tensor(TARGET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        passed = self.colour_passed(x)
        colour = (x - mean) / std * passed.to(x.dtype).view(-1, 1, 1, 1)
        out = torch.cat([normalize_value_chroma(x), colour], dim=1)
        return out.contiguous(memory_format=torch.channels_last), passed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.planes_and_gate(x)[0]


class GatedBatchNorm2d(torch.nn.Module):
    """Two batch-norms: one for the images the colour gate passed, one for those it shut.

    Why: the two kinds of image reach every layer with different statistics (colour planes or
    zeros; the training lab's look or every lamp, stain and blur). One shared batch-norm
    normalises both by their mixture, and the network then reads the lab's own images worse
    than a network trained on them alone (98.3% against 99.5% on the held-out 30%, seed 0;
    docs/robustness.md). Separate statistics and affine parameters per kind, the convolutions
    shared, is AdvProp's auxiliary batch-norm (Xie et al. 2020), which keeps clean accuracy
    while training on much harder examples.

    The network says which to use before each pass (`DarkNet19.feature_map`): in training it
    runs the passed and the shut images as two sub-batches and sets `kind` ("open" or
    "shut"), so each batch-norm's statistics are its own images' and nothing is copied
    between layers; in eval mode it sets `route`, the gate's (N,) decision, and every image
    takes its own normalisation (a graph without data-dependent shapes, as ONNX needs).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.open = torch.nn.BatchNorm2d(channels)
        self.shut = torch.nn.BatchNorm2d(channels)
        self.kind: str | None = None
        self.route: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind is not None:
            norm = self.open if self.kind == "open" else self.shut
            if x.shape[0] * x.shape[2] * x.shape[3] > 1:
                return norm(x)
            # a single value per channel has no batch statistics: the running ones, as they are
            return torch.nn.functional.batch_norm(
                x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
            )
        if self.route is None:
            raise BlastscanError("GatedBatchNorm2d needs the colour gate's decision")
        return torch.where(self.route.view(-1, 1, 1, 1), self.open(x), self.shut(x))
