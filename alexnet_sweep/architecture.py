"""The reference AlexNet's layer arithmetic, free of any framework so configs can be checked without Keras."""

from __future__ import annotations

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


def feature_map_size(input_size: int) -> int:
    """Returns the side of the last feature map for a square input, or a value < 1 if the input is too small."""
    size = input_size
    for block in CONV_BLOCKS:
        if block.padding == "valid":
            size = (size - block.kernel) // block.strides + 1
        else:
            size = -(-size // block.strides)
        if block.pool:
            size = (size - POOL_SIZE) // POOL_STRIDES + 1
        if size < 1:
            return size
    return size


def min_input_size() -> int:
    """Returns the smallest square input side the convolution stack accepts."""
    size = 1
    while feature_map_size(size) < 1:
        size += 1
    return size
