"""The colour-gated first layer: colour planes only for images coloured like the training lab's."""

import numpy as np
import pytest
import torch

from blastscan.data import rotate_hue
from blastscan.errors import BlastscanError
from blastscan.models import darknet19
from blastscan.models.colour_gate import ColourGatedNorm, GatedBatchNorm2d, gate_statistics
from blastscan.models.input_norm import fit_input_norm
from blastscan.models.stain import normalize_value_chroma


def _lab(n: int = 240, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Two 'classes' of smear-like images: pale background, a violet blob, the lamp varying
    a little from image to image and the blob's stain differing by class."""
    gen = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % 2
    x = 0.85 + 0.05 * torch.rand(n, 3, size, size, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2
    stain = torch.tensor([[0.55, 0.35, 0.75], [0.45, 0.30, 0.70]])[labels]
    stain = stain * (1 + 0.03 * torch.randn(n, 1, generator=gen))
    x[:, :, blob] = stain[:, :, None] + 0.02 * torch.rand(n, 3, int(blob.sum()), generator=gen)
    lamp = 1 + 0.02 * torch.randn(n, 1, 1, 1, generator=gen)
    return (x * lamp).clamp(0, 1), labels


def test_the_gate_passes_the_labs_colours_and_shuts_on_a_hue_turn_or_a_dimmer_lamp():
    x, labels = _lab()
    gate = ColourGatedNorm(2).fit(x, labels)
    held_out, _ = _lab(seed=1)
    assert gate.colour_passed(held_out).float().mean() > 0.9
    assert gate.colour_passed(rotate_hue(held_out, 30.0)).float().mean() < 0.1
    assert gate.colour_passed(held_out * 0.7).float().mean() < 0.1


def test_the_gate_passes_the_share_of_training_images_it_is_fitted_for():
    x, labels = _lab()
    for quantile in (0.8, 0.975):
        gate = ColourGatedNorm(2).fit(x, labels, quantile=quantile)
        assert abs(float(gate.colour_passed(x).float().mean()) - quantile) < 0.02


def test_shut_gate_leaves_exactly_the_value_chroma_planes_and_zero_colour():
    x, labels = _lab()
    gate = ColourGatedNorm(2).fit(x, labels)
    turned = rotate_hue(x[:4], 40.0)
    out = gate(turned)
    assert out.shape == (4, 6, 32, 32)
    torch.testing.assert_close(out[:, :3], normalize_value_chroma(turned))
    assert out[:, 3:].abs().max() == 0
    assert gate(x[:4])[:, 3:].abs().amax(dim=(1, 2, 3)).min() > 0  # open: colour present


def test_an_unfitted_gate_passes_nothing_and_fitting_needs_every_class():
    x, labels = _lab()
    assert not ColourGatedNorm(2).colour_passed(x).any()
    with pytest.raises(BlastscanError, match="training images of each class"):
        ColourGatedNorm(3).fit(x, labels)


def test_statistics_are_eleven_numbers_per_image_and_the_stain_colour_follows_the_blob():
    x, labels = _lab(n=8)
    stats = gate_statistics(x)
    assert stats.shape == (8, 11)
    # the chroma-weighted colour is the blob's, not the pale background's
    assert (stats[:, 6:9] - stats[:, :3]).abs().min() > 0.05


def test_network_with_the_gate_has_six_input_planes_and_keeps_the_gate_in_its_state():
    x, labels = _lab(n=64)
    model = darknet19(2, input_norm="colour-gated").eval()
    assert model.body[0][0].in_channels == 6
    assert fit_input_norm(model, x, labels)
    assert not fit_input_norm(darknet19(2), x, labels)  # nothing to fit in a plain network
    state = model.state_dict()
    assert {
        "input_norm.gate_means",
        "input_norm.gate_precisions",
        "input_norm.gate_threshold",
    } <= set(state)
    reloaded = darknet19(2, input_norm="colour-gated").eval()
    reloaded.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x[:4]), model(x[:4]))


def test_gated_batch_norms_keep_each_kinds_statistics_apart():
    x, labels = _lab(n=32)
    model = darknet19(2, input_norm="colour-gated")
    fit_input_norm(model, x, labels)
    turned = rotate_hue(x[16:], 40.0)  # shut by the gate
    batch = torch.cat([x[:16], turned])
    norm = model.body[0][1]
    with torch.no_grad():
        model.train()(batch)
        planes = model.input_norm(batch)
        first = model.body[0][0](planes)
    # in training each kind's batch-norm took the statistics of its own images only
    passed = model.input_norm.colour_passed(batch)
    assert passed[:16].sum() >= 12 and not passed[16:].any()
    for bn, rows in ((norm.open, first[passed]), (norm.shut, first[~passed])):
        torch.testing.assert_close(bn.running_mean, bn.momentum * rows.mean(dim=(0, 2, 3)))
    # in eval mode an image's answer does not depend on the rest of its batch, of either kind
    model.eval()
    with torch.no_grad():
        together = model(batch)
        torch.testing.assert_close(together[:1], model(batch[:1]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(together[-1:], model(batch[-1:]), atol=1e-5, rtol=1e-4)


def test_gated_network_trains_a_step_with_one_image_of_a_kind_and_refuses_darknet_weights():
    x, labels = _lab(n=24)
    model = darknet19(2, input_norm="colour-gated")
    fit_input_norm(model, x, labels)
    batch = torch.cat([x[:5], rotate_hue(x[5:6], 40.0)])  # one shut image in the batch
    loss = torch.nn.functional.cross_entropy(model.train()(batch), torch.as_tensor(labels[:6]))
    loss.backward()
    assert model.body[0][0].weight.grad.abs().sum() > 0
    assert sum(isinstance(m, GatedBatchNorm2d) for m in model.modules()) == 18
    with pytest.raises(BlastscanError, match="no Darknet .weights layout"):
        model.conv_layers()
