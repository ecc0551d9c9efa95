"""The Keras callbacks of a job: MLflow metrics, the saved state, dropout seeds per epoch, the end of divergence."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np

from alexnet_sweep import checkpoint, names
from alexnet_sweep.checkpoint import SavedState

log = logging.getLogger(__name__)


def log_epoch_metrics(epoch: int, logs: Mapping[str, float] | None) -> None:
    """Logs Keras' metrics of epoch `epoch` (0-based, as Keras counts) to the active run at step epoch + 1."""
    if logs:
        mlflow.log_metrics({key: float(value) for key, value in logs.items()}, step=epoch + 1)


class EpochMetricsLogger(keras.callbacks.Callback):
    """Logs Keras' epoch metrics to the active MLflow run with step = epoch number (1-based).

    MLflow's own `mlflow.keras.MlflowCallback` counts epochs from 0 and logs the optimizer's settings as extra
    params that duplicate the config's, hence this five-line version.
    """

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        log_epoch_metrics(epoch, logs)


class Diverged(ArithmeticError):
    """Training diverged: its message, `diverged at epoch k`, is the whole cause recorded (no type name)."""

    cause_is_message = True  # tracking.one_line shows the message alone

    def __init__(self, epoch: int) -> None:
        super().__init__(f"{names.DIVERGED} {epoch}")
        self.epoch = epoch


class StopOnDivergence(keras.callbacks.Callback):
    """Ends training at the end of the epoch in which the loss or a metric (train or val) became NaN or infinite.

    A NaN or infinite batch loss stops the epoch at once, as `keras.callbacks.TerminateOnNaN` does: no later batch
    can recover. At the end of that epoch the epoch's metrics are logged to MLflow (the run's curves up to it are
    kept) and `Diverged` is raised, which ends the run FAILED. Place it before `EpochCheckpoint` and
    `EpochMetricsLogger`: the diverged state is never saved, and the epoch is logged once.
    """

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._bad_batch = False

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        loss = (logs or {}).get(names.LOSS)
        if loss is not None and not math.isfinite(float(loss)):
            self._bad_batch = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        bad = [key for key, value in (logs or {}).items() if not math.isfinite(float(value))]
        if not bad and not self._bad_batch:
            return
        what = ", ".join(bad) or "a batch loss"
        log.warning("Epoch %d: %s became NaN or infinite; training stops (diverged)", epoch + 1, what)
        log_epoch_metrics(epoch, logs)
        raise Diverged(epoch + 1)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the training state into `directory` at the end of every epoch.

    Place it before callbacks that record the epoch elsewhere (MLflow): what is recorded is then always part of
    a saved state, and a continued run never logs an epoch twice.
    """

    def __init__(self, directory: Path, initial: SavedState | None = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.history = list(initial.history) if initial else []

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.history.append({key: float(value) for key, value in (logs or {}).items()})
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(self.directory / name)
        checkpoint.write_state(self.directory, epoch + 1, self.history, name)
        for old in self.directory.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink()


class EpochSeeds(keras.callbacks.Callback):
    """Reseeds the model's random layers (dropout) at each epoch start from their initial seeds and the epoch.

    Keras' `save_weights` does not store the state of a layer's seed generator, so without this a continued run
    would draw other dropout masks than an uninterrupted one.
    """

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._generators = [v for v in self.model.non_trainable_variables if v.path.endswith("seed_generator_state")]
        self._initial = [np.array(v.numpy()) for v in self._generators]

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        for variable, initial in zip(self._generators, self._initial, strict=True):
            reseeded = initial.copy()
            reseeded[0] += epoch  # the generator advances the other component, so epochs never share a stream
            variable.assign(reseeded)


class Timeline(keras.callbacks.Callback):
    """Records when the first training step and the last epoch ended (`time.perf_counter`): a job's overhead.

    Place it first: its `on_epoch_end` then runs before the epoch is saved and logged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.first_step_end: float | None = None
        self.last_epoch_end: float | None = None

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.first_step_end is None:
            self.first_step_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.last_epoch_end = time.perf_counter()
