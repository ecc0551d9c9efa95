"""The reference notebook's recipe, re-implemented here on purpose (not from our modules).

Per-example `tf.image.resize(image / 255, ...)` in the tf.data map on the host, one-hot labels, `shuffle(256)`,
`batch`, a float32 Keras AlexNet fed float32 images, Adam, categorical cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf
import tensorflow_datasets as tfds
from keras import layers
from omegaconf import DictConfig

from alexnet_sweep.bench.recipes import Pipelines, Recipe

REFERENCE_SIZE = 227
REFERENCE_SHUFFLE_BUFFER = 256


def reference_preprocess(size: int, num_classes: int) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Returns the reference notebook's per-example map: scale to [0, 1], bilinear resize, one-hot label."""

    def preprocess(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.image.resize(image / 255, [size, size], method="bilinear")
        return image, tf.one_hot(label, num_classes)

    return preprocess


def reference_pipelines(cfg: DictConfig) -> Pipelines:
    """The reference input pipeline on the job's splits: resize on the host, float32 images, no cache/prefetch."""
    builder = tfds.builder(cfg.dataset.name, data_dir=cfg.dataset.data_dir)
    num_classes = builder.info.features["label"].num_classes
    preprocess = reference_preprocess(cfg.model.input_size, num_classes)

    def load(split: str) -> tf.data.Dataset:
        return tfds.load(cfg.dataset.name, split=split, data_dir=cfg.dataset.data_dir, as_supervised=True)

    train = load(cfg.dataset.train_split)
    return Pipelines(
        train=train.map(preprocess).shuffle(REFERENCE_SHUFFLE_BUFFER, seed=cfg.seed).batch(cfg.batch_size).repeat(),
        test=load(cfg.dataset.test_split).map(preprocess).batch(cfg.batch_size),
        train_examples=int(train.cardinality()),
        num_classes=num_classes,
        image_shape=(cfg.model.input_size, cfg.model.input_size, 3),
    )


def reference_model(cfg: DictConfig, pipelines: Pipelines) -> keras.Model:
    """The reference notebook's AlexNet in float32, compiled with Adam and categorical cross-entropy.

    Dropout and BatchNorm momentum come from the config, like ours: the bench's `demo` preset sets momentum 0.9
    (the notebook's Keras default 0.99 leaves a 100-step run at chance accuracy, see experiment/demo.yaml).
    """
    keras.mixed_precision.set_global_policy("float32")
    bn_momentum, dropout = cfg.model.bn_momentum, cfg.model.dropout
    model = keras.Sequential(
        [
            layers.Input(shape=pipelines.image_shape),
            layers.Conv2D(96, 11, strides=4, activation="relu"),  # padding "valid", as in the notebook
            layers.BatchNormalization(momentum=bn_momentum),
            layers.MaxPooling2D(3, 2),
            layers.Conv2D(256, 5, padding="same", activation="relu"),
            layers.BatchNormalization(momentum=bn_momentum),
            layers.MaxPooling2D(3, 2),
            layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(256, 3, padding="same", activation="relu"),
            layers.BatchNormalization(momentum=bn_momentum),
            layers.MaxPooling2D(3, 2),
            layers.Flatten(),
            layers.Dense(4096, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(4096, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(pipelines.num_classes, activation="softmax"),
        ],
        name="reference",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=cfg.optimizer.lr),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],  # the Keras metric, as the notebook names it
    )
    return model


REFERENCE = Recipe("reference", "float32", reference_pipelines, reference_model)
