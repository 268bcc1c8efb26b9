"""Knowledge distillation: the loss, the teacher's checks, what the teacher sees."""

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
from blastscan.training import epoch

TINY = T.TrainConfig(
    epochs=3, batch_size=8, lr=0.01, image_size=32, val_fraction=0.2, test_size=0.25
)


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

    monkeypatch.setattr(epoch, "distillation_loss", spy)
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
