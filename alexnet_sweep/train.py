"""One job: validate the config, load data, build the model, fit, evaluate, and record it all in MLflow."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep import plots, tracking
from alexnet_sweep.config import validate
from alexnet_sweep.data import Splits, load_splits
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.interrupt import DeferredInterrupt
from alexnet_sweep.model import build_model

log = logging.getLogger(__name__)

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
PREDICTION_IMAGES = 16


@dataclass(frozen=True)
class JobResult:
    """What a finished job reports: its MLflow run and final metrics (last epoch + test)."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]


def make_optimizer(optimizer: DictConfig) -> keras.optimizers.Optimizer:
    """Builds the Keras optimizer named by `optimizer.name`; its other keys are the optimizer's arguments.

    Raises:
        UserInputError: If Keras rejects an argument (e.g. `optimizer.momentum=2`).
    """
    kwargs = {key: value for key, value in optimizer.items() if key not in ("name", "lr")}
    try:
        return OPTIMIZERS[optimizer.name](learning_rate=optimizer.lr, **kwargs)
    except (ValueError, TypeError) as err:
        settings = " ".join(f"optimizer.{key}={value}" for key, value in kwargs.items())
        raise UserInputError(f"{settings}: Keras rejects them: {err}") from None


def run(cfg: DictConfig, *, parent_run_id: str | None = None, tags: dict[str, str] | None = None) -> JobResult:
    """Trains and evaluates one configuration and records it as one MLflow run.

    Every check of the input (config values, tracking URI, dataset and splits) happens before the run is
    created, so bad input leaves no trace in the store.

    Args:
        cfg: The composed job config (see conf/config.yaml).
        parent_run_id: The sweep's parent run id when the job is part of a multirun.
        tags: Extra MLflow tags, e.g. the Hydra override string.

    Returns:
        The run id and the final metrics.

    Raises:
        UserInputError: On bad input, before anything is trained or recorded.
    """
    validate(cfg)
    client = tracking.connect(cfg.mlflow.tracking_uri)
    experiment_id = tracking.get_or_create_experiment(client, cfg.mlflow.experiment_name)

    keras.backend.clear_session(free_memory=True)  # Hydra's default launcher runs every job in this process
    # Before the data pipeline: tf.data's shuffle order depends on the global seed at the time it is built.
    keras.utils.set_random_seed(cfg.seed)
    optimizer = make_optimizer(cfg.optimizer)
    splits = load_splits(cfg.dataset, batch_size=cfg.batch_size, seed=cfg.seed, image_size=cfg.model.input_size)
    log.info("Data %s: %s", cfg.dataset.name, ", ".join(f"{k.split('_')[0]} {n}" for k, n in splits.sizes.items()))
    model = build_model(
        name=cfg.model.name,
        input_size=cfg.model.input_size,
        dense_units=list(cfg.model.dense_units),
        dropout=cfg.model.dropout,
        bn_momentum=cfg.model.bn_momentum,
        image_shape=splits.image_shape,
        num_classes=len(splits.class_names),
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),  # categorical cross-entropy on integer labels
        metrics=["accuracy"],
    )

    with (
        tracking.job_run(cfg, experiment_id, parent_run_id=parent_run_id, tags=tags) as active,
        DeferredInterrupt() as interrupt,
    ):
        _log_inputs(cfg, model)
        history = model.fit(
            splits.train,
            validation_data=splits.val,
            epochs=cfg.epochs,
            callbacks=[tracking.EpochMetricsLogger(), interrupt],
            shuffle=False,  # the pipeline already shuffles, seeded
            verbose=1 if sys.stdout.isatty() else 2,  # a progress bar on a terminal, one line per epoch in logs
        )
        test = model.evaluate(splits.test, return_dict=True, verbose=0, callbacks=[interrupt])
        test_metrics = {f"test_{key}": float(value) for key, value in test.items()}
        mlflow.log_metrics(test_metrics)
        log.info("Test: %s", ", ".join(f"{key}={value:.4f}" for key, value in test_metrics.items()))
        _log_figures(model, splits, history.history, title=tracking.run_name(cfg))
        if cfg.save_model:
            _log_model(model, splits)
    final = {key: float(values[-1]) for key, values in history.history.items()}
    return JobResult(run_id=active.info.run_id, experiment_id=experiment_id, metrics={**final, **test_metrics})


def _log_inputs(cfg: DictConfig, model: keras.Model) -> None:
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
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
