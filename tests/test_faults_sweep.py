"""Faults a sweep must survive cleanly: a second identical sweep, signals between jobs, during the cleanup, and in
a single run. Real `python -m alexnet_sweep` subprocesses on tiny jobs.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from tests.conftest import TINY, run_cli
from tests.test_cli import split_runs

pytestmark = pytest.mark.slow


def start(args, cwd, script=None):
    """Starts the CLI (or a script that patches it, then calls it) with unbuffered output."""
    command = [sys.executable, script] if script else [sys.executable, "-m", "alexnet_sweep"]
    return subprocess.Popen([*command, *args], cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def read_until(process, text, timeout=180):
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline and process.poll() is None:
        seen += process.stdout.readline()
    assert text in seen, seen[-3000:]
    return seen


def test_a_second_identical_sweep_refuses_while_the_first_runs(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "-m",
        "optimizer.lr=1e-3",
        *TINY,
        "epochs=50",
        f"dataset.data_dir={tfds_dir}",
        f"mlflow.tracking_uri={store}",
    ]
    first = start(args, tmp_path)
    seen = read_until(first, "Epoch 2/50")
    second = run_cli(*args, cwd=tmp_path)
    output = second.stdout + second.stderr
    assert second.returncode == 1, output[-3000:]
    assert "another sweep of this grid is running (process " in output and "Traceback" not in output
    first.send_signal(signal.SIGTERM)
    seen += first.communicate(timeout=120)[0]
    assert first.returncode == 130, seen[-3000:]
    [parent], [child] = split_runs(store)  # the second sweep recorded nothing and took nothing over
    assert (parent.info.status, child.info.status) == ("KILLED", "KILLED")
    steps = [m.step for m in MlflowClient(store).get_metric_history(child.info.run_id, "loss")]
    assert steps == sorted(set(steps)), "no epoch logged twice"


def test_two_identical_sweeps_started_together_train_each_grid_point_once(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a fresh store: both processes create it at once
    args = ["-m", "optimizer.lr=1e-3,1e-4", *TINY, "epochs=3", f"dataset.data_dir={tfds_dir}",
            f"mlflow.tracking_uri={store}"]  # fmt: skip
    sweeps = [start(args, tmp_path), start(args, tmp_path)]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    codes = sorted(sweep.returncode for sweep in sweeps)
    assert codes in ([0, 0], [0, 1]), outputs  # refused while the other ran, or (if it came late) skipped all
    assert all("Traceback" not in output and "already exists" not in output for output in outputs)
    [parent], children = split_runs(store)
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.params["optimizer.lr"] for c in children) == ["0.0001", "0.001"], "each point once"


STOP_AFTER_FIRST_JOB = """
import os
import signal

from hydra.experimental.callback import Callback


class StopAfterFirstJob(Callback):
    def on_job_end(self, config, job_return, **kwargs):
        if config.hydra.job.num == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # lands between two jobs, in Hydra's code
"""


def test_sigterm_between_two_jobs_ends_the_sweep_killed_with_its_summary(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "stop.py").write_text(STOP_AFTER_FIRST_JOB)
    result = run_cli(
        "-m", "optimizer.lr=1e-3,1e-4", *TINY, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}",
        "+hydra.callbacks.stop._target_=stop.StopAfterFirstJob", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 130, output[-3000:]
    assert "Sweep interrupted: 1/2 jobs finished" in result.stdout and "NOT STARTED" in result.stdout
    assert "Traceback" not in output
    [parent], [child] = split_runs(store)
    assert (parent.info.status, child.info.status) == ("KILLED", "FINISHED")


SIGNALS_DURING_THE_CLEANUP = """
import os
import signal
import time

from alexnet_sweep import report
from alexnet_sweep.__main__ import cli

write_report = report.write_report


def interrupted_twice(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGINT)
    return write_report(*args, **kwargs)


report.write_report = interrupted_twice
cli()
"""


def test_two_signals_during_the_cleanup_wait_for_it(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "twice.py").write_text(SIGNALS_DURING_THE_CLEANUP)
    args = ["-m", "optimizer.lr=1e-3", *TINY, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]
    sweep = start(args, tmp_path, script="twice.py")
    output = sweep.communicate(timeout=300)[0]
    assert sweep.returncode == 130, output[-3000:]
    assert "Stopping: the sweep first records how its runs ended" in output and "Traceback" not in output
    assert "Sweep done: 1/1 jobs finished" in output and "Report: " in output
    [parent], [child] = split_runs(store)
    assert (parent.info.status, child.info.status) == ("FINISHED", "FINISHED"), "every job had ended"


def test_sigterm_in_a_single_run_ends_it_killed_in_one_line(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = start([*TINY, "epochs=50", f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"], tmp_path)
    seen = read_until(run, "Epoch 2/50")
    run.send_signal(signal.SIGTERM)
    seen += run.communicate(timeout=120)[0]
    assert run.returncode == 130, seen[-3000:]
    assert "Interrupted (Ctrl-C or SIGTERM)" in seen and "Traceback" not in seen
    [single], children = split_runs(store)
    assert single.info.status == "KILLED" and children == []


READ_ONLY_AFTER_FIRST_JOB = """
import os

from hydra.experimental.callback import Callback


class ReadOnlyStore(Callback):
    def __init__(self, folder):
        self.folder = folder

    def on_job_end(self, config, job_return, **kwargs):
        if config.hydra.job.num == 0:  # the database and its folder (no journal file can be made) turn read-only
            for name in os.listdir(self.folder):
                os.chmod(os.path.join(self.folder, name), 0o444)
            os.chmod(self.folder, 0o555)
"""


def test_a_store_turning_read_only_mid_sweep_is_named_and_the_rerun_ends_it(tmp_path, tfds_dir):
    folder = tmp_path / "store"
    folder.mkdir()
    store = f"sqlite:///{folder / 'mlflow.db'}"
    (tmp_path / "readonly.py").write_text(READ_ONLY_AFTER_FIRST_JOB)
    args = ["-m", "optimizer.lr=1e-3,1e-4,5e-5", *TINY, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]
    # As root, permissions would not stop the process: it runs without the capability to override them.
    unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all", "--",
                    sys.executable, "-m", "alexnet_sweep"]  # fmt: skip
    callback = ["+hydra.callbacks.ro._target_=readonly.ReadOnlyStore", f"+hydra.callbacks.ro.folder={folder}"]
    broken = subprocess.run(
        [*unprivileged, *args, *callback],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = broken.stdout + broken.stderr
    assert broken.returncode == 1, output[-3000:]
    assert "Sweep done: 1/3 jobs finished" in broken.stdout
    assert broken.stdout.count("cause: OperationalError: attempt to write a readonly database") == 2
    assert "The store refused ending the parent run (OperationalError: attempt to write a readonly database)" in output
    assert "Traceback" not in output and "autoflush" not in output

    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    [parent], children = split_runs(store)
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert all(child.info.status == "FINISHED" for child in children)


def test_a_single_run_that_diverges_fails_in_one_line(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(*TINY, "optimizer.lr=1e38", "precision=float32", f"dataset.data_dir={tfds_dir}",
                     f"mlflow.tracking_uri={store}", cwd=tmp_path)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "The run failed: diverged at epoch 1" in output and "Traceback" not in output
    [run], _ = split_runs(store)
    assert run.info.status == "FAILED"
