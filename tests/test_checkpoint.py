"""Saved training states: a damaged one is detected in one log line and never used (no training here)."""

import json
import logging
import os
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from keras import layers

from alexnet_sweep import checkpoint

WEIGHTS = "epoch-0002.weights.h5"
HISTORY = [{"loss": 2.0, "val_loss": 2.1}, {"loss": 1.5, "val_loss": 1.7}]


def tiny_model(seed: int = 0) -> keras.Model:
    """A compiled model with Adam's slots built, as a job's model is when it saves its state."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dropout(0.5), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.fixture
def saved(tmp_path) -> Path:
    """A state folder as a job leaves it after 2 epochs; the model it holds has its optimizer at iteration 7."""
    model = tiny_model()
    model.optimizer.iterations.assign(7)
    model.save_weights(tmp_path / WEIGHTS)
    checkpoint.write_state(tmp_path, 2, HISTORY, WEIGHTS)
    return tmp_path


def test_an_intact_state_loads_and_restores(saved):
    state = checkpoint.load(saved)
    assert (state.epoch, state.history, state.weights) == (2, HISTORY, saved / WEIGHTS)
    model = tiny_model(seed=1)
    checkpoint.restore(model, state)
    assert int(model.optimizer.iterations.numpy()) == 7
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), tiny_model().layers[0].kernel.numpy())


def truncate(folder: Path) -> None:
    with open(folder / WEIGHTS, "r+b") as file:
        file.truncate(os.path.getsize(folder / WEIGHTS) // 2)


def delete_group(group: str):
    def damage(folder: Path) -> None:
        with h5py.File(folder / WEIGHTS, "r+") as file:
            del file[group]

    return damage


def empty_optimizer(folder: Path) -> None:
    with h5py.File(folder / WEIGHTS, "r+") as file:
        for name in list(file["optimizer/vars"]):
            del file["optimizer/vars"][name]


def write(name: str, content: str | bytes):
    def damage(folder: Path) -> None:
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())

    return damage


def state_json(**changes):
    return write(checkpoint.STATE_FILE, json.dumps({"epoch": 2, "weights": WEIGHTS, "history": HISTORY} | changes))


DAMAGE = {  # name -> (damage, the file the warning names, what it says is wrong)
    "truncated weights": (truncate, WEIGHTS, "truncated: "),
    "weights not HDF5": (write(WEIGHTS, b"\0" * 4096), WEIGHTS, "not an HDF5 file"),
    "empty weights file": (write(WEIGHTS, b""), WEIGHTS, "not an HDF5 file"),
    "no optimizer group": (delete_group("optimizer"), WEIGHTS, "no 'optimizer/vars' group"),
    "no layers group": (delete_group("layers"), WEIGHTS, "no 'layers' group"),
    "no optimizer variables": (empty_optimizer, WEIGHTS, "no optimizer variables"),
    "weights missing": (lambda folder: (folder / WEIGHTS).unlink(), WEIGHTS, "missing"),
    "state.json garbage": (write(checkpoint.STATE_FILE, b"\x89garbage\xff"), "state.json", "UnicodeDecodeError"),
    "state.json cut short": (write(checkpoint.STATE_FILE, '{"epoch": 2, "weig'), "state.json", "JSONDecodeError"),
    "state.json not an object": (write(checkpoint.STATE_FILE, "[2]"), "state.json", "TypeError"),
    "state.json without epoch": (write(checkpoint.STATE_FILE, "{}"), "state.json", "KeyError"),
    "history too short": (state_json(history=HISTORY[:1]), "state.json", "says 2 epochs but holds the metrics of 1"),
    "history not metrics": (state_json(history=[1, 2]), "state.json", "not a list of per-epoch metrics"),
    "weights outside": (state_json(weights="../x.h5"), "state.json", "names no weights file of its folder"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_state_is_ignored_with_one_line_naming_the_file_and_the_fault(saved, damage, caplog):
    make_damage, file_name, problem = DAMAGE[damage]
    make_damage(saved)
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        assert checkpoint.load(saved) is None
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message and f"{file_name} is unusable (" in message and problem in message, message
    assert str(saved) in message


def test_no_state_at_all_is_silent(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(tmp_path / "never") is None and checkpoint.load(tmp_path) is None
    assert not caplog.records


def remove_variable(name: str):
    def damage(folder: Path) -> None:
        with h5py.File(folder / WEIGHTS, "r+") as file:
            del file[name]

    return damage


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        # Keras only warns about an optimizer state that does not fit, and leaves Adam's slots at zero.
        (remove_variable("optimizer/vars/3"), "Skipping variable loading for optimizer"),
        (remove_variable("layers/dense/vars/1"), "ValueError"),
    ],
    ids=["an optimizer variable missing", "a layer variable missing"],
)
def test_a_state_keras_refuses_raises_unusable_state(saved, damage, cause):
    damage(saved)
    state = checkpoint.load(saved)
    assert state is not None, "the structure looks complete: only loading it into the model tells"
    with pytest.raises(checkpoint.UnusableState) as raised:
        checkpoint.restore(tiny_model(), state)
    message = str(raised.value)
    assert message.startswith(f"{saved / WEIGHTS} cannot be loaded: ") and cause in message and "\n" not in message


def test_a_state_set_aside_is_no_longer_loaded(saved):
    checkpoint.set_aside(saved)
    assert checkpoint.load(saved) is None
    assert (saved / WEIGHTS).is_file() and (saved / (checkpoint.STATE_FILE + checkpoint.SET_ASIDE_SUFFIX)).is_file()
    checkpoint.set_aside(saved)  # nothing left to set aside: no error
