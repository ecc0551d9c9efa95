"""TFDS -> tf.data: obtain a dataset, check its splits, and build the train/val/test pipelines.

Images stay uint8 through the pipeline (cached, shuffled, batched, prefetched); scaling and resizing are the
model's first layers. Only variable-size images (Imagenette) are resized here, once, before the cache.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_datasets as tfds
from omegaconf import DictConfig

from alexnet_sweep import preparing
from alexnet_sweep.errors import UserInputError, first_line

log = logging.getLogger(__name__)

SPLIT_KEYS = ("train_split", "val_split", "test_split")
_ZERO_SEED_STANDIN = 0x5EED  # the global seed of the epoch-stream function when the job's seed is 0
_EPOCH_SEED_STRIDE = 100_003  # seed * stride + epoch: distinct per (seed, epoch) for any realistic epoch count


@dataclass(frozen=True)
class Splits:
    """The batched pipelines of one job and what the model needs to know about them.

    `train_epochs(first, last)` is one stream of the training batches of epochs first..last-1, in which the
    order of epoch e depends only on (seed, e): training from epoch k onwards sees exactly the batches an
    uninterrupted run would have seen, which is what makes resuming and epoch-prefix sharing exact. Fit it with
    `steps_per_epoch`. `train_first(n)` is the first n training examples in their stored order (never shuffled),
    batched like training: a fixed sample of the training images (precise BatchNorm statistics).
    """

    train_epochs: Callable[[int, int], tf.data.Dataset]
    train_first: Callable[[int], tf.data.Dataset]
    steps_per_epoch: int
    val: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple[int | None, int | None, int]
    class_names: list[str]
    sizes: dict[str, int]

    @property
    def train(self) -> tf.data.Dataset:
        """The first epoch's training batches."""
        return self.train_epochs(0, 1)


def load_splits(dataset: DictConfig, *, batch_size: int, seed: int, image_size: int) -> Splits:
    """Loads the configured TFDS splits and wraps them in tf.data pipelines.

    Args:
        dataset: The `dataset` config group (TFDS name, split strings, data_dir, builder_module, download, cache,
            shuffle_buffer).
        batch_size: Examples per batch.
        seed: Seeds the train shuffle: with the epoch number it fixes the data order of every epoch.
        image_size: Side to which variable-size images are resized before caching (fixed-size images are kept
            as stored and resized by the model).

    Returns:
        The train (shuffled per epoch), val and test pipelines, yielding (uint8 images, int64 labels) batches.

    Raises:
        UserInputError: If the builder module cannot be imported, the dataset is unknown or cannot be obtained,
            TFDS rejects a split string, or a split string selects no example (`train[90%:10%]`, `test[:0]`).
    """
    import_builder_module(dataset)
    builder = _builder(dataset)
    raw = _load_raw(dataset, builder)
    image_shape = tuple(builder.info.features["image"].shape)
    if None in image_shape[:2]:
        raw = {key: ds.map(_resizer(image_size), num_parallel_calls=tf.data.AUTOTUNE) for key, ds in raw.items()}
        image_shape = (image_size, image_size, image_shape[2])
    sizes = {key: int(ds.cardinality()) for key, ds in raw.items()}  # TFDS knows its split sizes
    cached = {key: ds.cache() if dataset.cache else ds for key, ds in raw.items()}
    train = cached["train_split"]
    buffer = min(dataset.shuffle_buffer, sizes["train_split"]) if sizes["train_split"] > 0 else dataset.shuffle_buffer

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        if tf.compat.v1.get_default_graph().seed == 0:
            # Global seed 0 (`seed=0`, set by train.run): TensorFlow's seed helper would compare this function's
            # tensor op seed with 0 and fail while tracing. Any other global seed in this traced function only
            # avoids that; the epoch's order still depends only on (seed, epoch).
            tf.compat.v1.set_random_seed(_ZERO_SEED_STANDIN)
        epoch_seed = tf.cast(seed, tf.int64) * _EPOCH_SEED_STRIDE + epoch
        return train.shuffle(buffer, seed=epoch_seed, reshuffle_each_iteration=False).batch(batch_size)

    def train_epochs(first: int, last: int) -> tf.data.Dataset:
        # Lazily, epoch after epoch: a stream of any length (the bench asks for a million epochs).
        return tf.data.Dataset.range(first, last).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)

    return Splits(
        train_epochs=train_epochs,
        train_first=lambda n: train.take(n).batch(batch_size).prefetch(tf.data.AUTOTUNE),
        steps_per_epoch=math.ceil(sizes["train_split"] / batch_size),
        val=cached["val_split"].batch(batch_size).prefetch(tf.data.AUTOTUNE),
        test=cached["test_split"].batch(batch_size).prefetch(tf.data.AUTOTUNE),
        image_shape=image_shape,
        class_names=list(builder.info.features["label"].names),
        sizes=sizes,
    )


