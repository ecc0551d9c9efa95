"""Precise BatchNorm: population statistics of a fixed sample of training images instead of the moving averages.

Keras' BatchNormalization keeps an exponential moving average of its batch statistics, which after few steps still
remembers the early, untrained network: evaluated with it, a well-trained model can score at chance. Precise
BatchNorm (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; fvcore's `update_bn_stats`, detectron2's
PreciseBN) replaces each layer's `moving_mean` and `moving_variance`, before evaluating, with the mean and
variance of its inputs over a fixed set of training images, computed with the current, frozen weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

Moments = Callable[[tf.Tensor], list[tuple[tf.Tensor, tf.Tensor]]]


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Returns the model's BatchNormalization layers (its own layers, not those inside nested models)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def moments_function(model: keras.Model, layers: list[keras.layers.BatchNormalization]) -> Moments:
    """Builds a function from a batch of model inputs to each BatchNorm layer's per-channel input moments.

    It calls a sub-model from `model.inputs` to the inputs of `layers` in training mode, so each earlier BatchNorm
    layer normalizes with its batch's statistics, as while training (and as fvcore does). That call also moves the
    earlier layers' moving statistics and draws from the seed generators of any random layer before a BatchNorm
    layer; `recompute` puts those variables back.

    Args:
        model: A built functional or Sequential model.
        layers: BatchNormalization layers of `model`.

    Returns:
        A tf.function: images -> one (mean, variance) pair per layer, float32 vectors over the layer's channel
        axis, computed over the batch (and every other axis), in float32 under any precision policy.
    """
    collect = keras.Model(model.inputs, [layer.input for layer in layers])
    [spec] = model.inputs
    signature = [tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)]  # one trace, also for a smaller last batch

    @tf.function(input_signature=signature)
    def moments(images: tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
        outputs = collect([images], training=True)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        result = []
        for layer, output in zip(layers, outputs, strict=True):
            values = tf.cast(output, tf.float32)
            channel_axis = layer.axis % values.shape.rank
            axes = [axis for axis in range(values.shape.rank) if axis != channel_axis]
            result.append(tf.nn.moments(values, axes))
        return result

    return moments


def recompute(model: keras.Model, batches: tf.data.Dataset, moments: Moments | None = None) -> int:
    """Sets every BatchNorm layer's moving statistics to the population statistics of its inputs over `batches`.

    The population mean is the average of the batch means, weighted by batch size; the population variance is
    the average of the batches' E[x^2] minus the square of that mean: the (biased) variance over all the images,
    as fvcore's estimator gives and Keras' BatchNorm uses. Nothing else changes: the weights are only read, and
    every other non-trainable variable (seed generator states) is restored.

    Args:
        model: A built functional or Sequential model.
        batches: Batches of model inputs, or (inputs, labels, ...) tuples.
        moments: `moments_function(model, batch_norm_layers(model))`, to reuse its trace; built if None.

    Returns:
        The number of images used (0 if `batches` is empty or the model has no BatchNorm layer: nothing changes).
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    moments = moments or moments_function(model, layers)
    before = [(variable, variable.numpy()) for variable in model.non_trainable_variables]
    images = 0
    means: list[list[np.ndarray]] = [[] for _ in layers]
    variances: list[list[np.ndarray]] = [[] for _ in layers]
    weights = []
    for batch in batches:
        inputs = batch[0] if isinstance(batch, tuple | list) else batch
        for index, (mean, variance) in enumerate(moments(inputs)):
            means[index].append(mean.numpy().astype(np.float64))
            variances[index].append(variance.numpy().astype(np.float64))
        weights.append(int(inputs.shape[0]))
        images += weights[-1]
    for variable, value in before:
        variable.assign(value)
    if images == 0:
        return 0
    share = np.array(weights, dtype=np.float64)[:, None] / images
    for layer, batch_means, batch_variances in zip(layers, means, variances, strict=True):
        mean = np.sum(share * np.stack(batch_means), axis=0)
        # Average E[x^2] of the batches minus mean^2, written as the within-batch variances plus the spread of the
        # batch means around the mean: the same number, without the cancellation of two large terms.
        variance = np.sum(share * (np.stack(batch_variances) + (np.stack(batch_means) - mean) ** 2), axis=0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return images


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recomputes the BatchNorm statistics (`recompute`) at the start of every evaluation.

    Keras' `fit` runs each validation through `evaluate` with its own callbacks, which calls `on_test_begin`: given
    to `fit`, this recomputes before every validation; give it to `evaluate` too for the test. When the optimizer
    has taken no step since the last recompute (the test right after `fit`), the statistics are kept as they are.
    """

    def __init__(self, batches: tf.data.Dataset, asked: int, moments: Moments | None = None) -> None:
        """Recomputes on `batches`, the first `asked` training images (fewer if the split is smaller).

        `moments` is `moments_function` of the model the callback will see, e.g. one traced in an earlier job of a
        reused model (`reuse.moments`); built at the first evaluation if None.
        """
        super().__init__()
        self.batches = batches
        self.asked = asked
        self._moments = moments
        self._built_for: keras.Model | None = None  # the model this callback built `_moments` for
        self._first = True
        self._done_at: int | None = None

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy()) if self.model.optimizer is not None else None
        if step is not None and step == self._done_at:
            return
        if self._moments is None or (self._built_for is not None and self._built_for is not self.model):
            self._moments = moments_function(self.model, batch_norm_layers(self.model))
            self._built_for = self.model
        tracing = self._moments.experimental_get_tracing_count() == 0
        start = time.perf_counter()
        images = recompute(self.model, self.batches, self._moments)
        seconds = time.perf_counter() - start
        self._done_at = step
        if self._first:
            self._first = False
            fewer = f" (the train split has only {images:,} of the {self.asked:,} asked)" if images < self.asked else ""
            log.info("Precise BatchNorm: statistics from the first %d train images%s, %.1f s%s before each "
                     "evaluation", images, fewer, seconds, " (with tracing)" if tracing else "")  # fmt: skip
        else:
            log.debug("Precise BatchNorm: recomputed from %d train images in %.2f s", images, seconds)
