"""The previous job's compiled model, reused by the next job of the same graph: no new tracing.

Tracing a new model's train and test functions takes seconds (about 2 s for AlexNet at 67x67 on 2 CPU cores), and
`keras.backend.clear_session`'s garbage collection a few tenths more: in a sweep of many short jobs that is most of
each job. Hydra's default launcher runs every job of a sweep in one process, and joblib's and Ray's workers run
several each, so this module keeps the last job's compiled model, and with it the traced functions, for the next.

A job reuses it when its config differs from that job's only in keys that leave the graph alone (`GRAPH_FREE_KEYS`:
the seed, epochs, the learning rate, bookkeeping). Every other key is part of the graph key, whether it changes the
graph or not: optimizer arguments but `lr` (beta_1, epsilon, momentum) are Python numbers that Keras bakes into the
traced train step, whereas the learning rate is a variable. A new key drops the kept model and clears the session.

A reused model starts in the state a fresh build would give it, so results are identical to a fresh job's:

- the job seeds and builds its optimizer and data in the same order as without reuse, and builds a fresh,
  uncompiled model exactly as `model.compiled_model` does, so the same random draws give the same initial weights
  and dropout seed-generator states; those (`model.variables`: weights and seed states; `get_weights` leaves the
  seed states out) are copied into the kept model;
- the kept optimizer's variables (step count, moments, learning rate, a loss scale) take the values of the job's
  own new optimizer built on the model's variables;
- `fit` and `evaluate` reset the metrics themselves (and so does this module, for callers that do not).

A failed job leaves nothing behind that this reset does not overwrite, so the next job may reuse its model too.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from unittest import mock

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf
from tensorflow.python.eager import context as tf_context

from alexnet_sweep import model as models
from alexnet_sweep.precise_bn import Moments, batch_norm_layers, moments_function

log = logging.getLogger(__name__)

# Config keys that do not change the model's graph: a job differing from the last only in these reuses its model.
GRAPH_FREE_KEYS = (
    "seed", "epochs", "optimizer.lr", "mlflow", "resume", "share_epochs", "checkpoint_dir", "precise_bn_images",
    "save_model", "gpu_memory", "reuse_model",
)  # fmt: skip


@dataclass
class _Kept:
    """The last job's compiled model, what it was built for, and precise BatchNorm's traced function of it."""

    key: str
    model: keras.Model
    image_shape: tuple[int | None, int | None, int]
    num_classes: int
    moments: Moments | None = None


_kept: _Kept | None = None  # at most one model: AlexNet with Adam's state is hundreds of MB


def graph_key(cfg: DictConfig) -> str:
    """The job's config without `GRAPH_FREE_KEYS`, as a string: jobs with equal keys can share a model."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for dotted in GRAPH_FREE_KEYS:
        *parents, last = dotted.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(last, None)
    return json.dumps(container, sort_keys=True, default=str)


def begin(cfg: DictConfig) -> bool:
    """Readies the process for a job's model; call it first, before seeding and building anything.

    Unless the job can reuse the kept model (`cfg.reuse_model` and the same graph key), this drops the kept model
    and clears Keras' session: Hydra's default launcher runs every job in one process.

    Returns:
        Whether the kept model will be reused.
    """
    global _kept
    if cfg.reuse_model and _kept is not None and _kept.key == graph_key(cfg):
        return True
    _kept = None
    keras.backend.clear_session(free_memory=True)
    return False


def set_random_seed(seed: int, *, keep_kernels: bool) -> None:
    """`keras.utils.set_random_seed`, with `keep_kernels` without the clear of TensorFlow's kernel cache.

    For a job that reuses the kept model. `tf.random.set_seed` clears that cache, after which the next call of every
    traced function builds and optimizes its kernels again: about 0.35 s in the first train step of AlexNet at 67x67
    on 2 CPU cores, and more in the first validation. The clear only restarts stateful random ops
    (`tf.random.uniform`), whose counters live in the cached kernels; a kept model's functions use stateless ones
    only (Keras' dropout draws from the layers' seed-generator variables, which `compiled_model` resets), and
    tf.data's shuffle keeps its state in each new iterator. What the seed must set, TensorFlow's global seed (which
    the data pipeline's shuffle reads) and its source of op seeds, is set as `tf.random.set_seed` sets it; where
    this TensorFlow lacks those attributes, the seed is set with the clear.
    """
    context = tf_context.context()
    if not keep_kernels or not (hasattr(context, "_seed") and hasattr(context, "_rng")):
        keras.utils.set_random_seed(seed)
        return

    def set_seed_keeping_kernels(value: int) -> None:
        context._seed = value  # what Context._set_global_seed sets before it clears the caches
        context._rng = random.Random(value)

    with mock.patch.object(tf.random, "set_seed", set_seed_keeping_kernels):
        keras.utils.set_random_seed(seed)


def compiled_model(
    cfg: DictConfig,
    optimizer: keras.optimizers.Optimizer,
    *,
    image_shape: tuple[int | None, int | None, int],
    num_classes: int,
) -> keras.Model:
    """The job's compiled model, in the state `model.compiled_model` would build it in, after `begin`.

    Reuses the kept model if `begin` said so and the data and the dtype policy fit it; else compiles the model it
    built, and keeps that for the next job if `cfg.reuse_model`.

    Args:
        cfg: The job's config.
        optimizer: The job's new optimizer (`build_optimizer`); a reused model keeps its own and takes this one's
            initial state.
        image_shape: Shape of one stored image.
        num_classes: Width of the softmax output.
    """
    global _kept
    key = graph_key(cfg)
    # Built in any case, as a fresh job builds it: the initial state of a reused model is this one's.
    model = models.job_model(cfg, image_shape=image_shape, num_classes=num_classes)
    kept = _kept
    if (
        cfg.reuse_model
        and kept is not None
        and (kept.key, kept.image_shape, kept.num_classes) == (key, tuple(image_shape), num_classes)
        and kept.model.dtype_policy.name == model.dtype_policy.name
    ):
        _reset(kept.model, model, optimizer)
        log.info("Reusing the previous job's traced model, reset to this job's initial weights and optimizer")
        return kept.model
    _kept = None
    models.compile_model(model, cfg, optimizer)
    if cfg.reuse_model:
        _kept = _Kept(key, model, tuple(image_shape), num_classes)
    return model


def forget() -> None:
    """Drops the kept model, so that the next job builds its own (its memory is freed at the next clear_session)."""
    global _kept
    _kept = None


def moments(model: keras.Model) -> Moments:
    """Precise BatchNorm's statistics function of `model` (`precise_bn.moments_function`), kept with a kept model."""
    kept = _kept
    if kept is None or kept.model is not model:
        return moments_function(model, batch_norm_layers(model))
    if kept.moments is None:
        kept.moments = moments_function(model, batch_norm_layers(model))
    return kept.moments


def _reset(model: keras.Model, fresh: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Gives `model` the weights and seed states of `fresh` and its optimizer the initial state of `optimizer`."""
    for target, source in zip(model.variables, fresh.variables, strict=True):
        target.assign(source)
    kept_optimizer = model.optimizer
    if isinstance(kept_optimizer, keras.optimizers.LossScaleOptimizer):  # as compile wraps it (mixed_float16)
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=kept_optimizer.name)
    if not kept_optimizer.built:  # the previous job stopped before its first step
        kept_optimizer.build(model.trainable_variables)
    optimizer.build(model.trainable_variables)  # its variables hold the initial values: zeros, 0 steps, lr
    for target, source in zip(kept_optimizer.variables, optimizer.variables, strict=True):
        target.assign(source)
    model.reset_metrics()
