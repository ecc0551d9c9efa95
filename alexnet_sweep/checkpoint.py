"""Training state saved after every epoch, so that a job can go on from where it (or a sibling) stopped.

A saved state is a directory holding `state.json` (epochs done, each epoch's Keras metrics, the weights file's
name) and one `epoch-NNNN.weights.h5` (model weights, optimizer state and its iteration counter, as Keras'
`save_weights` writes them). A new weights file is written before `state.json` is atomically replaced, and the
old file is removed only after that, so a process killed at any moment leaves a consistent state behind.

Continuing from epoch k is the same computation as an uninterrupted run because nothing random depends on
history: the data order of epoch e depends only on (seed, e) (`data.Splits.train_epochs`) and so does dropout
(`callbacks.EpochSeeds`). The Keras callbacks that save and reseed are in `alexnet_sweep.callbacks`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


log = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass(frozen=True)
class SavedState:
    """A training state on disk: `epoch` epochs done, with the metrics Keras reported for each."""

    directory: Path
    epoch: int
    history: list[dict[str, float]]
    weights: Path


def load(directory: Path) -> SavedState | None:
    """Returns the state saved in `directory`, or None if there is none (or its weights file is gone)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        weights = Path(directory) / data["weights"]
        state = SavedState(Path(directory), int(data["epoch"]), list(data["history"]), weights)
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("Ignoring the unreadable training state in %s: %s", directory, err)
        return None
    if not weights.is_file():
        log.warning("Ignoring the training state in %s: %s is missing", directory, weights.name)
        return None
    return state


def restore(model: keras.Model, state: SavedState) -> None:
    """Loads a saved state's weights and optimizer state into a compiled model of the same config."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # creates the slots the file has values for
    model.load_weights(state.weights)


def start_from(source: SavedState, directory: Path) -> SavedState:
    """Makes `directory` hold a copy of another run's state (a hard link where possible: files never change)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.weights.name
    if not target.exists():
        try:
            os.link(source.weights, target)
        except OSError:
            shutil.copyfile(source.weights, target)
    write_state(directory, source.epoch, source.history, target.name)
    return SavedState(directory, source.epoch, list(source.history), target)


def remove(directory: Path) -> None:
    """Deletes a run's saved states (a finished run no longer needs them)."""
    shutil.rmtree(directory, ignore_errors=True)


def write_state(directory: Path, epoch: int, history: list[dict[str, float]], weights_name: str) -> None:
    """Records that `weights_name` (already written in `directory`) holds the state after `epoch` epochs."""
    _sync(directory / weights_name)  # on disk before state.json names it, even if the machine goes down
    temporary = directory / f"{STATE_FILE}.tmp"
    temporary.write_text(json.dumps({"epoch": epoch, "weights": weights_name, "history": history}, indent=1))
    _sync(temporary)
    os.replace(temporary, directory / STATE_FILE)


def _sync(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())
