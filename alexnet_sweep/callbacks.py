"""The Keras callbacks of a job: per-epoch MLflow metrics, the saved training state, per-epoch dropout seeds."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np

from alexnet_sweep import checkpoint
from alexnet_sweep.checkpoint import SavedState


class EpochMetricsLogger(keras.callbacks.Callback):
    """Logs Keras' epoch metrics to the active MLflow run with step = epoch number (1-based).

    MLflow's own `mlflow.keras.MlflowCallback` counts epochs from 0 and logs the optimizer's settings as extra
    params that duplicate the config's, hence this five-line version.
    """

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        if logs:
            mlflow.log_metrics({key: float(value) for key, value in logs.items()}, step=epoch + 1)


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
