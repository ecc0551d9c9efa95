"""Timing a variant: steady-state training throughput, the input pipeline alone, bytes per image, MLflow's cost."""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import mlflow
import tensorflow as tf
from omegaconf import DictConfig

from alexnet_sweep import names, tracking, tracking_store
from alexnet_sweep.bench.machine import seconds_since_process_start
from alexnet_sweep.bench.recipes import Recipe
from alexnet_sweep.bench.reference import REFERENCE_SIZE
from alexnet_sweep.callbacks import EpochMetricsLogger

log = logging.getLogger(__name__)

PIPELINE_SECONDS = 1.0  # how long the input pipeline alone is timed, after one warm-up epoch
MLFLOW_EPOCHS = 5  # epochs of metric logging timed against the tracking store
_SIZE227_KEYS = ("train_img_per_s", "pipeline_img_per_s", "bytes_per_image", "first_step_s")


class StepTimes(keras.callbacks.Callback):
    """Records when each training step has finished (Keras hands non-async callbacks materialized logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())


def images_in_steps(first: int, last: int, *, examples: int, batch_size: int) -> int:
    """Returns the number of images in steps first..last-1 of a stream of epochs of `examples` in batches."""
    steps_per_epoch = math.ceil(examples / batch_size)
    last_batch = examples - (steps_per_epoch - 1) * batch_size
    return sum(
        last_batch if step % steps_per_epoch == steps_per_epoch - 1 else batch_size for step in range(first, last)
    )


def steady_rate(times: Sequence[float], warmup: int, *, examples: int, batch_size: int) -> float:
    """Returns images/s over the steps after the first `warmup` ones, from each step's finishing time.

    Raises:
        ValueError: If there is no warm-up step or no step after the warm-up.
    """
    if not 1 <= warmup < len(times):
        raise ValueError(f"need more steps ({len(times)}) than warm-up steps ({warmup}), and at least one warm-up")
    images = images_in_steps(warmup, len(times), examples=examples, batch_size=batch_size)
    return images / (times[-1] - times[warmup - 1])


def pipeline_rate(dataset: tf.data.Dataset, *, warmup_batches: int, seconds: float) -> float:
    """Returns images/s of iterating `dataset` alone (no model) for `seconds`, after `warmup_batches` batches."""
    batches = iter(dataset)
    for _ in range(warmup_batches):
        next(batches)
    images, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or images == 0:
        images += int(next(batches)[0].shape[0])
    return images / elapsed


def bytes_per_image(dataset: tf.data.Dataset) -> float:
    """Returns the bytes of one batch's input images divided by its size: what the host ships per image."""
    images, _ = next(iter(dataset))
    return images.numpy().nbytes / images.shape[0]


def measure(recipe: Recipe, cfg: DictConfig, *, steps: int, warmup: int, evaluate: bool) -> dict[str, Any]:
    """Builds a variant's data and model from scratch, trains `steps` steps and measures it.

    Returns:
        `train_img_per_s`, `pipeline_img_per_s`, `bytes_per_image`, `first_step_s` (from building the pipeline to
        the end of the first step: data loading, model, tracing) and, with `evaluate`, `test_accuracy`.
    """
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(cfg.seed)
    start = time.perf_counter()
    pipelines = recipe.pipelines(cfg)
    model = recipe.model(cfg, pipelines)
    timer = StepTimes()
    model.fit(pipelines.train, epochs=1, steps_per_epoch=steps, callbacks=[timer], shuffle=False, verbose=0)
    result = {
        "policy": model.dtype_policy.name,
        "jit_compile": bool(model.jit_compile),
        "first_step_s": timer.times[0] - start,
        "train_examples": pipelines.train_examples,
        "train_img_per_s": steady_rate(
            timer.times, warmup, examples=pipelines.train_examples, batch_size=cfg.batch_size
        ),
    }
    if evaluate:
        scores = model.evaluate(pipelines.test, return_dict=True, verbose=0)
        result[names.TEST_ACCURACY] = float(scores[names.ACCURACY])
    warmup_batches = math.ceil(pipelines.train_examples / cfg.batch_size)  # one epoch: fills our cache
    result["pipeline_img_per_s"] = pipeline_rate(
        pipelines.train, warmup_batches=warmup_batches, seconds=PIPELINE_SECONDS
    )
    result["bytes_per_image"] = bytes_per_image(pipelines.train)
    result["_process_s_at_first_step"] = seconds_since_process_start() - (time.perf_counter() - timer.times[0])
    return result