def import_builder_module(dataset: DictConfig) -> None:
    """Imports `dataset.builder_module`, if set: defining a TFDS builder class registers it under its name.

    Args:
        dataset: The `dataset` config group.

    Raises:
        UserInputError: If the module cannot be found, fails to import, or is a plain module outside a package
            (TFDS cannot use a builder there); one line naming `dataset.builder_module` and its value.
    """
    module = dataset.builder_module
    if module is None:
        return
    try:
        importlib.import_module(module)
        top = importlib.import_module(module.split(".")[0])
    except ModuleNotFoundError as err:
        if err.name is not None and (module == err.name or module.startswith(f"{err.name}.")):
            raise UserInputError(
                f"dataset.builder_module={module!r}: no such module; put the folder that holds it on PYTHONPATH "
                "or install its package"
            ) from None
        raise _import_failed(module, err) from err
    except Exception as err:  # the user's module: any error it raises while importing is theirs to fix
        raise _import_failed(module, err) from err
    # TFDS reads a builder's files relative to its top-level package, and fails with a TypeError on a plain module.
    if top.__spec__ is None or top.__spec__.submodule_search_locations is None:
        raise UserInputError(
            f"dataset.builder_module={module!r}: a plain module, but TFDS needs a builder inside a package; "
            f"move {module}.py to {module}/__init__.py"
        )


def _import_failed(module: str, err: Exception) -> UserInputError:
    return UserInputError(
        f"dataset.builder_module={module!r}: importing it failed: {type(err).__name__}: {first_line(err)}"
    )


def _builder(dataset: DictConfig) -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(dataset.name, data_dir=dataset.data_dir)
    except tfds.core.registered.DatasetNotFoundError as err:
        hint = first_line(err)
        if dataset.builder_module is not None:
            raise UserInputError(
                f"dataset.name={dataset.name!r}: not a TFDS dataset, and dataset.builder_module="
                f"{dataset.builder_module!r} registers no builder of that name ({hint})"
            ) from None
        raise UserInputError(
            f"dataset.name={dataset.name!r}: not a TFDS dataset ({hint}); pick dataset=cifar10|imagenette|shapes, "
            "another name from tfds.list_builders(), or set dataset.builder_module to the module of your own builder"
        ) from None


def _load_raw(dataset: DictConfig, builder: tfds.core.DatasetBuilder) -> dict[str, tf.data.Dataset]:
    try:
        return _load_each_split(dataset, builder)
    except AssertionError:  # TFDS's "could not find data in data_dir": the dataset is not prepared yet
        preparing.prepare(dataset, builder)  # which also gives the builder its split sizes
        return _load_each_split(dataset, builder)


def _load_each_split(dataset: DictConfig, builder: tfds.core.DatasetBuilder) -> dict[str, tf.data.Dataset]:
    raw = {}
    for key in SPLIT_KEYS:
        split = dataset[key]
        check_selects_examples(f"dataset.{key}", split, dataset.name, builder.info.splits)
        try:
            raw[key] = tfds.load(
                dataset.name,
                split=split,
                data_dir=dataset.data_dir,
                download=False,
                as_supervised=True,
                shuffle_files=False,
            )
        except (ValueError, KeyError) as err:
            raise UserInputError(f"dataset.{key}={split!r}: TFDS rejects this split: {first_line(err)}") from None
    return raw


def check_splits(dataset: DictConfig) -> None:
    """Checks, from the dataset's metadata alone, that each of its split strings selects examples.

    A sweep checks every grid point with it before the first job starts. A dataset that is not prepared yet (it is
    prepared by its first job) cannot be checked here; its job checks again when it loads the data.

    Raises:
        UserInputError: If the builder module cannot be imported, the dataset is unknown, or a split selects no
            example; one line naming the key and value.
    """
    import_builder_module(dataset)
    builder = _builder(dataset)
    if builder.is_prepared():
        for key in SPLIT_KEYS:
            check_selects_examples(f"dataset.{key}", dataset[key], dataset.name, builder.info.splits)


def check_selects_examples(key: str, split: str, name: str, splits: tfds.core.SplitDict) -> None:
    """Refuses a split string that selects no example, reading only the dataset's metadata (no data).

    TFDS itself refuses an empty slice such as `train[:0]`, but accepts a reversed one such as `train[90%:10%]`
    (it counts -1600 examples) and training then fails deep inside TensorFlow.

    Args:
        key: The config key, e.g. `dataset.train_split`.
        split: Its value: one or more TFDS split strings joined by `+`.
        name: The dataset's name, for the message.
        splits: The dataset's split metadata (`builder.info.splits`); empty while the dataset is not prepared.

    Raises:
        UserInputError: If the split, or one of the parts joined by `+`, selects no example; one line naming the
            key and value. A string TFDS cannot parse, or a split it does not know, is left for TFDS to reject.
    """
    parts = [part.strip() for part in split.split("+")]
    for part in parts:
        whole = part.split("[", 1)[0]
        try:
            selected, total = splits[part].num_examples, splits[whole].num_examples
        except (ValueError, KeyError):
            continue
        if selected <= 0:
            which = "selects" if len(parts) == 1 else f"{part} selects"
            raise UserInputError(f"{key}={split!r}: {which} no example of {name}'s {whole} split ({total:,} examples)")


def _resizer(image_size: int):
    def resize(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        resized = tf.image.resize(image, [image_size, image_size], method="bilinear")
        return tf.cast(tf.round(tf.clip_by_value(resized, 0, 255)), tf.uint8), label

    return resize
