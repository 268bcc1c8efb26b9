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


# Darkest share of each image's pixels whose level becomes the image's own black-to-white scale.
WHITE_POINT_QUANTILE = 0.05


def _dark_level(x: torch.Tensor, quantile: float) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1): each channel's `quantile` level, never below one 8-bit step."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    k = max(1, int(quantile * flat.shape[-1] + 0.5))  # int(): ONNX tracing sees a tensor
    # torch.quantile sorts every row; the k-th smallest by topk is the same level, cheaper,
    # and exports to ONNX (TopK).
    return flat.topk(k, dim=-1, largest=False).values[..., -1:].clamp_min(1.0 / 255)


def normalize_white_point(
    batch: torch.Tensor, quantile: float = WHITE_POINT_QUANTILE
) -> torch.Tensor:
    """Each image's red and green measured against their own darkest pixels; blue dropped.

    Why: a brighter lamp multiplies every pixel by s and the camera clips at full scale,
    x -> min(s x, 1). On these smears brightening by 1.3 clips nearly all of blue and most of
    red and green (docs/robustness.md): that information is gone, and no normalisation of
    the whole image can bring it back. What survives is the dark part of the image, the
    nuclei and cytoplasm. Dividing a channel by its `quantile` level q (the 5% darkest pixel)
    and clipping at 1, min(x / q, 1), is *exactly* unchanged by any s with s q <= 1, clipped
    or not: min(min(s x, 1) / (s q), 1) = min(x / q, 1). So the network sees the same input
    from x0.6 to x1.3 for every image whose darkest 5% stay below the clip (92.5% of
    these images at x1.3, docs/robustness.md). The price is everything brighter than q: the background and the
    pale cytoplasm become flat. Blue is dropped because x1.3 clips it in 99.9% of pixels.
    Returns "darkness" 1 - min(x / q, 1) in [0, 1), background 0 (what zero padding assumes).
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise BlastscanError(
            f"normalize_white_point takes (N, 3, H, W) float batches, got {tuple(batch.shape)}"
        )
    x = batch.float()
    red_green = x[:, :2]
    level = _dark_level(red_green, quantile)
    dark = 1.0 - (red_green / level.unsqueeze(-1)).clamp(max=1.0)
    out = torch.cat([dark, torch.zeros_like(x[:, 2:])], dim=1)
    return out.contiguous(memory_format=torch.channels_last).to(batch.dtype)


class DarkQuantileNorm(torch.nn.Module):
    """A per-image normalisation keyed on a dark quantile, as a parameter-free first layer
    (no checkpoint keys); `input_norm_layer` accepts "name:Q" for these."""

    def __init__(self, quantile: float = WHITE_POINT_QUANTILE) -> None:
        super().__init__()
        self.quantile = quantile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x, self.quantile)


class WhitePointNorm(DarkQuantileNorm):
    """`normalize_white_point` as a first layer."""

    normalize = staticmethod(normalize_white_point)


# Dark-point normalisation keeps levels up to this many times the dark level (the brightest
# background of these smears sits at about 1.6-2.2 times the red/green 5% level).
DARK_POINT_CAP = 2.5


def normalize_dark_point(
    batch: torch.Tensor, quantile: float = WHITE_POINT_QUANTILE, cap: float = DARK_POINT_CAP
) -> torch.Tensor:
    """Every channel measured against its own darkest pixels, nothing flattened: x_c / q_c.

    Why: darkening (x -> s x, s < 1) divides out exactly, as in `normalize_white_point`, but
    unlike it this keeps the background, the pale cytoplasm and blue. Brightening that clips
    at full scale is then the same as clipping this output at 1 / (s q_c): a training run that
    also sees brightened, clipped images (`augment(..., brighten=...)`) learns exactly the
    inputs a brighter lamp produces, while an unclipped image keeps everything the plain
    network sees. Returns "darkness" 1 - min(x / q, cap) / cap in [0, 1], background low.
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise BlastscanError(
            f"normalize_dark_point takes (N, 3, H, W) float batches, got {tuple(batch.shape)}"
        )
    x = batch.float()
    level = _dark_level(x, quantile)
    out = 1.0 - (x / level.unsqueeze(-1)).clamp(max=cap) / cap
    return out.contiguous(memory_format=torch.channels_last).to(batch.dtype)


class DarkPointNorm(DarkQuantileNorm):
    """`normalize_dark_point` as a first layer."""

    normalize = staticmethod(normalize_dark_point)


def normalize_value_chroma(batch: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Each pixel's HSV value, darkest channel and chroma, standardised per image: no hue.

    Why: another stain batch or white balance turns the hue (`rotate_hue`, the battery's
    `hue-plus` / `hue-minus`), which mixes the channels, so no per-channel map undoes it. But a
    hue turn keeps each pixel's largest channel V = max(r, g, b) and smallest m = min(r, g, b),
    hence its chroma C = V - m: this input is *exactly* unchanged by any hue turn. A lamp
    (x -> s x) and a contrast change about the mean grey (x -> a x + b on every channel) move V,
    m and C affinely, which the per-image standardisation removes, as `normalize_stain` does;
    pulling colours towards grey (saturation x f) scales C by exactly f. What is lost is which
    hue a pixel has: on this dataset the colour alone tells the class 96% of the time
    (docs/results.md), a shortcut a second lab's slides do not share, so the network has to
    read the cell's darkness, chroma and shape. Clipped highlights are not undone (train with
    `brighten`). Output: three z-scored channels (V, m, C), not clipped.
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise BlastscanError(
            f"normalize_value_chroma takes (N, 3, H, W) float batches, got {tuple(batch.shape)}"
        )
    x = batch.float()
    value, darkest = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
    channels = torch.cat([value, darkest, value - darkest], dim=1)
    mean = channels.mean(dim=(2, 3), keepdim=True)
    std = channels.std(dim=(2, 3), keepdim=True, unbiased=False)
    out = (channels - mean) / (std + eps)
    return out.contiguous(memory_format=torch.channels_last).to(batch.dtype)


class ValueChromaNorm(torch.nn.Module):
    """`normalize_value_chroma` as a parameter-free first layer (no checkpoint keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_value_chroma(x)