def measure_variant(recipe: Recipe, make_cfg: Callable[..., DictConfig], args: argparse.Namespace) -> dict[str, Any]:
    """Measures one variant at `--input-size` (with test accuracy) and at 227x227 (throughput only).

    Args:
        recipe: The variant.
        make_cfg: `make(*overrides)`, the bench's job config with these overrides (`run.config_factory`).
        args: The bench's options (`--input-size`, `--steps`, `--size227-steps`, `--warmup-steps`).

    Returns:
        `name`, `precision`, what `measure` returns, and its throughput numbers at 227x227 with a `_227` suffix.
    """
    log.info("Measuring %s at %dx%d, %d steps", recipe.name, args.input_size, args.input_size, args.steps)
    cfg = make_cfg(f"model.input_size={args.input_size}", f"precision={recipe.precision}")
    small = measure(recipe, cfg, steps=args.steps, warmup=args.warmup_steps, evaluate=True)
    result = {"name": recipe.name, "precision": recipe.precision, **small}
    if args.size227_steps:
        log.info("Measuring %s at %dx%d, %d steps", recipe.name, REFERENCE_SIZE, REFERENCE_SIZE, args.size227_steps)
        cfg = make_cfg(f"model.input_size={REFERENCE_SIZE}", f"precision={recipe.precision}")
        big = measure(recipe, cfg, steps=args.size227_steps, warmup=args.warmup_steps, evaluate=False)
        for key in _SIZE227_KEYS:
            result[f"{key}_227"] = big[key]
    return result


def mlflow_overhead(cfg: DictConfig, epoch_s: float) -> dict[str, float]:
    """Times what a job logs to MLflow, into a throwaway SQLite store, against one epoch's training time.

    Returns:
        `store_create_s` (a new store's tables: once per store), `run_setup_s` (`tracking.job_run`: run, tags and
        params, once per job), `log_s_per_epoch` (what `callbacks.EpochMetricsLogger` logs each epoch), `epoch_s`
        and `overhead_pct` = 100 * log_s_per_epoch / epoch_s.
    """
    previous_uri, previous_variable = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    logs = {names.LOSS: 1.0, names.ACCURACY: 0.5, names.VAL_LOSS: 1.0, names.VAL_ACCURACY: 0.5}
    logger = EpochMetricsLogger()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as store:
        try:
            start = time.perf_counter()
            client = tracking_store.connect(f"sqlite:///{store}/mlflow.db")
            experiment_id = tracking_store.get_or_create_experiment(client, "bench")
            store_create_s, start = time.perf_counter() - start, time.perf_counter()
            with tracking.job_run(cfg, experiment_id):
                run_setup_s, start = time.perf_counter() - start, time.perf_counter()
                for epoch in range(MLFLOW_EPOCHS):
                    logger.on_epoch_end(epoch, logs)
                per_epoch = (time.perf_counter() - start) / MLFLOW_EPOCHS
        finally:  # set_tracking_uri also exports MLFLOW_TRACKING_URI, which later processes would take as their store
            mlflow.set_tracking_uri(previous_uri)
            if previous_variable is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_variable
    return {
        "store_create_s": store_create_s,
        "run_setup_s": run_setup_s,
        "log_s_per_epoch": per_epoch,
        "epoch_s": epoch_s,
        "overhead_pct": 100 * per_epoch / epoch_s,
    }
