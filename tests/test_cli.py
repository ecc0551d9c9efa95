"""The command line as a user runs it: real `python -m alexnet_sweep` subprocesses."""

import itertools
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tests.conftest import TINY, all_runs, run_cli

pytestmark = pytest.mark.slow


def split_runs(store):
    runs = all_runs(store)
    parents = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    children = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags]
    return parents, children


def test_smoke_sweep_gives_one_parent_and_six_finished_children(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(
        "-m", "optimizer.lr=1e-3,1e-4,5e-5", "epochs=1,2", "experiment=smoke",
        f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    [parent], children = split_runs(store)
    assert parent.info.status == "FINISHED"
    assert len(children) == 6
    assert all(child.info.status == "FINISHED" for child in children)
    assert all(child.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id for child in children)
    grid = {(child.data.params["optimizer.lr"], child.data.params["epochs"]) for child in children}
    assert grid == set(itertools.product(["0.001", "0.0001", "5e-05"], ["1", "2"]))
    assert all("test_accuracy" in child.data.metrics for child in children)

    # Same seed, same data order and weights wherever a job sits in the sweep: the epochs=2 job's first epoch
    # repeats the epochs=1 job's exactly.
    first_epoch = {}
    for child in children:
        history = MlflowClient(store).get_metric_history(child.info.run_id, "loss")
        first_epoch.setdefault(child.data.params["optimizer.lr"], set()).add(history[0].value)
    assert all(len(losses) == 1 for losses in first_epoch.values()), first_epoch

    log = result.stdout + result.stderr
    assert [int(k) for k in re.findall(r"\[(\d)/6\] optimizer", log)] == [1, 2, 3, 4, 5, 6]
    estimates = re.findall(r"\[\d/6\] optimizer.*\(elapsed [0-9hms]+(, about [0-9hms]+ left)?\)", log)
    assert len(estimates) == 6 and estimates[0] == "", "nothing to estimate from before a job has ended"
    assert all(estimates[1:]), "then an estimate from the jobs that trained (its arithmetic: test_sweep.py)"
    assert "Sweep done: 6/6 jobs finished" in result.stdout
    table = result.stdout[result.stdout.index("Sweep done") :]
    assert len(re.findall(r"optimizer\.lr=\S+ epochs=\d\s+FINISHED\s+\d\.\d{4}\s+\d\.\d{4}", table)) == 6
    assert "mlflow ui --backend-store-uri" in table
    assert list((tmp_path / "multirun").glob("*/*/mlflow_sweep.json"))

    # The comparison report: in the sweep dir and on the parent run, with the best child by val_accuracy.
    [report_dir] = (tmp_path / "multirun").glob("*/*/report")
    assert {"report.md", "runs.csv", "test_accuracy_heatmap.png"} <= {path.name for path in report_dir.iterdir()}
    assert f"Report: {report_dir.relative_to(tmp_path)}/report.md" in table
    client = MlflowClient(store)
    parent = client.get_run(parent.info.run_id)
    best = max(children, key=lambda child: child.data.metrics["val_accuracy"])
    assert parent.data.metrics["best.val_accuracy"] == best.data.metrics["val_accuracy"]
    assert (
        client.get_run(parent.data.tags["best.run_id"]).data.metrics["val_accuracy"]
        == best.data.metrics["val_accuracy"]
    )
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "## Findings" in (report_dir / "report.md").read_text()


FAULTY_SWEEP = """
import sys

import keras
import tensorflow as tf

from alexnet_sweep.__main__ import cli

fit = keras.Model.fit


def faulty_fit(self, *args, **kwargs):  # faults injected by learning rate
    lr = float(self.optimizer.learning_rate.numpy())
    if abs(lr - 0.0042) < 1e-9:
        sys.exit(3)
    if abs(lr - 0.0043) < 1e-9:
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4096,4096]")
    return fit(self, *args, **kwargs)


keras.Model.fit = faulty_fit
cli()
"""


def test_failing_jobs_never_cost_the_others(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "faulty_sweep.py").write_text(FAULTY_SWEEP)
    result = subprocess.run(
        [sys.executable, "faulty_sweep.py", "-m", "optimizer.lr=1e-3,0.0042,-1,0.0043,1e-4", *TINY,
         f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    [parent], children = split_runs(store)
    status = {child.data.params["optimizer.lr"]: child.info.status for child in children}
    assert status == {"0.001": "FINISHED", "0.0042": "FAILED", "0.0043": "FAILED", "0.0001": "FINISHED"}
    assert parent.info.status == "FAILED"
    client = MlflowClient(store)
    for child in children:
        if child.info.status == "FAILED":
            assert child.data.tags["error"] in ("SystemExit: 3", "ResourceExhaustedError: OOM when allocating tensor "
                                                "with shape[4096,4096]")  # fmt: skip
            traceback = open(client.download_artifacts(child.info.run_id, "error.txt")).read()
            assert traceback.startswith("Traceback") and "faulty_fit" in traceback

    table = result.stdout[result.stdout.index("Sweep done") :]
    assert "Sweep done: 2/5 jobs finished" in table
    assert "optimizer.lr=-1.0: must be a positive number" in table, "bad input: the one-line error, no run"
    assert "cause: SystemExit: 3" in table and "cause: ResourceExhaustedError: OOM when allocating" in table
    assert "Traceback" not in result.stdout + result.stderr
    report = parent.data.tags["sweep.dir"] + "/report/report.md"
    assert "FAILED" in open(report).read(), "the report is written, listing the failed jobs"


@pytest.mark.parametrize(
    ("grid", "named"),
    [
        ("model=alexnet9,alexnet10", "job 2 (model=alexnet10 "),
        ("optimizer.lr=interval(1e-4,1e-3)", "optimizer.lr=interval(1e-4,1e-3): a grid lists values"),
    ],
)
def test_a_grid_hydra_cannot_expand_stops_before_any_job(tmp_path, tfds_dir, grid, named):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("-m", grid, "experiment=smoke", f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}",
                     cwd=tmp_path)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert named in output and "Traceback" not in output and "Epoch 1/" not in output
    assert all_runs(store) == []


def test_a_sweep_records_into_one_experiment(tmp_path, tfds_dir):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("-m", "mlflow.experiment_name=a,b", "experiment=smoke", f"dataset.data_dir={tfds_dir}",
                     f"mlflow.tracking_uri={store}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "mlflow.experiment_name='a': a sweep records into one store and experiment ('smoke' here)" in result.stdout
    assert all_runs(store) == [], "refused before anything is recorded"


def test_jobs_running_in_their_own_directories_record_into_the_sweeps_store(tmp_path, tfds_dir):
    result = run_cli("-m", "optimizer.lr=1e-3,1e-4", *TINY,
                     "hydra.job.chdir=true", f"dataset.data_dir={tfds_dir}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [parent], children = split_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert not list((tmp_path / "multirun").glob("**/mlflow.db")), "no store inside a job directory"


def test_single_job_from_any_directory(tmp_path, tfds_dir):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = run_cli("experiment=smoke", f"dataset.data_dir={tfds_dir}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    parents, children = split_runs(f"sqlite:///{workdir / 'mlflow.db'}")
    assert len(parents) == 1 and not children
    assert (workdir / "mlruns").is_dir(), "artifacts sit beside the embedded store"


BAD_INPUT = [
    ("optimizer.lr=0", "optimizer.lr=0.0"),
    ("optimizer.lr=-1e-3", "optimizer.lr=-0.001"),
    ("optimizer.lr=abc", "optimizer.lr=abc"),
    ("epochs=0", "epochs=0"),
    ("batch_size=0", "batch_size=0"),
    ("model.input_size=64", "model.input_size=64"),
    ("model=alexnet10", "alexnet10"),
    ("dataset=mnist", "mnist"),
    ("optimizer=rmsprop", "rmsprop"),
    ("learning_rate=1e-3", "learning_rate"),
    ("dataset.train_split='train[:zz]'", "dataset.train_split='train[:zz]'"),
    ("dataset.name=no_such_dataset", "dataset.name='no_such_dataset'"),
    ("mlflow.tracking_uri=ftp://host/x", "mlflow.tracking_uri='ftp://host/x': MLflow has no store for 'ftp'"),
    ("mlflow.tracking_uri=http://127.0.0.1:9", "mlflow.tracking_uri='http://127.0.0.1:9': no MLflow server answers"),
    ("seed=-1", "seed=-1"),
    ("model=schema", "model/schema"),
]


@pytest.mark.parametrize(("override", "named"), BAD_INPUT, ids=[o for o, _ in BAD_INPUT])
def test_bad_input_is_a_clear_error_before_anything_runs(tmp_path, tfds_dir, override, named):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(
        "experiment=smoke", f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}", override, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert named in output
    assert "Epoch 1/" not in output
    assert all_runs(store) == []


# SIGTERM takes the same path (cli() maps it to Ctrl-C's handler): test_faults_sweep sends it between two jobs and
# to a single run.
@pytest.mark.parametrize("signum", [signal.SIGINT], ids=["ctrl-c"])
def test_ctrl_c_or_sigterm_ends_the_job_and_the_sweep_killed_with_a_summary(tmp_path, tfds_dir, signum):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "optimizer.lr=1e-3,1e-4", "epochs=50", "experiment=smoke", "model.dense_units=[32,32]"]
    args += [f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "alexnet_sweep", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = ""
    deadline = time.monotonic() + 120
    while "Epoch 2/50" not in seen and time.monotonic() < deadline:
        seen += process.stdout.readline()
    process.send_signal(signum)
    seen += process.communicate(timeout=60)[0]
    assert process.returncode == 130, seen[-3000:]

    [parent], [child] = split_runs(store)
    assert (child.info.status, parent.info.status) == ("KILLED", "KILLED"), seen[-3000:]
    assert child.data.params["optimizer.lr"] == "0.001", "the second job never started"
    assert "Sweep interrupted: 0/2 jobs finished" in seen
    assert re.search(r"optimizer\.lr=0\.001 .*KILLED", seen) and "cause: interrupted" in seen and "NOT STARTED" in seen
    assert "Traceback" not in seen
