"""The job's Keras optimizer, built from the `optimizer` config group."""

from __future__ import annotations

import keras
from omegaconf import DictConfig

from alexnet_sweep.errors import UserInputError

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def build_optimizer(optimizer: DictConfig) -> keras.optimizers.Optimizer:
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
