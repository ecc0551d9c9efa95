"""Training state saved after every epoch, so that a job can go on from where it (or a sibling) stopped.

A saved state is a directory holding `state.json` (epochs done, each epoch's Keras metrics, the weights file's
name) and one `epoch-NNNN.weights.h5` (model weights, optimizer state and its iteration counter, as Keras'
`save_weights` writes them). A new weights file is written before `state.json` is atomically replaced, and the
old file is removed only after that, so a process killed at any moment leaves a consistent state behind.

A state damaged anyway (a truncated or foreign weights file, garbage in `state.json`: a full disk, a copy cut
short, a hand edit) is never used: `load` checks both files' structure and reports such a state in one log line
as absent, so the sweep starts that job over; `restore` raises `UnusableState` if Keras still refuses the file
(or would silently skip its optimizer state), and `set_aside` then hides the state from later attempts.

Continuing from epoch k is the same computation as an uninterrupted run because nothing random depends on
history: the data order of epoch e depends only on (seed, e) (`data.Splits.train_epochs`) and so does dropout
(`callbacks.EpochSeeds`). The Keras callbacks that save and reseed are in `alexnet_sweep.callbacks`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py

from alexnet_sweep.errors import first_line

if TYPE_CHECKING:
    import keras


log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SET_ASIDE_SUFFIX = ".unusable"  # state.json renamed by `set_aside`: kept to look at, never loaded
# The groups Keras' `save_weights` writes for a compiled model whose optimizer is built (every saved state's).
WEIGHT_GROUPS = ("layers", "optimizer/vars")


class UnusableState(RuntimeError):
    """A saved state that looked complete but cannot be loaded into the model; the message is one line."""


@dataclass(frozen=True)
class SavedState:
    """A training state on disk: `epoch` epochs done, with the metrics Keras reported for each."""

    directory: Path
    epoch: int
    history: list[dict[str, float]]
    weights: Path


def load(directory: Path) -> SavedState | None:
    """Returns the state saved in `directory`, or None if there is none or it cannot be used.

    A state that cannot be used (unreadable or inconsistent `state.json`, a weights file that is missing,
    truncated, not HDF5 or lacks the model's or the optimizer's variables) is logged as one warning that names
    the file and what is wrong with it. The weights file's structure is checked, not its values: its variables
    are not read.
    """
    directory = Path(directory)
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    state, problem = _read_state(path)
    if state is not None:
        path, problem = state.weights, weights_problem(state.weights)
    if problem is not None:
        log.warning("Ignoring the saved training state in %s: %s is unusable (%s)", directory, path.name, problem)
        return None
    return state


def _read_state(path: Path) -> tuple[SavedState | None, str | None]:
    """Reads and checks a `state.json`: the state, or None and what is wrong with the file."""
    try:
        data = json.loads(path.read_text())
        name, epoch, history = data["weights"], int(data["epoch"]), list(data["history"])
    except (OSError, ValueError, KeyError, TypeError) as err:  # OSError: unreadable; ValueError: not JSON
        return None, f"{type(err).__name__}: {first_line(err)}"
    if not isinstance(name, str) or not name or Path(name).name != name:
        return None, f"names no weights file of its folder: {name!r}"
    if epoch < 1 or len(history) != epoch:
        return None, f"says {epoch} epochs but holds the metrics of {len(history)}"
    if not all(isinstance(metrics, dict) for metrics in history):
        return None, "its history is not a list of per-epoch metrics"
    return SavedState(path.parent, epoch, history, path.parent / name), None


def weights_problem(path: Path) -> str | None:
    """What makes a weights file unusable as a saved state, or None if its structure is complete.

    Checks that the file exists, is HDF5 and whole (HDF5 records the file's end, so a truncated file fails to
    open), holds the groups Keras writes for the model's layers and the optimizer's variables, and that every
    variable's data lies inside the file; reads no variable.

    Args:
        path: An `epoch-*.weights.h5` file written by Keras' `save_weights`.

    Returns:
        A short description of what is wrong, or None.
    """
    if not path.is_file():
        return "missing"
    try:
        with h5py.File(path, "r") as file:
            for group in WEIGHT_GROUPS:
                if not isinstance(file.get(group), h5py.Group):
                    return f"no {group!r} group: not a complete Keras weights file"
            if not len(file["optimizer/vars"]):
                return "no optimizer variables"
            size = file.id.get_filesize()
            datasets: list[tuple[str, h5py.Dataset]] = []
            file.visititems(
                lambda name, item: datasets.append((name, item)) if isinstance(item, h5py.Dataset) else None
            )
            for name, dataset in datasets:
                offset = dataset.id.get_offset()
                stored = dataset.id.get_storage_size()
                if dataset.nbytes and (stored < dataset.nbytes or (offset is not None and offset + stored > size)):
                    return f"variable {name!r} is incomplete"
    except (OSError, RuntimeError, KeyError, ValueError) as err:  # what h5py raises for damaged files
        return _hdf5_error(err)
    return None


def _hdf5_error(err: Exception) -> str:
    message = first_line(err)
    truncated = re.search(r"truncated file: eof = (\d+),.*stored_eof = (\d+)", message)
    if truncated:
        return f"truncated: {truncated[1]} of {truncated[2]} bytes"
    if "file signature not found" in message:
        return "not an HDF5 file"
    return f"cannot be read as HDF5: {message}"


def restore(model: keras.Model, state: SavedState) -> None:
    """Loads a saved state's weights and optimizer state into a compiled model of the same config.

    Raises:
        UnusableState: If Keras cannot load the file, or would skip the optimizer's state (Keras only warns when
            the file's optimizer variables do not match the model's and leaves them as they are).
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # creates the slots the file has values for
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(state.weights)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise UnusableState(f"{state.weights} cannot be loaded: {type(err).__name__}: {first_line(err)}") from None
    for warning in caught:
        if "Skipping variable loading" in str(warning.message):
            raise UnusableState(f"{state.weights} cannot be loaded: {first_line(warning.message)}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def set_aside(directory: Path) -> None:
    """Makes a saved state invisible to `load` (its `state.json` renamed), so later attempts start over.

    The files stay, to be looked at, until the run's checkpoint folder is removed.
    """
    path = Path(directory) / STATE_FILE
    if path.is_file():
        os.replace(path, path.with_name(STATE_FILE + SET_ASIDE_SUFFIX))


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
