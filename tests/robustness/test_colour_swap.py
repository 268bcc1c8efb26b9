"""The colour swap: class colours, recolouring at 8 bits, a colour reader told from a shape reader."""

import json

import numpy as np
import pytest

from blastscan.errors import BlastscanError
from blastscan.robustness import colour_swap as S


def _coloured_shapes() -> tuple[np.ndarray, np.ndarray]:
    """Three classes, each with a colour of its own and a dark square in a quadrant of its own."""
    rng = np.random.default_rng(0)
    base = np.array([[0.35, 0.5, 0.6], [0.6, 0.4, 0.5], [0.5, 0.6, 0.35]])
    images, labels = [], []
    for k in range(3):
        for _ in range(5):
            x = base[k] + rng.normal(0, 0.02, (16, 16, 3))
            r, c = divmod(k, 2)
            x[8 * r : 8 * r + 8, 8 * c : 8 * c + 8] -= 0.2
            images.append(np.rint(x * 255).astype(np.uint8))
            labels.append(k)
    return np.stack(images), np.array(labels)


def _by_colour(colours: np.ndarray):
    """Predicts the class whose mean colour is nearest the image's: a pure colour reader."""

    def predict(images):
        means = images.reshape(len(images), -1, 3).mean(1) / 255
        pred = np.linalg.norm(means[:, None] - colours[None, :, 0], axis=2).argmin(1)
        return pred, np.eye(3)[pred]

    return predict


def _by_shape(images):
    """Predicts from where the dark square is: blind to colour."""
    grey = images.astype(float).mean(3)
    quadrants = np.stack([grey[:, :8, :8], grey[:, :8, 8:], grey[:, 8:, :8]], 1).mean((2, 3))
    pred = quadrants.argmin(1)
    return pred, np.eye(3)[pred]


def test_recolour_moves_each_channel_to_the_colour_at_8_bits():
    images, labels = _coloured_shapes()
    colours = S.class_colours(images, labels, 3)
    assert colours.shape == (3, 2, 3)
    moved = S.recolour(images[labels == 0], colours[2])
    assert moved.dtype == np.uint8
    np.testing.assert_allclose(moved.reshape(-1, 3).mean(0) / 255, colours[2, 0], atol=2e-3)
    with pytest.raises(BlastscanError, match="class"):
        S.class_colours(images[labels < 2], labels[labels < 2], 3)


def test_colour_swap_tells_a_colour_reader_from_a_shape_reader():
    images, labels = _coloured_shapes()
    colours = S.class_colours(images, labels, 3)
    reader = S.evaluate_colour_swap(_by_colour(colours), images, labels, colours, chunk=4)
    json.dumps(reader)
    values = np.array([[a["value"] for a in row] for row in reader["matrix"]])
    np.testing.assert_array_equal(values, np.eye(3))  # right only in its own class's colour
    assert reader["own_colour"]["value"] == 1 and reader["other_colour"]["value"] == 0
    assert reader["follows_the_colour"]["value"] == 1 and reader["other_colour"]["n"] == 30
    blind = S.evaluate_colour_swap(_by_shape, images, labels, colours)
    assert blind["other_colour"]["value"] == 1 and blind["follows_the_colour"]["value"] == 0
    table = S.colour_swap_markdown(reader, ["a", "b", "c"])
    assert "| a | 100.0% | 0.0% | 0.0% |" in table and "100.0% of the answers" in table
