"""Sweeps that break and are run again: SIGKILL mid-job, then the same command resumes the grid."""

import signal
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from alexnet_sweep import names
from tests.conftest import TINY, run_cli
from tests.test_cli import split_runs

pytestmark = pytest.mark.slow

GRID = ["-m", "optimizer.lr=1e-3,1e-4", "epochs=1,3", *TINY]


SIGKILL_IN_EPOCH_3 = """
import os
import signal

import keras

from alexnet_sweep.__main__ import cli

fit = keras.Model.fit


class KillTheProcess(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:  # epochs 1 and 2 are saved and logged: die like a lost machine, no handler runs
            os.kill(os.getpid(), signal.SIGKILL)


def fit_then_die(self, *args, **kwargs):
    if kwargs.get("epochs") == 3 and abs(float(self.optimizer.learning_rate.numpy()) - 1e-3) < 1e-9:
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), KillTheProcess()]
    return fit(self, *args, **kwargs)


keras.Model.fit = fit_then_die
cli()
"""


def test_a_sweep_killed_mid_job_resumes_where_it_stopped(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*GRID, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]
    (tmp_path / "dies.py").write_text(SIGKILL_IN_EPOCH_3)
    killed_sweep = subprocess.run([sys.executable, "dies.py", *args], cwd=tmp_path, capture_output=True, text=True)
    assert killed_sweep.returncode == -signal.SIGKILL, killed_sweep.stderr[-3000:]
    # Jobs run in waves by epochs (the shorter siblings first): the epochs=3 job of lr=1e-3 is the third.
    assert "[3/4]" in killed_sweep.stdout and "[4/4]" not in killed_sweep.stdout
    [parent], children = split_runs(store)
    assert parent.info.status == "RUNNING"
    statuses = sorted((c.data.params["epochs"], c.info.status) for c in children)
    assert statuses == [("1", "FINISHED"), ("1", "FINISHED"), ("3", "RUNNING")]
    client = MlflowClient(store)
    killed = next(c for c in children if c.info.status == "RUNNING")
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "loss")] == [1, 2]

    again = run_cli(*args, cwd=tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    assert f"Resuming the sweep of parent run {parent.info.run_id}" in output
    assert "marked KILLED the 1 runs it left RUNNING" in output
    assert "2 of 4 jobs have a FINISHED run (skipped), 1 continue an unfinished run (from epoch 2), 1 start" in output
    assert f"continues KILLED run {killed.info.run_id} from epoch 2" in output
    assert "Sweep done: 4/4 jobs finished" in output

    [parent_after], children = split_runs(store)
    assert parent_after.info.run_id == parent.info.run_id and parent_after.info.status == "FINISHED"
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    grid = sorted((c.data.params["optimizer.lr"], c.data.params["epochs"]) for c in children)
    assert grid == [("0.0001", "1"), ("0.0001", "3"), ("0.001", "1"), ("0.001", "3")], "each job once"
    for child in children:
        epochs = int(child.data.params["epochs"])
        for key in ("loss", "val_accuracy"):
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == list(range(1, epochs + 1))
    resumed = client.get_run(killed.info.run_id)
    assert resumed.data.metrics["epochs_trained"] == 2, "3 epochs, the first copied from the epochs=1 job"
    assert resumed.data.tags[names.TAG_CONTINUED_FROM] in {c.info.run_id for c in children}
    assert sum(c.data.metrics["epochs_trained"] for c in children) == 1 + 2 + 1 + 2
    assert not list((tmp_path / "checkpoints").glob("*/state.json")), "finished runs' checkpoints are removed"


def test_resume_false_runs_the_whole_grid_again_under_a_new_parent(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "optimizer.lr=1e-3", *TINY,
            f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]  # fmt: skip
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    fresh = run_cli(*args, "resume=false", cwd=tmp_path)
    assert fresh.returncode == 0 and "Job starts" in fresh.stdout + fresh.stderr
    parents, children = split_runs(store)
    assert len(parents) == 2 and len(children) == 2
