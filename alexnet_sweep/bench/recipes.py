"""What the bench measures: a variant is a recipe (its data and its compiled model from a job config)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf
from omegaconf import DictConfig

from alexnet_sweep.data import load_splits
from alexnet_sweep.model import compiled_model
from alexnet_sweep.optimizer import build_optimizer
from alexnet_sweep.precision import POLICIES

ENDLESS_EPOCHS = 1_000_000  # our train stream, epoch after epoch; tf.data builds epochs lazily


@dataclass(frozen=True)
class Pipelines:
    """What a variant trains and tests on."""

    train: tf.data.Dataset  # endless stream of training batches (input, label), epoch after epoch
    test: tf.data.Dataset
    train_examples: int
    num_classes: int
    image_shape: tuple[int | None, int | None, int]


@dataclass(frozen=True)
class Recipe:
    """How one variant gets its data and its compiled model from a job config."""

    name: str
    precision: str
    pipelines: Callable[[DictConfig], Pipelines]
    model: Callable[[DictConfig, Pipelines], keras.Model]


def our_pipelines(cfg: DictConfig) -> Pipelines:
    """The job's own pipelines (`alexnet_sweep.data.load_splits`): uint8 images, cached, shuffled per epoch."""
    splits = load_splits(cfg.dataset, batch_size=cfg.batch_size, seed=cfg.seed, image_size=cfg.model.input_size)
    return Pipelines(
        train=splits.train_epochs(0, ENDLESS_EPOCHS),
        test=splits.test,
        train_examples=splits.sizes["train_split"],
        num_classes=len(splits.class_names),
        image_shape=splits.image_shape,
    )


def our_model(cfg: DictConfig, pipelines: Pipelines) -> keras.Model:
    """The job's model under `cfg.precision`, compiled as `alexnet_sweep.train.run` compiles it."""
    return compiled_model(
        cfg, build_optimizer(cfg.optimizer), image_shape=pipelines.image_shape, num_classes=pipelines.num_classes
    )


def recipes(auto_policy: str, has_gpu: bool) -> tuple[list[Recipe], list[dict[str, str]]]:
    """Returns the variants of our path to measure and the precisions skipped, with why.

    Args:
        auto_policy: What `precision=auto` resolves to on this machine: measured once, as `auto`, first.
        has_gpu: Whether TensorFlow sees a GPU (without one, CPUs emulate float16, slowly).

    Returns:
        The recipes, `auto` first, and `{"precision", "reason"}` for each policy not measured.
    """
    ours = [Recipe(f"ours auto ({auto_policy})", "auto", our_pipelines, our_model)]
    skipped = []
    for policy in POLICIES:
        if policy == auto_policy:
            skipped.append({"precision": policy, "reason": "measured as auto"})
        elif policy == "mixed_float16" and not has_gpu:
            skipped.append({"precision": policy, "reason": "no GPU: CPUs emulate float16, slowly"})
        else:
            ours.append(Recipe(f"ours {policy}", policy, our_pipelines, our_model))
    return ours, skipped
