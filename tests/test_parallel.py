"""Sweeps run by parallel launchers (joblib, a local Ray instance) into one fresh store, and jobs that die hard."""

import pytest

from alexnet_sweep import names
from tests.conftest import TINY, run_cli
from tests.test_cli import split_runs

pytestmark = pytest.mark.slow

GRID = ["-m", "seed=1,2,3,4,5", *TINY]

# Injected through Hydra's callbacks, which run in each job's process: `os._exit` inside `fit` of one job, so the
# process dies with its MLflow run RUNNING, as under the out-of-memory killer; no handler of ours runs.
CRASH = """
import os

from hydra.experimental.callback import Callback


class DieInFit(Callback):
    def __init__(self, seed):
        self.seed = seed

    def on_job_start(self, config, **kwargs):
        if config.seed == self.seed:
            import keras

            keras.Model.fit = lambda *args, **kwargs: os._exit(9)
"""


def sweep(tmp_path, tfds_dir, *args, crash_seed=None):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    extra = [f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]
    env = None
    if crash_seed is not None:
        (tmp_path / "crash.py").write_text(CRASH)
        extra += ["+hydra.callbacks.crash._target_=crash.DieInFit", f"+hydra.callbacks.crash.seed={crash_seed}"]
        env = {"PYTHONPATH": str(tmp_path)}
    return run_cli(*GRID, *args, *extra, cwd=tmp_path, env=env), store


def check_one_sweep(store, finished):
    """One parent in experiment `smoke`, 5 children under it: the seeds in `finished` FINISHED, the rest FAILED."""
    [parent], children = split_runs(store)
    experiments = {run.info.experiment_id for run in [parent, *children]}
    assert len(experiments) == 1, "every run in the sweep's experiment"
    assert len(children) == 5
    status = {int(child.data.params["seed"]): child.info.status for child in children}
    assert status == {seed: "FINISHED" if seed in finished else "FAILED" for seed in range(1, 6)}
    assert {child.data.tags["mlflow.parentRunId"] for child in children} == {parent.info.run_id}
    return parent, children


def test_joblib_two_at_a_time_into_a_fresh_store(tmp_path, tfds_dir):
    # The store and the experiment are created by the sweep's process before any job starts, so parallel jobs never
    # race to create MLflow's tables (which on a fresh SQLite file lost runs and broke the file).
    result, store = sweep(tmp_path, tfds_dir, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_one_sweep(store, finished=range(1, 6))
    assert parent.info.status == "FINISHED"
    expected = {*names.EPOCH_METRICS, names.TEST_LOSS, names.TEST_ACCURACY, names.EPOCHS_TRAINED}
    assert all(set(child.data.metrics) == expected for child in children), "curves and test metrics"
    assert len({child.data.tags[names.TAG_PROCESS] for child in children}) == 2, "two worker processes"
    assert "Sweep done: 5/5 jobs finished" in result.stdout


def test_a_job_dying_under_joblib_is_recorded_and_the_sweep_still_ends_with_its_summary(tmp_path, tfds_dir):
    result, store = sweep(tmp_path, tfds_dir, "hydra/launcher=joblib", crash_seed=3)
    assert result.returncode == 1, result.stderr[-3000:]
    [parent], children = split_runs(store)
    assert parent.info.status == "FAILED"
    assert not [child for child in children if child.info.status == "RUNNING"], "no child left RUNNING"
    died = [child for child in children if child.data.params["seed"] == "3"]
    assert [child.info.status for child in died] == ["FAILED"]
    assert died[0].data.tags["error"] == (
        "the launcher lost its jobs (TerminatedWorkerError: A worker process managed by the executor was "
        "unexpectedly terminated)"
    )
    assert "Sweep done:" in result.stdout and "Traceback" not in result.stdout + result.stderr
    # joblib drops the jobs it had not started with the batch: each is listed with the cause, none is silent.
    assert result.stdout.count("NOT STARTED") + len(children) == 5
    # (Resuming after a crash: test_ray_local_into_a_fresh_store_others_finish_when_one_dies.)


def test_ray_local_into_a_fresh_store_others_finish_when_one_dies(tmp_path, tfds_dir):
    result, store = sweep(tmp_path, tfds_dir, "hydra/launcher=ray_local", crash_seed=3)
    assert result.returncode == 1, result.stderr[-3000:]
    parent, children = check_one_sweep(store, finished={1, 2, 4, 5})
    assert parent.info.status == "FAILED"
    [died] = [child for child in children if child.info.status == "FAILED"]
    assert died.data.tags["error"].startswith("its Ray task failed (WorkerCrashedError: ")
    assert "Sweep done: 4/5 jobs finished" in result.stdout
    assert len({child.data.tags[names.TAG_PROCESS] for child in children}) > 1, "Ray ran them in worker processes"

    again, _ = sweep(tmp_path, tfds_dir, "hydra/launcher=ray_local")
    assert again.returncode == 0, again.stderr[-3000:]
    parent, _ = check_one_sweep(store, finished=range(1, 6))
    assert parent.info.status == "FINISHED"


def test_ray_local_fails_fast_when_no_node_has_the_gpus_asked_for(tmp_path, tfds_dir):
    result, store = sweep(tmp_path, tfds_dir, "hydra/launcher=ray_local", "hydra.launcher.ray.remote.num_gpus=1")
    assert result.returncode == 2
    assert "hydra.launcher.ray.remote.num_gpus=1: no node of the Ray cluster has that many GPUs" in result.stdout
    assert not (tmp_path / "mlflow.db").exists(), "nothing recorded"
