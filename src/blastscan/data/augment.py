"""Augmenting a float batch on the device: dihedral turns, light, stain and colour."""

from __future__ import annotations

import torch

from blastscan.data.degrade import degrade, on_a_share


def rotate_hue(x: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (N, 3, H, W) images by `degrees` (one number, or one per image).

    Saturation and value are kept, as a different stain batch or white balance would shift
    the colour. Written out: torchvision's adjust_hue cannot be installed beside our torch, and
    kornia would be a whole dependency for ten lines. With V = max, C = max - min and H in
    [0, 6), channel n (R: 5, G: 3, B: 1) is V - C * clip(min(k, 4 - k), 0, 1),
    k = (n + H) mod 6, the closed form of HSV to RGB (matches matplotlib's).
    """
    r, g, b = x.unbind(1)
    v = x.amax(1)
    c = v - x.amin(1)
    safe = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(
        v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    shift = torch.as_tensor(degrees, dtype=x.dtype, device=x.device).reshape(-1, 1, 1) / 60
    h = (h + shift) % 6
    k = (
        torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) + h[:, None]
    ) % 6
    return v[:, None] - c[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def channel_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's per-channel mean and s.d. over its pixels, (N, 3, 1, 1) each."""
    return x.mean((2, 3), keepdim=True), x.std((2, 3), keepdim=True, correction=0)


def transfer_colour(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Reinhard et al. (2001) colour transfer in RGB: each channel of each (N, 3, H, W) image
    shifted and scaled so that its mean and s.d. become `mean` and `std` (broadcast to
    (N, 3, 1, 1)), clipped to [0, 1]. The cells stay where they are; only stain and light move.
    Written out: five lines of arithmetic, where a library (kornia, staintools) would be a
    whole dependency, and this runs on the batch already on the device."""
    own_mean, own_std = channel_statistics(x)
    moved = (x - own_mean) / own_std.clamp_min(1e-3) * std + mean
    return moved.clamp_(0.0, 1.0)


def augment(
    x: torch.Tensor, generator: torch.Generator, keep_lab: float = 0.0, **shifts: float
) -> torch.Tensor:
    """Augment a float batch in place of a file pipeline: flips, 90-degree turns, then the
    light, colour, optics and slide `shifts` of `shift_look` (each off unless given).

    Smears have no up or left, so the 8 dihedral symmetries are free data. `keep_lab` k > 0
    spares a share k of the images every shift but the dihedral turns: they keep the training
    lab's look, where a colour-gated network (`models.colour_gate`) learns to read colour,
    while the rest teach it to do without; only the rest are computed.
    """
    n = x.shape[0]
    # Random draws come from a CPU generator (reproducible on any device), then move to x.
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    turns = torch.randint(0, 4, (n,), generator=generator).to(x.device)
    out = torch.where(flip[:, None, None, None], x.flip(3), x)
    if x.shape[2] == x.shape[3]:
        for k in range(1, 4):
            chosen = turns == k
            out[chosen] = torch.rot90(out[chosen], k, dims=(2, 3))
    if keep_lab > 0:  # drawn only when asked: runs without keep their draws
        shifted = (torch.rand(n, generator=generator) >= keep_lab).nonzero().flatten()
        if len(shifted):
            shifted = shifted.to(x.device)
            out[shifted] = shift_look(out[shifted], generator, **shifts)
    else:
        out = shift_look(out, generator, **shifts)
    return out.contiguous(memory_format=torch.channels_last)


def shift_look(
    x: torch.Tensor,
    generator: torch.Generator,
    color_jitter: float = 0.0,
    brighten: float = 0.0,
    darken: float = 0.0,
    hue: float = 0.0,
    recolour: float = 0.0,
    stain_jitter: float = 0.0,
    saturation: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    jpeg: float = 0.0,
    artefacts: float = 0.0,
    shift_chance: float = 1.0,
) -> torch.Tensor:
    """Another lamp, stain, optics and slide on a float batch, each shift off at 0 and drawn
    after the ones before it, so runs without it keep their draws.

    Colour jitter scales brightness and contrast and shifts the stain per channel; it is what
    makes the network robust to other microscopes' light and stains. `brighten` b > 0 shows
    half the images under a brighter lamp, x -> min(s x, 1) for s uniform in [1, 1 + b], saved
    at 8 bits as a camera would: the clipped highlights a dark-point network cannot divide
    out. `darken` d > 0 shows the other half under a dimmer lamp, s uniform in [1 - d, 1]:
    with both, a plain network sees the whole range of lamps it should not care about. `hue`
    h > 0 rotates each image's hue by a uniform draw in [-h, h] degrees (another stain batch).
    `recolour` p > 0 gives each image, with probability p, the colour (channel means and
    s.d.s, `transfer_colour`) of another image of the batch, mostly one of another class:
    on this dataset colour alone tells the class 96% of the time (docs/results.md), and a
    network that cannot count on it has to read the cells. `stain_jitter`, `saturation`,
    `blur`, `noise` and `jpeg` are another lab's stain batch, optics and camera, `artefacts`
    the slide's stain deposits and air bubbles (`degrade`). `shift_chance` c < 1 lets each of
    the colour jitter, lamp, hue, stain and saturation shifts reach an image with chance c,
    so that images also show one lab difference at a time, as the shift battery does, rather
    than all of them at once.
    """
    n = x.shape[0]
    chance = shift_chance
    if color_jitter > 0:
        x = on_a_share(x, chance, generator, lambda v: jitter_colour(v, generator, color_jitter))
    if brighten > 0 or darken > 0:
        x = on_a_share(x, chance, generator, lambda v: change_lamp(v, generator, brighten, darken))
    if hue > 0:
        x = on_a_share(x, chance, generator, lambda v: turn_hue(v, generator, hue))
    if recolour > 0:
        chosen = (torch.rand(n, generator=generator) < recolour).to(x.device)
        donor = torch.randperm(n, generator=generator).to(x.device)
        mean, std = channel_statistics(x)
        x = torch.where(chosen[:, None, None, None], transfer_colour(x, mean[donor], std[donor]), x)
    return degrade(x, generator, stain_jitter, saturation, blur, noise, jpeg, artefacts, chance)


def change_lamp(
    x: torch.Tensor, generator: torch.Generator, brighten: float, darken: float
) -> torch.Tensor:
    """Half the images under a lamp up to 1 + brighten brighter, half up to 1 - darken dimmer,
    clipped and saved at 8 bits as a camera would."""
    n = x.shape[0]
    draws = torch.rand(n, 2, generator=generator).to(x.device)
    scale = torch.where(draws[:, 0] < 0.5, 1 + draws[:, 1] * brighten, 1 - draws[:, 1] * darken)
    return (x * scale.view(n, 1, 1, 1)).clamp_(0.0, 1.0).mul_(255).round_().div_(255)


def turn_hue(x: torch.Tensor, generator: torch.Generator, degrees: float) -> torch.Tensor:
    """Each image's hue turned by a uniform draw in [-degrees, degrees]."""
    turn = (torch.rand(x.shape[0], generator=generator) * 2 - 1).to(x.device) * degrees
    return rotate_hue(x, turn)


def jitter_colour(x: torch.Tensor, generator: torch.Generator, strength: float) -> torch.Tensor:
    """Brightness and contrast scaled by up to +-strength, each channel by up to +-strength/2."""
    n = x.shape[0]
    draws = (torch.rand(n, 5, generator=generator) * 2 - 1).to(x.device)
    brightness = (1 + draws[:, 0] * strength).view(n, 1, 1, 1)
    contrast = (1 + draws[:, 1] * strength).view(n, 1, 1, 1)
    stain = (1 + draws[:, 2:] * strength * 0.5).view(n, 3, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (((x - mean) * contrast + mean) * brightness * stain).clamp_(0.0, 1.0)
