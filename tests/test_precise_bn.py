"""Precise BatchNorm: the recomputed statistics against numpy's, what the recompute leaves alone, its config key."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra.errors import ConfigCompositionException

from alexnet_sweep import precise_bn, train
from alexnet_sweep.config import validate
from alexnet_sweep.errors import UserInputError
from tests.conftest import TINY

EPSILON = 1e-3  # Keras' BatchNormalization default


def small_model(*, dropout_before_bn=False):
    """conv -> BN -> conv -> [dropout] -> BN -> flatten -> dense -> dropout -> softmax, on 8x8x3 float images."""
    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.Conv2D(5, 3, name="conv2"),
            *([keras.layers.Dropout(0.5, seed=3, name="early_dropout")] if dropout_before_bn else []),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.Flatten(),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.Dropout(0.5, seed=4),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    for layer in precise_bn.batch_norm_layers(model):  # stale statistics and a non-trivial scale and shift
        for variable in (layer.gamma, layer.beta, layer.moving_mean):
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
        layer.moving_variance.assign(rng.uniform(1, 2, size=layer.moving_variance.shape).astype("float32"))
    return model


def images(count=10, batch_size=4):
    """`count` random images in batches of `batch_size` (a smaller last batch), with labels as training has them."""
    values = np.random.default_rng(1).normal(size=(count, 8, 8, 3)).astype("float32")
    return values, tf.data.Dataset.from_tensor_slices((values, np.zeros(count, "int64"))).batch(batch_size)


def batch_normalized(values, layer):
    """What a BatchNorm layer in training mode outputs: the batch's own statistics, then scale and shift."""
    mean, variance = values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2))
    return (values - mean) / np.sqrt(variance + EPSILON) * layer.gamma.numpy() + layer.beta.numpy()


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_the_first_layers_statistics_are_numpys_over_its_inputs(policy):
    keras.mixed_precision.set_global_policy(policy)  # conftest resets it
    model = small_model()
    values, batches = images()
    # bn1's inputs as the model computes them (bfloat16 under the mixed policy), in float64 for numpy.
    inputs = np.asarray(model.get_layer("conv1")(values), dtype=np.float64)

    assert precise_bn.recompute(model, batches) == 10
    bn1 = model.get_layer("bn1")
    np.testing.assert_allclose(bn1.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), inputs.var(axis=(0, 1, 2)), rtol=1e-5, atol=1e-7)
    assert bn1.moving_mean.dtype == bn1.moving_variance.dtype == "float32"


def test_a_later_layers_statistics_are_numpys_over_inputs_made_with_batch_statistics_before_it():
    model = small_model()
    values, batches = images(count=10, batch_size=4)
    bn1 = model.get_layer("bn1")
    inputs = []
    for start in range(0, 10, 4):  # batch by batch: bn1 normalizes each with that batch's statistics
        conv1 = np.asarray(model.get_layer("conv1")(values[start : start + 4]), dtype=np.float64)
        normalized = batch_normalized(conv1, bn1).astype("float32")
        inputs.append(np.asarray(model.get_layer("conv2")(normalized), dtype=np.float64))
    inputs = np.concatenate(inputs)

    precise_bn.recompute(model, batches)
    bn2 = model.get_layer("bn2")
    np.testing.assert_allclose(bn2.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn2.moving_variance.numpy(), inputs.var(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)


def test_only_the_moving_statistics_change():
    model = small_model(dropout_before_bn=True)  # the collection pass runs this dropout and draws from its seed
    _, batches = images()
    moving = {
        id(v) for layer in precise_bn.batch_norm_layers(model) for v in (layer.moving_mean, layer.moving_variance)
    }
    kept = [(v.path, v.numpy()) for v in model.variables if id(v) not in moving]
    seeds = [path for path, _ in kept if path.endswith("seed_generator_state")]
    assert len(seeds) == 2 and len(kept) == 2 + 2 * 2 + 2 * 2 + 2 * 2, "conv, BN gamma/beta, dense: kernel and bias"
    before = [v.numpy() for v in model.variables if id(v) in moving]

    precise_bn.recompute(model, batches)
    for (path, value), variable in zip(kept, [v for v in model.variables if id(v) not in moving], strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=path)
    after = [v.numpy() for v in model.variables if id(v) in moving]
    assert all(not np.allclose(old, new) for old, new in zip(before, after, strict=True))


def test_the_callback_recomputes_at_each_evaluation_and_not_again_without_a_training_step(caplog):
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    values, batches = images()
    callback = precise_bn.PreciseBatchNorm(batches, asked=16)
    bn1 = model.get_layer("bn1")
    with caplog.at_level(logging.DEBUG, logger=precise_bn.__name__):
        model.fit(batches, epochs=2, validation_data=batches, callbacks=[callback], shuffle=False, verbose=0)
        model.evaluate(batches, callbacks=[callback], verbose=0)  # no step since the last validation: kept
    lines = [record for record in caplog.records if record.name == precise_bn.__name__]
    assert [record.levelno for record in lines] == [logging.INFO, logging.DEBUG]
    assert "the first 10 train images (the train split has only 10 of the 16 asked)" in lines[0].getMessage()
    inputs = np.asarray(model.get_layer("conv1")(values), dtype=np.float64)
    np.testing.assert_allclose(bn1.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_a_job_with_lagging_moving_statistics_validates_with_the_recomputed_ones(make_cfg, tiny_overrides, caplog):
    overrides = [*tiny_overrides, *TINY, "model.bn_momentum=0.99", "epochs=1"]
    with caplog.at_level(logging.INFO, logger=precise_bn.__name__):
        precise = train.run(make_cfg(*overrides, "precise_bn_images=100"))
    [line] = [record.getMessage() for record in caplog.records if record.name == precise_bn.__name__]
    assert "statistics from the first 64 train images (the train split has only 64 of the 100 asked), " in line
    lagging = train.run(make_cfg(*overrides, "precise_bn_images=0"))
    assert precise.metrics["val_loss"] != lagging.metrics["val_loss"]
    assert precise.metrics["loss"] == pytest.approx(lagging.metrics["loss"], rel=1e-5), "training is the same"


def test_the_config_refuses_a_negative_or_non_integer_count(make_cfg):
    with pytest.raises(UserInputError) as caught:
        validate(make_cfg("precise_bn_images=-1"))
    assert str(caught.value) == "precise_bn_images=-1: must be 0 (off) or a number of training images"
    with pytest.raises(ConfigCompositionException) as caught:
        make_cfg("precise_bn_images=abc")
    assert str(caught.value) == "Error merging override precise_bn_images=abc"
    validate(make_cfg("precise_bn_images=1024"))
