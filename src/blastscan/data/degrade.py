"""Another lab's slide and camera on a float batch: stain, saturation, blur, noise, JPEG and
the slide's own artefacts (stain deposits, air bubbles).

Training-time counterparts of the shift battery (`blastscan.robustness.battery`), written for
(N, 3, H, W) float batches in [0, 1] with every random draw from a CPU torch.Generator, so a
run replays exactly. Each is vectorised over the batch except JPEG, which only Pillow encodes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

# Ruifrok & Johnston (2001), "Quantification of histochemical staining by color deconvolution":
# the optical-density vectors (R, G, B) of haematoxylin, eosin and DAB, one per row, as
# scikit-image's rgb_from_hed. Giemsa's methylene blue / azure and eosin sit close to the first two.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_OD_FLOOR = 1.0 / 255.0  # darkest transmitted light an 8-bit camera records (OD finite)


def stain_concentrations(x: torch.Tensor) -> torch.Tensor:
    """Colour deconvolution: (N, 3, H, W) RGB in [0, 1] -> per-pixel stain amounts (N, 3, H, W).

    Beer-Lambert: OD = -ln(I / I0) is linear in the stain amounts, OD = c @ RGB_FROM_HED."""
    od = -torch.log(x.clamp_min(_OD_FLOOR))
    m = torch.as_tensor(HED_FROM_RGB, dtype=x.dtype, device=x.device)
    return torch.einsum("nchw,cs->nshw", od, m)


def stain_image(c: torch.Tensor) -> torch.Tensor:
    """The inverse of `stain_concentrations`: stain amounts back to RGB in [0, 1]."""
    m = torch.as_tensor(RGB_FROM_HED, dtype=c.dtype, device=c.device)
    return torch.exp(-torch.einsum("nshw,sc->nchw", c, m)).clamp_(0.0, 1.0)


def jitter_stains(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each stain's amount times `scale` plus `shift` ((N, 3) each), in optical-density space:
    another stain batch, staining time or smear thickness (Tellez et al. 2018, "HED jitter").

    Deconvolution, jitter and reconvolution fold into one 3x3 map and offset per image,
    OD' = OD @ (HED_FROM_RGB diag(scale) RGB_FROM_HED) + shift @ RGB_FROM_HED: one batched
    matrix product instead of three."""
    n, ch, h, w = x.shape
    to_stain = torch.as_tensor(HED_FROM_RGB, dtype=x.dtype, device=x.device)
    to_rgb = torch.as_tensor(RGB_FROM_HED, dtype=x.dtype, device=x.device)
    maps = to_stain @ torch.diag_embed(scale.to(x.dtype)) @ to_rgb  # (N, 3, 3)
    offset = (shift.to(x.dtype) @ to_rgb).view(n, 1, ch)
    od = -torch.log(x.clamp_min(_OD_FLOOR)).permute(0, 2, 3, 1).reshape(n, h * w, ch)
    rgb = torch.exp(-(torch.bmm(od, maps) + offset)).clamp_(0.0, 1.0)
    return rgb.view(n, h, w, ch).permute(0, 3, 1, 2)


