"""One job: validate the config, load data, build the model, fit, evaluate, and record it all in MLflow."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep import callbacks, checkpoint, names, plots, reuse, tracking, tracking_store
from alexnet_sweep.config import validate
from alexnet_sweep.data import Splits, load_splits
from alexnet_sweep.gpu import configure_gpus
from alexnet_sweep.interrupt import DeferredInterrupt
from alexnet_sweep.optimizer import build_optimizer
from alexnet_sweep.plan import Plan, identity_tags
from alexnet_sweep.precise_bn import PreciseBatchNorm
from alexnet_sweep.redact import redact

log = logging.getLogger(__name__)

PREDICTION_IMAGES = 16


@dataclass(frozen=True)
class JobResult:
    """What a finished job reports: its MLflow run and final metrics (last epoch + test)."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]


def run(
    cfg: DictConfig,
    *,
    parent_run_id: str | None = None,
    plan: Plan | None = None,
    tags: dict[str, str] | None = None,
    name: str | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> JobResult:
    """Trains and evaluates one configuration and records it as one MLflow run.

    Every check of the input (config values, tracking URI, dataset and splits) happens before the experiment or
    the run is created, so bad input leaves no trace in the store. A loss or metric that becomes NaN or infinite
    stops training at the end of that epoch and ends the run FAILED. A sweep's job comes with its plan
    (`plan.Plan`): it saves its training state after every epoch into the plan's `checkpoint_dir`, and it may go
    on in an unfinished run or start from a finished sibling's saved epochs.

    Args:
        cfg: The composed job config (see conf/config.yaml).
        parent_run_id: The sweep's parent run id when the job is part of a multirun.
        plan: What the sweeper decided this job does (`start`, `continue` or `share`); None for a single run.
        tags: Extra MLflow tags, e.g. the Hydra override string.
        name: The run's name (default: `tracking.run_name`); a sweep names its jobs by what it varies.
        extra_callbacks: Called after the job's own at every epoch's end (a study's trial reports there). One
            that stops training early (a pruned trial) ends the run FINISHED without the test evaluation.

    Returns:
        The run id and the final metrics.

    Raises:
        UserInputError: On bad input, before anything is trained or recorded.
        callbacks.Diverged: If training diverged; the run's error tag says `diverged at epoch k`.
    """
    started = time.perf_counter()
    validate(cfg)
    client = tracking_store.connect(cfg.mlflow.tracking_uri)  # a bad URI or a server that is down: said in seconds
    params = tracking.flatten_params(cfg)
    gpus = configure_gpus(cfg.gpu_memory)  # before the first TensorFlow op
    reused = reuse.begin(cfg)  # clears Keras' session unless this job reuses the last job's model (same process)
    # Before the data pipeline: tf.data's shuffle order depends on the global seed at the time it is built.
    reuse.set_random_seed(cfg.seed, keep_kernels=reused)
    optimizer = build_optimizer(cfg.optimizer)
    splits = load_splits(cfg.dataset, batch_size=cfg.batch_size, seed=cfg.seed, image_size=cfg.model.input_size)
    log.info("Data %s: %s", cfg.dataset.name, ", ".join(f"{k.split('_')[0]} {n}" for k, n in splits.sizes.items()))
    model = reuse.compiled_model(cfg, optimizer, image_shape=splits.image_shape, num_classes=len(splits.class_names))
    # Only now that the data and the model are known to be usable: bad input leaves no experiment behind.
    experiment_id = tracking_store.get_or_create_experiment(client, cfg.mlflow.experiment_name)

    run_tags = {**(tags or {}), **identity_tags(params), names.TAG_GPUS: gpus}
    if plan is not None and plan.checkpoint_dir:
        run_tags[names.TAG_CHECKPOINT] = plan.checkpoint_dir  # where later sweeps find this run's saved state
    continued = plan.run_id if plan is not None and plan.action == "continue" else None
    with (
        tracking.job_run(
            cfg, experiment_id, parent_run_id=parent_run_id, tags=run_tags, run_id=continued, name=name
        ) as active,
        DeferredInterrupt() as interrupt,
    ):
        if plan is not None and plan.supersedes:  # so the sweep and its report count the job once
            client.set_tag(plan.supersedes, names.TAG_SUPERSEDED_BY, active.info.run_id)
        # StopOnDivergence before EpochCheckpoint: the state of a diverged epoch is never saved.
        timeline = callbacks.Timeline()  # first: its epoch end is before the saving and logging of the epoch
        job_callbacks: list[keras.callbacks.Callback] = [timeline, callbacks.EpochSeeds(), callbacks.StopOnDivergence()]
        state = None
        if plan is not None:
            state = _restore(plan, model)
            job_callbacks.append(callbacks.EpochCheckpoint(Path(plan.checkpoint_dir), state))
        job_callbacks += [callbacks.EpochMetricsLogger(), interrupt]
        evaluation: list[keras.callbacks.Callback] = []  # called at the start of every validation and of the test
        if cfg.precise_bn_images > 0:
            batches = splits.train_first(cfg.precise_bn_images)
            evaluation.append(PreciseBatchNorm(batches, cfg.precise_bn_images, moments=reuse.moments(model)))
        job_callbacks += [*evaluation, *extra_callbacks]
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
        trained = time.perf_counter()
        curves = _merge_history(state.history if state else [], history.history)
        shared = plan.shared_epochs if plan is not None else 0
        # the epochs not copied from a sibling
        mlflow.log_metric(names.EPOCHS_TRAINED, len(curves.get(names.LOSS, [])) - shared)
        test_metrics: dict[str, float] = {}
        if not model.stop_training:  # stopped early (a pruned trial): never a candidate, so no test
            test = model.evaluate(splits.test, return_dict=True, verbose=0, callbacks=[*evaluation, interrupt])
            test_metrics = {f"test_{key}": float(value) for key, value in test.items()}
            mlflow.log_metrics(test_metrics)
            log.info("Test: %s", ", ".join(f"{key}={value:.4f}" for key, value in test_metrics.items()))
        _log_figures(model, splits, curves, title=active.info.run_name)
        if cfg.save_model:
            _log_model(model, splits)
    _log_overhead(timeline, started=started, trained=trained, ended=time.perf_counter())
    final = {key: values[-1] for key, values in curves.items() if values}
    return JobResult(active.info.run_id, experiment_id, {**final, **test_metrics})


def _log_overhead(timeline: callbacks.Timeline, *, started: float, trained: float, ended: float) -> None:
    """Logs (DEBUG) the job's time before and after its training (`reuse.py` cuts the first).

    Before: from the job's start to the end of its first step. After: from the end of its last epoch (validated) to
    its run's end, with the saving and logging of that epoch, a cost of every epoch, given on its own.
    `python -m alexnet_sweep.bench.overhead` reads this line; all arguments are `time.perf_counter` readings.
    """
    if timeline.first_step_end is None or timeline.last_epoch_end is None:  # no epoch trained (all inherited)
        return
    log.debug("Overhead: %.3f s from the job's start to its first step's end, %.3f s from its last epoch's end to its "
              "run's end (%.3f s of which saving and logging that epoch)", timeline.first_step_end - started,
              ended - timeline.last_epoch_end, trained - timeline.last_epoch_end)  # fmt: skip


def _restore(plan: Plan, model: keras.Model) -> checkpoint.SavedState | None:
    """Loads the state a continued or sharing job starts from, and logs the epochs it inherits.

    A state that Keras refuses although its files looked complete when the job was planned is set aside
    (`checkpoint.set_aside`, with the sibling's own state when sharing), so this attempt fails once and the next
    run of the sweep plans the job afresh: over in a new run, or from a usable sibling's state.

    Raises:
        RuntimeError: If the saved state the plan names is gone or unusable (one line: the file, what is wrong,
            and that the next run of the sweep starts the job over).
    """
    if plan.state_dir is None:
        return None
    state = checkpoint.load(Path(plan.state_dir))  # logs what is wrong with a state it cannot use
    if state is None:
        raise RuntimeError(
            f"the saved state in {plan.state_dir} is gone or unusable; run the sweep again to start over"
        )
    logged = plan.logged_epochs  # a continued run logged some of these epochs itself
    inherited = {names.TAG_CONTINUED_FROM: plan.run_id, names.TAG_SHARED_EPOCHS: str(state.epoch)}
    if plan.action == "share":
        state = checkpoint.start_from(state, Path(plan.checkpoint_dir))
        # Only now: a run killed before its copy of the state exists starts over, without these tags.
        mlflow.set_tags(inherited)
    try:
        checkpoint.restore(model, state)
    except checkpoint.UnusableState as err:
        for directory in {Path(plan.state_dir), state.directory}:
            checkpoint.set_aside(directory)
        if plan.action == "share":  # the next attempt goes on in this run without the sibling's epochs
            for key in inherited:
                mlflow.delete_tag(key)
        raise RuntimeError(f"{err}; set aside, run the sweep again to start this job over") from None
    for epoch, metrics in enumerate(state.history[logged:], start=logged + 1):
        mlflow.log_metrics(metrics, step=epoch)
    log.info("Continuing after epoch %d", state.epoch)
    return state


def _merge_history(earlier: list[dict[str, float]], later: dict[str, list[float]]) -> dict[str, list[float]]:
    """Joins the per-epoch metrics of inherited epochs (a list of dicts) and of this fit (Keras' history)."""
    keys = set(later) | {key for epoch in earlier for key in epoch}
    return {key: [epoch[key] for epoch in earlier if key in epoch] + list(later.get(key, [])) for key in keys}


def _log_inputs(cfg: DictConfig, model: keras.Model) -> None:
    mlflow.log_text(redact(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")  # no credentials of the store
    # What precision=auto chose on this machine.
    tracking.log_params_once({names.PARAM_PRECISION_POLICY: model.dtype_policy.name})
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
