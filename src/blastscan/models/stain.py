"""Per-image stain (colour) normalisation, as a function and as a parameter-free layer.

It lives beside the models because a network trained with it must apply it wherever it runs:
as the first layer of DarkNet19 it reaches training, inference, Grad-CAM and ONNX alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from blastscan.errors import BlastscanError

# Per-channel mean and standard deviation of the ALL-IDB/Taleqani smears in [0, 1] RGB (every
# 10th image at 128 px): normalised images keep the dataset's own look.
TARGET_MEAN = (0.830, 0.863, 0.963)
TARGET_STD = (0.127, 0.138, 0.047)


def normalize_stain(
    batch: torch.Tensor,
    target_mean: Sequence[float] = TARGET_MEAN,
    target_std: Sequence[float] = TARGET_STD,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Per-image, per-channel standardisation of a float NCHW batch to a fixed mean and std.

    Why: a smear's colour differs between labs by lamp brightness, camera exposure and white
    balance, contrast and stain concentration. To first order each of these is an affine map
    of each RGB channel (x_c -> a_c x_c + b_c). Standardising each channel of each image,
    (x_c - mean_c) / std_c, removes any such map exactly, and rescaling to the dataset's typical
    mean/std (`TARGET_MEAN`, `TARGET_STD`) keeps the look the network expects. This is the
    "colour transfer" of Reinhard et al. (2001), which matches per-channel statistics, done in
    RGB rather than l-alpha-beta because the shifts above are affine in RGB and not in a log
    or cube-root space; the grey-world white balance is its mean-only special case. It needs no
    reference image, no stain-vector estimation and no state, so the same call serves training
    and inference. It does not undo saturation (pixels clipped at 255 stay clipped), hue
    rotations between channels, blur or compression artefacts.

    Output may leave [0, 1] slightly; it is not clipped, the network does not need it to be.
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise BlastscanError(
            f"normalize_stain takes (N, 3, H, W) float batches, got {tuple(batch.shape)}"
        )
    x = batch.float()
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True, unbiased=False)
    tm = torch.as_tensor(target_mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    ts = torch.as_tensor(target_std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    out = (x - mean) / (std + eps) * ts + tm
    return out.contiguous(memory_format=torch.channels_last).to(batch.dtype)


class StainNorm(torch.nn.Module):
    """`normalize_stain` as a parameter-free layer, to put in front of the network's first conv.

    It has no parameters or buffers, so adding it changes no checkpoint key; everything that
    runs the model (training, `infer`, Grad-CAM, ONNX export) then normalises the same way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_stain(x)
