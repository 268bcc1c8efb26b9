"""Recipes, the learning-rate schedules and progressive resizing."""

from dataclasses import replace

import pytest

from blastscan import training as T
from blastscan.errors import BlastscanError


def test_schedules():
    c = T.TrainConfig(lr=0.01, lr_drop_period=10, lr_drop_factor=0.1)
    assert T.learning_rate(c, 0, 5) == pytest.approx(0.01)
    assert T.learning_rate(c, 10 * 5, 5) == pytest.approx(0.001)
    assert T.learning_rate(c, 25 * 5, 5) == pytest.approx(0.0001)
    oc = replace(c, schedule="onecycle", epochs=10, lr=0.05)
    rates = [T.learning_rate(oc, s, 10) for s in range(100)]
    assert max(rates) == pytest.approx(0.05, rel=1e-3) and rates[0] < 0.01 and rates[-1] < 1e-3
    assert T.image_size_at(replace(c, epochs=9, image_size=224, start_image_size=128), 0) == 128
    assert T.image_size_at(replace(c, epochs=9, image_size=224, start_image_size=128), 8) == 224


def test_robust_recipe_is_the_fast_one_under_every_lamp_for_160_epochs():
    fast, robust = T.recipe_config("fast"), T.recipe_config("robust")
    assert (robust.epochs, robust.brighten, robust.darken) == (160, 0.45, 0.45)
    assert replace(robust, epochs=fast.epochs, brighten=0.0, darken=0.0, recipe="fast") == fast
    assert T.recipe_config("robust", epochs=3, darken=None).epochs == 3  # an option given wins
    with pytest.raises(BlastscanError, match="robust"):
        T.recipe_config("sturdy")


def test_shift_recipe_is_fast_blind_to_hue_with_every_degradation_on():
    fast, shift = T.recipe_config("fast"), T.recipe_config("shift")
    assert (shift.image_size, shift.batch_size, shift.lr) == (
        fast.image_size, fast.batch_size, fast.lr
    )  # fmt: skip
    assert shift.input_norm == "value-chroma" and fast.input_norm == "none"
    degradations = ("stain_jitter", "saturation", "blur", "noise", "jpeg", "artefacts", "brighten")
    assert all(getattr(shift, k) > 0 for k in degradations)
    assert set(T.RELIGHTING) >= {*degradations, "hue"}
    # the layer makes hue turns a no-op, so the recipe spends no augmentation on them
    assert shift.hue == 0