def scale_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Move each image away from (factor > 1) or towards (< 1) its own grey, per (N,) factor."""
    grey = (
        x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    ).sum(1, keepdim=True)
    return (grey + (x - grey) * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, one sigma (px) per image ((N,), 0 = unchanged), edges reflected:
    a grouped convolution blurs the whole batch at once."""
    n, ch, h, w = x.shape
    radius = max(1, int(np.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x.dtype).clamp_min(1e-3).view(n, 1)
    kernel = torch.exp(-0.5 * (t / s) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(ch, 0)  # (N*C, K)
    flat = F.pad(x.reshape(1, n * ch, h, w), (radius,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * ch, 1, 1, -1), groups=n * ch)
    flat = F.conv2d(flat, kernel.view(n * ch, 1, -1, 1), groups=n * ch)
    return flat.view(n, ch, h, w)


def sensor_noise(x: torch.Tensor, level: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Shot plus read noise, per-image `level` ((N,), s.d. at white), from the unit normal
    `noise`: variance level^2 (0.8 x + 0.2), Poisson-like in the signal with a floor."""
    sd = level.view(-1, 1, 1, 1) * torch.sqrt(0.8 * x + 0.2)
    return (x + sd * noise).clamp_(0.0, 1.0)


def jpeg_roundtrip(x: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """Encode and decode each image as JPEG at its quality (Pillow, 4:2:0), at 8 bits."""
    from PIL import Image

    out = []
    arrays = (x.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    for image, q in zip(arrays, qualities, strict=True):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(q))
        buffer.seek(0)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


# Stain deposits: at most this many specks per 128 x 128 px, of radius 0.5-2.5 px.
MAX_SPECKS = 40
MAX_BUBBLES = 4


def _distance(h: int, w: int, centres: torch.Tensor) -> torch.Tensor:
    """(N, 2) centres (row, column) -> each pixel's distance to its image's centre, (N, H, W)."""
    yy = torch.arange(h, dtype=centres.dtype, device=centres.device).view(1, h, 1)
    xx = torch.arange(w, dtype=centres.dtype, device=centres.device).view(1, 1, w)
    return torch.hypot(yy - centres[:, 0, None, None], xx - centres[:, 1, None, None])


def add_specks(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Stain deposits on every image of `x`: up to MAX_SPECKS dark violet specks per 128^2 px
    (count, places, radii, colour and opacity drawn per image), antialiased discs.

    Written out as a loop over specks: each is a (N, H, W) distance map, so memory stays at one
    map whatever the count; no library draws anti-aliased discs on a torch batch."""
    n, _, h, w = x.shape
    most = max(1, round(MAX_SPECKS * h * w / 128**2))
    draws = torch.rand(n, most, 4, generator=generator).to(x.device, x.dtype)
    count = torch.rand(n, generator=generator).to(x.device, x.dtype) * most
    tint = torch.rand(n, 4, generator=generator).to(x.device, x.dtype)
    size = torch.tensor([h, w], dtype=x.dtype, device=x.device)
    cover = torch.zeros(n, h, w, dtype=x.dtype, device=x.device)
    for k in range(most):
        radius = (0.5 + 2.0 * draws[:, k, 2]).view(n, 1, 1)
        disc = (radius + 0.5 - _distance(h, w, draws[:, k, :2] * size)).clamp(0, 1)  # antialiased
        disc = disc * (k < count).to(x.dtype).view(n, 1, 1)
        cover = torch.maximum(cover, disc)
    colour = torch.tensor([0.3, 0.12, 0.4], dtype=x.dtype, device=x.device) + 0.1 * (
        2 * tint[:, :3] - 1
    )
    alpha = ((0.6 + 0.35 * tint[:, 3]).view(n, 1, 1) * cover).unsqueeze(1)
    return x * (1 - alpha) + colour.view(n, 3, 1, 1) * alpha


def add_bubbles(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Air under the cover slip on every image of `x`: 1 to MAX_BUBBLES discs of radius 6-25%
    of the side, lighter and flatter inside, under a dark refracting rim (drawn per image)."""
    n, _, h, w = x.shape
    draws = torch.rand(n, MAX_BUBBLES, 7, generator=generator).to(x.device, x.dtype)
    count = 1 + torch.rand(n, generator=generator).to(x.device, x.dtype) * MAX_BUBBLES
    size = torch.tensor([h, w], dtype=x.dtype, device=x.device)
    for k in range(MAX_BUBBLES):
        d = draws[:, k]
        radius = ((0.06 + 0.19 * d[:, 2]) * min(h, w)).view(n, 1, 1)
        distance = _distance(h, w, d[:, :2] * size)
        on = (k < count - 1).to(x.dtype).view(n, 1, 1)
        inside = ((radius - distance).clamp(0, 1) * on).unsqueeze(1)
        rim_width = ((0.05 + 0.07 * d[:, 3]).view(n, 1, 1) * radius).clamp_min(1.0)
        rim = ((1 - (distance - radius).abs() / rim_width).clamp(0, 1) * on).unsqueeze(1)
        keep = (0.5 + 0.3 * d[:, 4]).view(n, 1, 1, 1)
        light = (0.9 + 0.1 * d[:, 5]).view(n, 1, 1, 1)
        x = x * (1 - inside) + (keep * x + (1 - keep) * light) * inside
        x = x * (1 - (0.3 + 0.4 * d[:, 6]).view(n, 1, 1, 1) * rim)
    return x


def slide_artefacts(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """Stain deposits on a `share` of the images and air bubbles on another, independent draw
    of the same share: the slide's own defects, which no colour normalisation removes. Drawn
    differently from the battery's `precipitate` and `air-bubbles` (radii, colours, opacity
    and counts vary per image), so that the battery does not test the training draws."""
    n = x.shape[0]
    chosen = torch.rand(n, 2, generator=generator) < share
    x = x.clone()
    for column, draw in enumerate((add_specks, add_bubbles)):
        rows = chosen[:, column].nonzero().flatten().to(x.device)
        sub_generator = torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, (1,), generator=generator))
        )
        if len(rows):
            x[rows] = draw(x[rows], sub_generator).clamp_(0.0, 1.0)
    return x


def on_a_share(
    x: torch.Tensor,
    chance: float,
    generator: torch.Generator,
    shift: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """`shift` applied to each image of `x` with probability `chance`, computed on those only.
    At chance 1 nothing is drawn, so runs that shift every image keep their draws."""
    if chance >= 1:
        return shift(x)
    chosen = (torch.rand(x.shape[0], generator=generator) < chance).nonzero().flatten()
    if not len(chosen):
        return x
    chosen = chosen.to(x.device)
    x = x.clone()
    x[chosen] = shift(x[chosen])
    return x


def _jitter_stains_at_random(
    x: torch.Tensor, generator: torch.Generator, strength: float
) -> torch.Tensor:
    """Each stain amount scaled by U[1 - s, 1 + s] and shifted by U[-s/10, s/10] OD."""
    draws = torch.rand(x.shape[0], 6, generator=generator).to(x.device) * 2 - 1
    return jitter_stains(x, 1 + draws[:, :3] * strength, draws[:, 3:] * strength / 10)


def _scale_saturation_at_random(
    x: torch.Tensor, generator: torch.Generator, strength: float
) -> torch.Tensor:
    """Saturation scaled by U[1 - s, 1 + s]."""
    factor = 1 + (torch.rand(x.shape[0], generator=generator) * 2 - 1).to(x.device) * strength
    return scale_saturation(x, factor)


def degrade(
    x: torch.Tensor,
    generator: torch.Generator,
    stain_jitter: float = 0.0,
    saturation: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    jpeg: float = 0.0,
    artefacts: float = 0.0,
    chance: float = 1.0,
) -> torch.Tensor:
    """The optional acquisition shifts of `augment`, each off at 0, drawn in a fixed order.

    `stain_jitter` s: each stain amount scaled by U[1 - s, 1 + s] and shifted by
    U[-s/10, s/10] OD. `saturation` s: saturation scaled by U[1 - s, 1 + s]. `blur` b: half the
    images blurred with sigma U[0, b] px. `noise` n: half get sensor noise of s.d. up to n.
    `jpeg` p: this share re-encoded at a JPEG quality drawn from 15..90. `artefacts` a: this
    share gets stain deposits, and another draw of it air bubbles (`slide_artefacts`).
    `chance` < 1: the stain and saturation shifts each reach an image with that chance.
    """
    if stain_jitter > 0:
        x = on_a_share(
            x, chance, generator, lambda v: _jitter_stains_at_random(v, generator, stain_jitter)
        )
    if saturation > 0:
        x = on_a_share(
            x, chance, generator, lambda v: _scale_saturation_at_random(v, generator, saturation)
        )
    n = x.shape[0]
    if blur > 0:
        draws = torch.rand(n, 2, generator=generator).to(x.device)
        sigma = torch.where(draws[:, 0] < 0.5, draws[:, 1] * blur, torch.zeros_like(draws[:, 1]))
        x = torch.where((sigma > 0.05).view(n, 1, 1, 1), gaussian_blur(x, sigma), x)
    if noise > 0:
        draws = torch.rand(n, 2, generator=generator)
        level = torch.where(draws[:, 0] < 0.5, draws[:, 1] * noise, torch.zeros(n)).to(x.device)
        x = sensor_noise(x, level, torch.randn(x.shape, generator=generator).to(x.device))
    if jpeg > 0:
        chosen = (torch.rand(n, generator=generator) < jpeg).nonzero().flatten()
        qualities = torch.randint(15, 91, (n,), generator=generator)
        if len(chosen):
            x = x.clone()
            x[chosen] = jpeg_roundtrip(x[chosen], qualities[chosen].tolist())
    if artefacts > 0:
        x = slide_artefacts(x, generator, artefacts)
    return x
