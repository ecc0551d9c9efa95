"""Build the reference AlexNet (8 layers) and its variants as Keras models from the `model` config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
from keras import layers

from alexnet_sweep.architecture import CONV_BLOCKS, POOL_SIZE, POOL_STRIDES
from alexnet_sweep.precision import apply_precision

if TYPE_CHECKING:
    from omegaconf import DictConfig


def build_model(
    *,
    name: str,
    input_size: int,
    dense_units: Sequence[int],
    dropout: float,
    bn_momentum: float,
    image_shape: tuple[int | None, int | None, int],
    num_classes: int,
) -> keras.Sequential:
    """Builds an AlexNet variant that takes raw uint8 images.

    Scaling to [0, 1] and the bilinear resize to `input_size` are the model's first layers, so they run on the
    accelerator next to the convolutions and the input pipeline only moves compact uint8 images.

    Args:
        name: Model name shown in the Keras summary, e.g. `alexnet8`.
        input_size: Side of the square image the convolutions see (227 in the reference).
        dense_units: Units of each Dense+Dropout layer of the head: two for alexnet8, three for alexnet9.
        dropout: Dropout rate after each hidden Dense layer.
        bn_momentum: Momentum of the BatchNormalization moving statistics (Keras default 0.99).
        image_shape: Shape of one stored image, (height, width, channels); None for variable sizes.
        num_classes: Width of the softmax output.

    Returns:
        An uncompiled `keras.Sequential`.
    """
    model_layers: list[layers.Layer] = [
        layers.Input(shape=image_shape, dtype="uint8", name="image"),
        layers.Rescaling(1.0 / 255, name="scale"),
        layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize"),
    ]
    for index, block in enumerate(CONV_BLOCKS, start=1):
        model_layers.append(
            layers.Conv2D(
                block.filters,
                block.kernel,
                strides=block.strides,
                padding=block.padding,
                activation="relu",
                name=f"conv{index}",
            )
        )
        if block.batch_norm:
            model_layers.append(layers.BatchNormalization(momentum=bn_momentum, name=f"bn{index}"))
        if block.pool:
            model_layers.append(layers.MaxPooling2D(POOL_SIZE, POOL_STRIDES, name=f"pool{index}"))
    model_layers.append(layers.Flatten(name="flatten"))
    for index, units in enumerate(dense_units, start=1):
        model_layers.append(layers.Dense(units, activation="relu", name=f"dense{index}"))
        model_layers.append(layers.Dropout(dropout, name=f"dropout{index}"))
    # float32 output keeps the softmax numerically safe under any mixed-precision policy.
    model_layers.append(layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions"))
    return keras.Sequential(model_layers, name=name)


def job_model(
    cfg: DictConfig, *, image_shape: tuple[int | None, int | None, int], num_classes: int
) -> keras.Sequential:
    """Builds the job's uncompiled model under `cfg.precision` (which this sets as Keras' global dtype policy)."""
    apply_precision(cfg.precision)
    return build_model(
        name=cfg.model.name,
        input_size=cfg.model.input_size,
        dense_units=list(cfg.model.dense_units),
        dropout=cfg.model.dropout,
        bn_momentum=cfg.model.bn_momentum,
        image_shape=image_shape,
        num_classes=num_classes,
    )


def compiled_model(
    cfg: DictConfig,
    optimizer: keras.optimizers.Optimizer,
    *,
    image_shape: tuple[int | None, int | None, int],
    num_classes: int,
) -> keras.Model:
    """Builds the job's model (`job_model`) and compiles it (`compile_model`).

    Call it after `keras.backend.clear_session`, which resets Keras' dtype policy to float32.
    """
    return compile_model(job_model(cfg, image_shape=image_shape, num_classes=num_classes), cfg, optimizer)


def compile_model(model: keras.Model, cfg: DictConfig, optimizer: keras.optimizers.Optimizer) -> keras.Model:
    """Compiles `model` with the job's optimizer, loss, metrics and XLA setting; returns it."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),  # categorical cross-entropy on integer labels
        metrics=["accuracy"],
        jit_compile=cfg.jit_compile,  # "auto": Keras' choice (XLA on GPUs, not on CPU-only machines)
    )
    return model
