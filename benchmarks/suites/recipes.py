"""Suite `recipes`: what a training recipe costs per epoch against the fast recipe's.

A recipe's wall time is its epochs times the cost of one step: its augmentation of the batch
(`training.epoch.augmentation`), the forward pass through its input layer and DarkNet-19, the
backward pass and the SGD update, at its batch and image size. Each recipe's step runs
interleaved with the fast recipe's, so the ratio holds on a loaded machine; multiplied by the
epochs ratio it predicts the recipe's training time from the fast recipe's measured one.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from benchkit import Context, Part, Result, interleave, paired_speedup


def add_arguments(parser) -> None:
    group = parser.add_argument_group("recipes suite")
    group.add_argument(
        "--recipes",
        nargs="+",
        default=["shift"],
        metavar="RECIPE",
        help="cost: the recipes timed against fast (default: shift)",
    )
    group.add_argument("--recipe-rounds", type=int, default=6, help="cost: rounds per recipe")


def training_step(recipe: str):
    """One training step of `recipe` on a fixed random batch, as `train_one_epoch` takes it."""
    from blastscan.models import darknet19
    from blastscan.models.input_norm import fit_input_norm
    from blastscan.training import recipe_config
    from blastscan.training.epoch import augmentation

    config = recipe_config(recipe)
    torch.manual_seed(0)
    model = darknet19(4, input_norm=config.input_norm).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    augment = augmentation(config, gen)
    size, batch = config.image_size, config.batch_size
    images = torch.rand(batch, 3, size, size, generator=gen)
    labels = torch.arange(batch) % 4
    # a colour gate fitted on the un-augmented batch passes what keep_lab spares and shuts
    # the rest, so a gated network's step runs both of its sub-batches, as in training
    fit_input_norm(model, images, labels)

    def step() -> None:
        x = augment(images.clone())
        loss = F.cross_entropy(model(x), labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()

    return config, step


def bench_cost(ctx: Context) -> list[Result]:
    """Seconds per step of each recipe and of fast, and the predicted training-time ratio."""
    fast_config, fast_step = training_step("fast")
    results = []
    for recipe in ctx.args.recipes:
        config, step = training_step(recipe)
        ctx.log(f"  {recipe} vs fast: batch {config.batch_size}, {config.image_size} px")
        rounds = interleave(
            {recipe: step, "fast": fast_step}, warmup=2, rounds=ctx.args.recipe_rounds, log=ctx.log
        )
        # steps per epoch scale as 1 / batch size: per image, not per step
        per_image = config.batch_size / fast_config.batch_size
        speed = paired_speedup(rounds[recipe], rounds["fast"], per_call=per_image)
        epochs = config.epochs / fast_config.epochs
        results.append(
            Result(
                name=f"recipe-{recipe}",
                measured=f"one training step of --recipe {recipe} (augmentation included)",
                value=statistics.median(rounds[recipe]),
                unit="s/step",
                baseline="one training step of --recipe fast",
                baseline_value=statistics.median(rounds["fast"]),
                ratio_vs_baseline=speed,
                samples=rounds[recipe],
                notes=f"predicted training time {epochs / speed:.2f}x fast's "
                f"({config.epochs} / {fast_config.epochs} epochs at {1 / speed:.2f}x the cost "
                "per image)",
                extra={
                    "epochs": config.epochs,
                    "fast_epochs": fast_config.epochs,
                    "cost_per_image_vs_fast": 1 / speed,
                    "predicted_time_vs_fast": epochs / speed,
                    "fast_samples": rounds["fast"],
                },
            )
        )
    return results


PARTS = [
    Part("cost", "seconds per training step of a recipe vs fast, and its predicted time ratio",
         bench_cost),
]  # fmt: skip
