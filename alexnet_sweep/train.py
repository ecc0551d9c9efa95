"""One job: validate the config, load data, build the model, fit, evaluate, and record it all in MLflow."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow import MlflowClient
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep import callbacks, checkpoint, plots, resume, tracking
from alexnet_sweep.config import validate
from alexnet_sweep.data import Splits, load_splits
from alexnet_sweep.gpu import configure_gpus
from alexnet_sweep.interrupt import DeferredInterrupt
from alexnet_sweep.model import compiled_model
from alexnet_sweep.optimizer import build_optimizer
from alexnet_sweep.redact import redact
from alexnet_sweep.resume import Plan

log = logging.getLogger(__name__)

PREDICTION_IMAGES = 16
TAG_GPUS = "gpus"  # the GPUs the job's TensorFlow saw, e.g. `1 (CUDA_VISIBLE_DEVICES=3)`: one per trial under Ray


@dataclass(frozen=True)
class JobResult:
    """What a finished job reports: its MLflow run and final metrics (last epoch + test)."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    plan: Plan = Plan("start")


def run(
    cfg: DictConfig,
    *,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    in_sweep: bool = False,
) -> JobResult:
    """Trains and evaluates one configuration and records it as one MLflow run.

    Every check of the input (config values, tracking URI, dataset and splits) happens before the run is
    created, so bad input leaves no trace in the store. In a sweep the job saves its training state after every
    epoch (under `checkpoint_dir`), and `resume` / `share_epochs` decide whether it skips, continues an unfinished
    run, or starts from a finished sibling's epochs (see `resume.plan_job`).

    Args:
        cfg: The composed job config (see conf/config.yaml).
        parent_run_id: The sweep's parent run id when the job is part of a multirun.
        tags: Extra MLflow tags, e.g. the Hydra override string.
        in_sweep: Whether the job is part of a multirun.

    Returns:
        The run id, the final metrics and what the job did.

    Raises:
        UserInputError: On bad input, before anything is trained or recorded.
    """
    validate(cfg)
    client = tracking.connect(cfg.mlflow.tracking_uri)
    experiment_id = tracking.get_or_create_experiment(client, cfg.mlflow.experiment_name)
    params = tracking.flatten_params(cfg)
    plan = Plan("start")
    if in_sweep:
        plan = resume.plan_job(
            client, experiment_id, params, parent_run_id=parent_run_id, resume=cfg.resume,
            share_epochs=cfg.share_epochs,
        )  # fmt: skip
        log.info("Job %s", plan.describe())
    if plan.action == "skip":
        _supersede(client, plan, plan.run.info.run_id)
        return JobResult(plan.run.info.run_id, experiment_id, dict(plan.run.data.metrics), plan)

    gpus = configure_gpus(cfg.gpu_memory)  # before the first TensorFlow op
    keras.backend.clear_session(free_memory=True)  # Hydra's default launcher runs every job in this process
    # Before the data pipeline: tf.data's shuffle order depends on the global seed at the time it is built.
    keras.utils.set_random_seed(cfg.seed)
    optimizer = build_optimizer(cfg.optimizer)
    splits = load_splits(cfg.dataset, batch_size=cfg.batch_size, seed=cfg.seed, image_size=cfg.model.input_size)
    log.info("Data %s: %s", cfg.dataset.name, ", ".join(f"{k.split('_')[0]} {n}" for k, n in splits.sizes.items()))
    model = compiled_model(cfg, optimizer, image_shape=splits.image_shape, num_classes=len(splits.class_names))

    run_tags = {**(tags or {}), **resume.identity_tags(params), TAG_GPUS: gpus}
    continued = plan.run.info.run_id if plan.action == "continue" else None
    with (
        tracking.job_run(cfg, experiment_id, parent_run_id=parent_run_id, tags=run_tags, run_id=continued) as active,
        DeferredInterrupt() as interrupt,
    ):
        _supersede(client, plan, active.info.run_id)
        job_callbacks: list[keras.callbacks.Callback] = [callbacks.EpochSeeds()]
        state = None
        if in_sweep:
            state, saver = _prepare_state(client, cfg, plan, active, model)
            job_callbacks.append(saver)
        job_callbacks += [callbacks.EpochMetricsLogger(), interrupt]
        _log_inputs(cfg, model)
        initial_epoch = state.epoch if state else 0
        history = model.fit(
            splits.train_epochs(initial_epoch, cfg.epochs),
            steps_per_epoch=splits.steps_per_epoch,
            validation_data=splits.val,
            initial_epoch=initial_epoch,
            epochs=cfg.epochs,
            callbacks=job_callbacks,
            shuffle=False,  # the pipeline shuffles, seeded per epoch
            verbose=1 if sys.stdout.isatty() else 2,  # a progress bar on a terminal, one line per epoch in logs
        )
        shared = int(client.get_run(active.info.run_id).data.tags.get(resume.TAG_SHARED_EPOCHS, 0))
        mlflow.log_metric("epochs_trained", cfg.epochs - shared)  # the epochs not copied from a sibling
        test = model.evaluate(splits.test, return_dict=True, verbose=0, callbacks=[interrupt])
        test_metrics = {f"test_{key}": float(value) for key, value in test.items()}
        mlflow.log_metrics(test_metrics)
        log.info("Test: %s", ", ".join(f"{key}={value:.4f}" for key, value in test_metrics.items()))
        curves = _merge_history(state.history if state else [], history.history)
        _log_figures(model, splits, curves, title=tracking.run_name(cfg))
        if cfg.save_model:
            _log_model(model, splits)
    final = {key: values[-1] for key, values in curves.items() if values}
    return JobResult(active.info.run_id, experiment_id, {**final, **test_metrics}, plan)


