import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from blastscan import training as T
from blastscan.errors import BlastscanError
from blastscan.models import darknet19

TINY = T.TrainConfig(
    epochs=3, batch_size=8, lr=0.01, image_size=32, val_fraction=0.2, test_size=0.25
)


def test_tiny_overfit():
    """The network can fit a handful of images: gradients, BN and the head are wired right."""
    torch.manual_seed(0)
    model = darknet19(4)
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert (model(x).argmax(1) == y).all()


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


def test_run_directory_is_complete(image_folder: Path, tmp_path: Path):
    result = T.train(
        image_folder, tmp_path / "run", TINY, cache_dir=tmp_path / "cache", show_progress=False
    )
    run = result.run_dir
    for name in (
        "config.json",
        "manifest.csv",
        "split.json",
        "history.csv",
        "history.json",
        "metrics.json",
        "train.log",
        "figures/accuracy.png",
        "figures/loss.png",
        "checkpoints/last.safetensors",
        "checkpoints/final.safetensors",
        "checkpoints/best.json",
        "bundle/bundle.json",
        "bundle/MODEL_CARD.md",
    ):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.sum(metrics["confusion_matrix"]) == metrics["n_test"] > 0
    split = json.loads((run / "split.json").read_text())
    assert set(split["train"]).isdisjoint(split["test"]) and set(split["val"]).isdisjoint(
        split["test"]
    )
    assert not list(image_folder.rglob("*.npy")), "nothing may be written into the dataset"
    meta = json.loads((run / "checkpoints" / "final.json").read_text())
    assert meta["classes"] == ["Benign", "Early", "Pre", "Pro"] and meta["image_size"] == 32
    with pytest.raises(BlastscanError, match="--resume"):
        T.train(image_folder, run, TINY, cache_dir=tmp_path / "cache", show_progress=False)


