"""The reference AlexNet's layer arithmetic, free of any framework so configs can be checked without Keras.

Besides the feature map sizes it counts what a configuration costs: its parameters and the values one example
produces on the way through, from which `training_memory` estimates the bytes a training step needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConvBlock:
    """One convolution of the reference feature extractor, with its optional BatchNorm and max-pooling."""

    filters: int
    kernel: int
    strides: int = 1
    padding: str = "same"
    batch_norm: bool = False
    pool: bool = False


# The reference notebook's feature extractor; every variant shares it and differs in its dense head.
CONV_BLOCKS = (
    ConvBlock(96, 11, strides=4, padding="valid", batch_norm=True, pool=True),
    ConvBlock(256, 5, batch_norm=True, pool=True),
    ConvBlock(384, 3),
    ConvBlock(384, 3),
    ConvBlock(256, 3, batch_norm=True, pool=True),
)
POOL_SIZE, POOL_STRIDES = 3, 2
CHANNELS = 3  # RGB: what the resize layer hands to conv1
NUM_CLASSES = 10  # the classes of every dataset we ship (cifar10, imagenette, shapes)
# Training keeps four float32 numbers per parameter under every precision policy (mixed precision keeps float32
# variables): the weight, its gradient and Adam's two moments.
BYTES_PER_PARAMETER = 4 * 4


def _block_sides(input_size: int) -> Iterator[tuple[ConvBlock, int, int]]:
    """Yields each block with the side of its convolution's output and of its pooled output (equal without pool)."""
    size = input_size
    for block in CONV_BLOCKS:
        if block.padding == "valid":
            size = (size - block.kernel) // block.strides + 1
        else:
            size = -(-size // block.strides)
        conv_side = size
        if block.pool:
            size = (size - POOL_SIZE) // POOL_STRIDES + 1
        yield block, conv_side, size
        if size < 1:
            return


def feature_map_size(input_size: int) -> int:
    """Returns the side of the last feature map for a square input, or a value < 1 if the input is too small."""
    size = input_size
    for _, _, size in _block_sides(input_size):
        if size < 1:
            return size
    return size


def min_input_size() -> int:
    """Returns the smallest square input side the convolution stack accepts."""
    size = 1
    while feature_map_size(size) < 1:
        size += 1
    return size


def parameter_count(input_size: int, dense_units: Sequence[int], num_classes: int = NUM_CLASSES) -> int:
    """Counts the model's parameters as Keras' `count_params` does (BatchNorm's moving statistics included).

    Args:
        input_size: Side of the square input of the convolutions (at least `min_input_size()`).
        dense_units: Units of each hidden Dense layer.
        num_classes: Width of the softmax output.

    Returns:
        The number of weights: 58,324,746 for the reference alexnet8 at 227x227 and 10 classes.
    """
    count, depth = 0, CHANNELS
    for block in CONV_BLOCKS:
        count += block.kernel * block.kernel * depth * block.filters + block.filters  # kernel and bias
        if block.batch_norm:
            count += 4 * block.filters  # gamma, beta, moving mean, moving variance
        depth = block.filters
    width = feature_map_size(input_size) ** 2 * depth  # Flatten
    for units in [*dense_units, num_classes]:
        count += width * units + units
        width = units
    return count


def activation_count(input_size: int, dense_units: Sequence[int], num_classes: int = NUM_CLASSES) -> int:
    """Counts the values one example produces in a forward pass: the output of every layer from the resize on.

    Backpropagation keeps (about) one of these per layer output until the layer's gradient is computed, which is
    what makes the memory of a training step grow with the batch size.

    Args:
        input_size: Side of the square input of the convolutions (at least `min_input_size()`).
        dense_units: Units of each hidden Dense layer (each followed by Dropout).
        num_classes: Width of the softmax output.

    Returns:
        The number of values: 1,463,813 for alexnet8 at 227x227 and 10 classes.
    """
    count = input_size * input_size * CHANNELS  # the resized image
    for block, conv_side, pooled_side in _block_sides(input_size):
        maps = conv_side * conv_side * block.filters
        count += maps * (2 if block.batch_norm else 1)  # the convolution (ReLU in place) and its BatchNorm
        if block.pool:
            count += pooled_side * pooled_side * block.filters
    return count + 2 * sum(dense_units) + num_classes  # Dense and Dropout per hidden layer, then the softmax


def training_memory(
    input_size: int,
    dense_units: Sequence[int],
    batch_size: int,
    *,
    activation_bytes: int = 4,
    num_classes: int = NUM_CLASSES,
) -> int:
    """Estimates the bytes a training step needs: parameter state plus the activations of one batch.

    A lower estimate, not a measurement: it leaves out TensorFlow's workspace, the input pipeline and the Python
    process, so a model whose estimate exceeds the machine's memory certainly cannot train there.

    Args:
        input_size: Side of the square input of the convolutions (at least `min_input_size()`).
        dense_units: Units of each hidden Dense layer.
        batch_size: Examples per training step.
        activation_bytes: Bytes of one activation: 4 under float32, 2 under the mixed policies.
        num_classes: Width of the softmax output.

    Returns:
        `parameter_count * BYTES_PER_PARAMETER + batch_size * activation_count * activation_bytes`.
    """
    parameters = parameter_count(input_size, dense_units, num_classes)
    activations = activation_count(input_size, dense_units, num_classes)
    return parameters * BYTES_PER_PARAMETER + batch_size * activations * activation_bytes