def _supersede(client: MlflowClient, plan: Plan, replacement_run_id: str) -> None:
    """Marks an unfinished run of this job as replaced, so the sweep and its report count the job once."""
    if plan.supersedes is not None:
        client.set_tag(plan.supersedes.info.run_id, tracking.TAG_SUPERSEDED_BY, replacement_run_id)


def _prepare_state(
    client: MlflowClient, cfg: DictConfig, plan: Plan, active: mlflow.ActiveRun, model: keras.Model
) -> tuple[checkpoint.SavedState | None, callbacks.EpochCheckpoint]:
    """Restores where a continued or sharing job starts, logs the epochs it inherits, and returns the saver."""
    run_id = active.info.run_id
    directory = Path(active.data.tags.get(resume.TAG_CHECKPOINT) or Path(cfg.checkpoint_dir).resolve() / run_id)
    mlflow.set_tag(resume.TAG_CHECKPOINT, str(directory))
    state = plan.state
    if plan.action == "share":
        state = checkpoint.start_from(plan.state, directory)
        # Only now: a run killed before its copy of the state exists continues from scratch, without these tags.
        mlflow.set_tags({resume.TAG_CONTINUED_FROM: plan.run.info.run_id, resume.TAG_SHARED_EPOCHS: str(state.epoch)})
    if state is not None:
        checkpoint.restore(model, state)
        # A continued run logged some of these epochs itself; a sharing run gets all of the sibling's.
        logged = resume.last_logged_epoch(client, run_id)
        for epoch, metrics in enumerate(state.history[logged:], start=logged + 1):
            mlflow.log_metrics(metrics, step=epoch)
        log.info("Continuing after epoch %d of %d", state.epoch, cfg.epochs)
    return state, callbacks.EpochCheckpoint(directory, state)


def _merge_history(earlier: list[dict[str, float]], later: dict[str, list[float]]) -> dict[str, list[float]]:
    """Joins the per-epoch metrics of inherited epochs (a list of dicts) and of this fit (Keras' history)."""
    keys = set(later) | {key for epoch in earlier for key in epoch}
    return {key: [epoch[key] for epoch in earlier if key in epoch] + list(later.get(key, [])) for key in keys}


def _log_inputs(cfg: DictConfig, model: keras.Model) -> None:
    mlflow.log_text(redact(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")  # no credentials of the store
    tracking.log_params_once({"precision.policy": model.dtype_policy.name})  # what precision=auto chose on this machine
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=100)
    mlflow.log_text("\n".join(lines), "model_summary.txt")


def _log_figures(model: keras.Model, splits: Splits, history: dict[str, list[float]], title: str) -> None:
    mlflow.log_figure(plots.curves_figure(history, title=title), "curves.png")
    images, labels = next(iter(splits.test.unbatch().batch(PREDICTION_IMAGES)))
    predicted = np.argmax(model(images, training=False), axis=-1)  # no predict(): it retraces for every new model
    figure = plots.predictions_figure(images.numpy(), labels.numpy(), predicted, splits.class_names)
    mlflow.log_figure(figure, "predictions.png")


def _log_model(model: keras.Model, splits: Splits) -> None:
    images, _ = next(iter(splits.test.take(1)))
    example = images[:1].numpy()
    # An uncompiled copy: the trained weights without Adam's two moment tensors (a third of the size).
    inference_model = keras.models.clone_model(model)
    inference_model.set_weights(model.get_weights())
    mlflow.keras.log_model(
        inference_model,
        name="model",
        signature=infer_signature(example, model(example, training=False).numpy()),
        # Pinning what runs here skips MLflow's requirement inference, which re-imports the model in a subprocess.
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
    )
