"""An experiment with more runs than one page of an MLflow search (1,000): resume, summary and report see them all."""

import shutil
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names, report, tracking
from alexnet_sweep.plan import identity, identity_tags
from alexnet_sweep.sweep import parent as sweep_parent
from alexnet_sweep.sweep.planning import plan_jobs
from alexnet_sweep.sweep.summary import row

pytestmark = pytest.mark.slow  # 3,600 writes to build the store

RUNS = 1_210


@pytest.fixture(scope="module")
def big_sweep():
    """A parent run with 1,210 FINISHED job runs, made through MlflowClient (no training)."""
    # On tmpfs where there is one: SQLite syncs each of the 3,600 writes to disk, minutes on a busy CI disk.
    folder = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment_id = client.create_experiment("big")
    parent_run_id = client.create_run(experiment_id, tags={names.TAG_GRID: "big"}).info.run_id
    jobs = [{"seed": str(seed), "epochs": "1", "optimizer.lr": "0.001"} for seed in range(RUNS)]
    for num, params in enumerate(jobs):
        tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, names.TAG_JOB_NUM: str(num),
                names.TAG_OVERRIDES: f"seed={params['seed']}", **identity_tags(params)}  # fmt: skip
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(names.VAL_ACCURACY, (num % 97) / 97, 0, 1), Metric(names.TEST_ACCURACY, 0.5, 0, 1)],
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(names.TAG_MODEL, "alexnet8")],
        )
        client.set_terminated(run_id)
    yield client, experiment_id, parent_run_id, jobs
    shutil.rmtree(folder, ignore_errors=True)


def test_resume_skips_every_finished_run(big_sweep, tmp_path):
    client, experiment_id, parent_run_id, jobs = big_sweep
    plans = plan_jobs(client, experiment_id, jobs, parent_run_id=parent_run_id, resume=True,
                      checkpoint_root=tmp_path)  # fmt: skip
    assert [plan.action for plan in plans] == ["skip"] * RUNS
    assert len({plan.run_id for plan in plans}) == RUNS, "each job skips for its own run"


def test_the_summary_counts_every_run(big_sweep):
    client, _, parent_run_id, jobs = big_sweep
    runs = sweep_parent.runs_by_config(client, parent_run_id)
    rows = [row(f"seed={params['seed']}", runs.get(identity(params)), None, "missing") for params in jobs]
    assert sum(r.status == "FINISHED" for r in rows) == RUNS
    assert len(tracking.child_runs(client, client.get_run(parent_run_id))) == RUNS


def test_the_report_counts_every_run(big_sweep, tmp_path):
    client, _, parent_run_id, _ = big_sweep
    written = report.write_report(client, parent_run_id, tmp_path)
    assert len(written.sweep.runs) == RUNS
    assert sum(1 for _ in (tmp_path / "runs.csv").open()) == RUNS + 1, "a header and one row per run"