def test_resume_after_interruption_gives_the_same_result(
    image_folder: Path, tmp_path: Path, monkeypatch
):
    config = replace(TINY, schedule="onecycle", color_jitter=0.2)
    T.train(image_folder, tmp_path / "whole", config, cache_dir=tmp_path / "c", show_progress=False)

    real_epoch, calls = T.train_one_epoch, {"n": 0}

    def crash_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(T, "train_one_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        T.train(
            image_folder, tmp_path / "cut", config, cache_dir=tmp_path / "c", show_progress=False
        )
    assert json.loads((tmp_path / "cut" / "checkpoints" / "last.json").read_text())["epoch"] == 0
    monkeypatch.setattr(T, "train_one_epoch", real_epoch)
    T.train(
        image_folder,
        tmp_path / "cut",
        config,
        resume=True,
        cache_dir=tmp_path / "c",
        show_progress=False,
    )

    a = load_file(str(tmp_path / "whole" / "checkpoints" / "final.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "final.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_resumed_run_keeps_the_split_it_started_with(
    image_folder: Path, tmp_path: Path, monkeypatch
):
    run = tmp_path / "run"
    config = replace(TINY, epochs=1)
    T.train(image_folder, run, config, cache_dir=tmp_path / "c", show_progress=False)
    started_with = (run / "split.json").read_text()

    def split_differently(*args, **kwargs):
        raise AssertionError("a resumed run must not split the data again")

    monkeypatch.setattr(T, "make_split", split_differently)
    for final in (run / "checkpoints").glob("final.*"):  # re-finalise, as docs/results.md does
        final.unlink()
    T.train(image_folder, run, config, resume=True, cache_dir=tmp_path / "c", show_progress=False)
    assert (run / "checkpoints" / "final.safetensors").is_file()
    assert (run / "split.json").read_text() == started_with


def test_outer_folds_partition_the_data():
    labels = np.repeat([0, 1, 2], 20)
    groups = np.arange(60) // 2
    tests = [T.outer_fold_split(labels, groups, 4, k, seed=0)[1] for k in range(4)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(60))
    with pytest.raises(BlastscanError):
        T.outer_fold_split(labels, groups, 4, 4, seed=0)


@pytest.mark.slow
def test_end_to_end_on_a_real_subset(real_data: Path, tmp_path: Path):
    config = replace(
        T.recipe_config("fast"),
        epochs=2,
        image_size=64,
        batch_size=16,
        max_per_class=20,
        val_fraction=0.0,
    )
    result = T.train(
        real_data, tmp_path / "run", config, cache_dir=tmp_path / "c", show_progress=False
    )
    assert result.test_metrics["n_test"] == 24
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0
    assert len(result.history) == 2 and result.history[-1]["train_loss"] < 10


def _bn_stats(model) -> list[torch.Tensor]:
    return [
        torch.cat([m.running_mean, m.running_var])
        for m in model.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]


def test_population_bn_statistics_do_not_depend_on_the_order_of_the_images():
    """Images are stored class by class: one-class batches gave deeper layers wrong statistics."""
    gen = np.random.default_rng(0)
    dark = gen.integers(20, 90, (48, 32, 32, 3), dtype=np.uint8)
    bright = gen.integers(160, 240, (48, 32, 32, 3), dtype=np.uint8)
    sorted_images = np.concatenate([dark, bright])  # as a class-sorted training set is
    torch.manual_seed(0)
    model = darknet19(2)
    # reference: the statistics of all 96 images in one batch
    T.recompute_bn_statistics(model, sorted_images, 96, torch.device("cpu"))
    reference = _bn_stats(model)
    T.recompute_bn_statistics(model, sorted_images, 16, torch.device("cpu"), seed=1)
    shuffled = _bn_stats(model)
    # relative error of the worst layer: 0.11 shuffled, 0.43 in one-class batches
    worst = max(
        ((got - ref).abs().mean() / ref.abs().mean()).item()
        for got, ref in zip(shuffled, reference, strict=True)
    )
    assert worst < 0.2


def test_a_final_checkpoint_with_class_sorted_statistics_is_flagged(tmp_path: Path, caplog):
    model = darknet19(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    meta = {"classes": ["a", "b"], "epoch": 0, "config": {}}
    old = tmp_path / "old.safetensors"
    T.save_checkpoint(
        old, model, optimizer, {**meta, "bn_statistics": T.CLASS_SORTED_BN_STATISTICS}
    )
    new = tmp_path / "new.safetensors"
    T.save_checkpoint(new, model, optimizer, {**meta, "bn_statistics": T.SHUFFLED_BN_STATISTICS})
    with caplog.at_level("WARNING", logger="blastscan.train"):
        T.load_trained_model(new)
        assert not caplog.records
        T.load_trained_model(old)
    assert "class-sorted" in caplog.text and "--resume" in caplog.text


def _final_checkpoint(path: Path, statistics: str, config: dict) -> Path:
    model = darknet19(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    meta = {"classes": ["a", "b"], "epoch": 0, "config": config, "bn_statistics": statistics}
    T.save_checkpoint(path, model, optimizer, meta)
    return path


@pytest.mark.parametrize(
    ("statistics", "config", "flagged"),
    [
        ("SHUFFLED_BN_STATISTICS", {"brighten": 0.45, "darken": 0.45}, True),
        ("SHUFFLED_BN_STATISTICS", {"color_jitter": 0.3}, True),
        ("SHUFFLED_BN_STATISTICS", {"brighten": 0.0}, False),  # flips do not move the statistics
        ("AUGMENTED_BN_STATISTICS", {"brighten": 0.45, "darken": 0.45}, False),
    ],
)
def test_statistics_of_unaugmented_images_are_flagged_only_when_training_relit_them(
    tmp_path: Path, caplog, statistics: str, config: dict, flagged: bool
):
    path = _final_checkpoint(tmp_path / "final.safetensors", getattr(T, statistics), config)
    with caplog.at_level("WARNING", logger="blastscan.train"):
        T.load_trained_model(path)
    assert ("un-augmented" in caplog.text) is flagged


def test_population_statistics_are_taken_over_the_images_as_training_augmented_them():
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    model = darknet19(2)
    T.recompute_bn_statistics(model, images, 16, torch.device("cpu"))
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    plain = first.running_mean.clone()
    T.recompute_bn_statistics(model, images, 16, torch.device("cpu"), augment=lambda x: x * 0.5)
    # the first convolution is linear and has no bias: half the light, half the mean
    torch.testing.assert_close(first.running_mean, plain * 0.5, rtol=1e-4, atol=1e-6)


def test_distillation_loss_is_zero_only_where_the_student_agrees():
    teacher = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 3.0, 0.0, 0.0]])
    assert T.distillation_loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-6)
    # A constant shift of the logits is the same distribution.
    assert T.distillation_loss(teacher + 5.0, teacher).item() == pytest.approx(0.0, abs=1e-5)
    other = torch.tensor([[0.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    t = T.DISTILL_TEMPERATURE
    p = F.softmax(teacher / t, 1)
    expected = (p * (p.log() - F.log_softmax(other / t, 1))).sum(1).mean() * t * t
    assert T.distillation_loss(other, teacher).item() == pytest.approx(expected.item(), rel=1e-5)
    assert expected.item() > 0.1


def test_a_teacher_of_weight_zero_changes_nothing(image_folder: Path, tmp_path: Path):
    """The teacher's copy of the generator leaves the run's own draws as they were."""
    config = replace(TINY, epochs=2, brighten=0.3, darken=0.3)
    cache = tmp_path / "c"
    T.train(image_folder, tmp_path / "teacher", config, cache_dir=cache, show_progress=False)
    T.train(image_folder, tmp_path / "alone", config, cache_dir=cache, show_progress=False)
    taught = replace(config, teacher=str(tmp_path / "teacher"), teacher_weight=0.0)
    T.train(image_folder, tmp_path / "taught", taught, cache_dir=cache, show_progress=False)
    a = load_file(str(tmp_path / "alone" / "checkpoints" / "final.safetensors"))
    b = load_file(str(tmp_path / "taught" / "checkpoints" / "final.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    saved = json.loads((tmp_path / "taught" / "config.json").read_text())
    assert saved["teacher"] == str(tmp_path / "teacher")


def test_a_teacher_given_as_a_checkpoint_file_answers_every_batch(
    image_folder: Path, tmp_path: Path, monkeypatch
):
    config = replace(TINY, epochs=1, brighten=0.3, darken=0.3)
    cache = tmp_path / "c"
    T.train(image_folder, tmp_path / "teacher", config, cache_dir=cache, show_progress=False)
    seen = []
    real = T.distillation_loss

    def spy(student, teacher, *args):
        seen.append((student.shape, teacher.shape))
        return real(student, teacher, *args)

    monkeypatch.setattr(T, "distillation_loss", spy)
    taught = replace(
        config, teacher=str(tmp_path / "teacher" / "checkpoints" / "final.safetensors")
    )
    T.train(image_folder, tmp_path / "taught", taught, cache_dir=cache, show_progress=False)
    assert seen and all(s == t and s[1] == 4 for s, t in seen)


def test_a_teacher_that_trained_on_held_out_images_is_refused(image_folder: Path, tmp_path: Path):
    cache = tmp_path / "c"
    T.train(
        image_folder,
        tmp_path / "teacher",
        replace(TINY, epochs=1, seed=1),
        cache_dir=cache,
        show_progress=False,
    )
    other_split = replace(TINY, epochs=1, seed=0, teacher=str(tmp_path / "teacher"))
    with pytest.raises(BlastscanError, match="held out|holds out"):
        T.train(
            image_folder, tmp_path / "taught", other_split, cache_dir=cache, show_progress=False
        )
    split = tmp_path / "teacher" / "split.json"
    split.unlink()
    with pytest.raises(BlastscanError, match="split.json"):
        T.train(
            image_folder,
            tmp_path / "taught2",
            replace(other_split, seed=1),
            cache_dir=cache,
            show_progress=False,
        )


class _Recorder(torch.nn.Module):
    """A 4-class linear model on pooled colour that keeps every input it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.linear(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("relit", [False, True])
def test_the_teacher_sees_the_students_images_unrelit(relit: bool):
    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(12) % 4
    config = replace(TINY, batch_size=4, image_size=16, brighten=0.4 * relit, darken=0.4 * relit)
    student, teacher = _Recorder(), _Recorder()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01)
    T.train_one_epoch(
        student, optimizer, images, labels, config, 0, torch.device("cpu"), 3, teacher=teacher
    )
    assert len(student.inputs) == len(teacher.inputs) == 3
    for seen, taught in zip(student.inputs, teacher.inputs, strict=True):
        if relit:  # the same flips and turns, then a lamp: each image a multiple of the other
            assert not torch.equal(seen, taught)
            for a, b in zip(seen, taught, strict=True):
                unclipped = (a < 0.99) & (b > 0.05)
                lamp = (a[unclipped] / b[unclipped]).median()
                assert torch.allclose(b[unclipped] * lamp, a[unclipped], atol=0.01)
        else:
            torch.testing.assert_close(seen, taught, rtol=0, atol=0)


def _run_with_checkpoints(root: Path, names: tuple[str, ...], val_fraction: float) -> Path:
    """A run folder whose checkpoints/ holds empty files of these names (never loaded here)."""
    (root / "checkpoints").mkdir(parents=True)
    for name in names:
        (root / "checkpoints" / f"{name}.safetensors").touch()
    (root / "config.json").write_text(json.dumps({"val_fraction": val_fraction}))
    return root


def test_a_checkpoint_the_run_lacks_names_the_ones_it_has(tmp_path: Path):
    run = _run_with_checkpoints(tmp_path / "run", ("final", "last"), 0.1)
    with pytest.raises(BlastscanError) as info:
        T.load_trained_model(run, "foo")
    message = str(info.value)
    assert "has checkpoints final, last, no foo" in message and "--checkpoint" in message
    assert "no checkpoint there" not in message and "--model" not in message


def test_best_of_a_run_without_validation_says_why_it_is_missing(tmp_path: Path):
    run = _run_with_checkpoints(tmp_path / "run", ("final", "last"), 0.0)
    with pytest.raises(BlastscanError, match=r"no best checkpoint \(trained with --val-fraction 0"):
        T.load_trained_model(run, "best")


def test_a_folder_that_is_not_a_run_names_no_option_unless_the_caller_has_it(tmp_path: Path):
    with pytest.raises(BlastscanError) as info:
        T.load_trained_model(tmp_path, "final")
    assert str(info.value).endswith("no checkpoint there; pass a training run directory")
    with pytest.raises(BlastscanError, match=r"pass a training run directory \(--model\)"):
        T.load_trained_model(tmp_path / "nope", option="--model")


def test_a_history_with_nan_round_trips_through_json_and_plots(tmp_path: Path):
    history = [
        {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": np.nan,
         "val_accuracy": np.nan, "seconds": 1.0},
    ]  # fmt: skip
    T.write_history(tmp_path, history)
    text = (tmp_path / "history.json").read_text()
    assert "NaN" not in text and json.loads(text)[0]["val_loss"] is None
    model = darknet19(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "last.safetensors"
    T.save_checkpoint(
        path, model, optimizer, {"classes": ["a", "b"], "epoch": 0, "history": history}
    )
    resumed = T.load_checkpoint(path, model)["history"]
    assert np.isnan(resumed[0]["val_loss"]) and resumed[0]["train_loss"] == 1.0
    figures = T.plot_training_curves(json.loads(text), tmp_path)
    assert figures["loss"].stat().st_size > 0


def test_robust_recipe_is_the_fast_one_under_every_lamp_for_160_epochs():
    fast, robust = T.recipe_config("fast"), T.recipe_config("robust")
    assert (robust.epochs, robust.brighten, robust.darken) == (160, 0.45, 0.45)
    assert replace(robust, epochs=fast.epochs, brighten=0.0, darken=0.0, recipe="fast") == fast
    assert T.recipe_config("robust", epochs=3, darken=None).epochs == 3  # an option given wins
    with pytest.raises(BlastscanError, match="robust"):
        T.recipe_config("sturdy")
