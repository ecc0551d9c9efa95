"""Who runs a sweep (claims on a grid) and what a resume does with deleted runs: no training, a store per test."""

import json
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names, tracking, tracking_store
from alexnet_sweep.plan import identity_tags
from alexnet_sweep.sweep import ownership
from alexnet_sweep.sweep import parent as sweep_parent
from alexnet_sweep.sweep.planning import plan_jobs


@pytest.fixture
def experiment(store):
    client = tracking_store.connect(store)
    return client, tracking_store.get_or_create_experiment(client, "smoke")


def claim_of(client, experiment_id, process, renewed, name="other"):
    value = json.dumps({"process": process, "renewed": renewed})
    client.set_experiment_tag(experiment_id, f"{names.CLAIM_PREFIX}g.{name}", value)


def claims(client, experiment_id):
    return {key for key in client.get_experiment(experiment_id).tags if key.startswith(names.CLAIM_PREFIX)}


def a_dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_live_claim_on_the_grid_refuses_a_second_sweep_in_one_line(experiment):
    client, experiment_id = experiment
    claim_of(client, experiment_id, "elsewhere:123", time.time() - 20)  # another machine, renewed 20 s ago
    with pytest.raises(ownership.SweepBusy) as caught:
        ownership.GridClaim(client, experiment_id, "g")
    assert str(caught.value).startswith("another sweep of this grid is running (process elsewhere:123, alive 20 s")
    assert claims(client, experiment_id) == {f"{names.CLAIM_PREFIX}g.other"}, "the refused claim is withdrawn"


@pytest.mark.parametrize(
    "owner",
    [
        pytest.param(lambda: (f"{ownership.socket.gethostname()}:{a_dead_pid()}", time.time()), id="dead-here"),
        pytest.param(lambda: ("elsewhere:123", time.time() - ownership.ALIVE_S - 1), id="silent-elsewhere"),
    ],
)
def test_a_claim_whose_process_is_gone_is_taken_over_and_cleared(experiment, owner):
    client, experiment_id = experiment
    claim_of(client, experiment_id, *owner())
    mine = ownership.GridClaim(client, experiment_id, "g")
    assert claims(client, experiment_id) == {mine.key}
    mine.release()
    assert claims(client, experiment_id) == set()


def test_claims_on_other_grids_do_not_interfere(experiment):
    client, experiment_id = experiment
    first = ownership.GridClaim(client, experiment_id, "g")
    other = ownership.GridClaim(client, experiment_id, "h")
    with pytest.raises(ownership.SweepBusy):
        ownership.GridClaim(client, experiment_id, "g")
    first.release(), other.release()


def test_resume_after_the_parent_was_deleted_leaves_no_active_child_nor_saved_state(experiment, tmp_path):
    client, experiment_id = experiment
    old = sweep_parent.open_parent(client, experiment_id, grid="g", resume=True, overrides=[], sweep_dir=tmp_path)
    saved = tmp_path / "checkpoints" / old / "job"
    saved.mkdir(parents=True)
    (saved / "epoch-0001.weights.h5").write_bytes(b"weights")
    tags = {MLFLOW_PARENT_RUN_ID: old, names.TAG_CHECKPOINT: str(saved)}
    killed = client.create_run(experiment_id, tags=tags).info.run_id
    client.set_terminated(killed, "KILLED")
    client.delete_run(old)  # in the MLflow UI

    new = sweep_parent.open_parent(client, experiment_id, grid="g", resume=True, overrides=[], sweep_dir=tmp_path)
    assert new != old
    assert client.get_run(killed).info.lifecycle_stage == "deleted", "no orphaned active child"
    assert not saved.exists(), "its saved state is not left behind"
    active = tracking.search_all_runs(client, [experiment_id])
    assert [run.info.run_id for run in active] == [new]


def test_a_deleted_child_loses_its_saved_state_and_its_parent_goes_on(experiment, tmp_path):
    client, experiment_id = experiment
    sweep = sweep_parent.open_parent(client, experiment_id, grid="g", resume=True, overrides=[], sweep_dir=tmp_path)
    client.set_terminated(sweep, "KILLED")
    saved = tmp_path / "state"
    saved.mkdir()
    child = client.create_run(experiment_id, tags={MLFLOW_PARENT_RUN_ID: sweep, names.TAG_CHECKPOINT: str(saved)})
    client.delete_run(child.info.run_id)
    again = sweep_parent.open_parent(client, experiment_id, grid="g", resume=True, overrides=[], sweep_dir=tmp_path)
    assert again == sweep and not saved.exists()
    assert len(client.search_runs([experiment_id], run_view_type=ViewType.ALL)) == 2


OPEN_THE_STORE = """
import sys, time
from alexnet_sweep import tracking_store
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
client = tracking_store.connect(f"sqlite:///{sys.argv[1]}")
print(tracking_store.get_or_create_experiment(client, "smoke"))
"""


@pytest.mark.slow  # four Python processes importing MLflow
def test_processes_opening_one_new_store_at_once_all_succeed_with_one_experiment(tmp_path):
    # Without the lock, 3 of 4 processes failed here with "table ... already exists" (and the file could break).
    start = time.time() + 5  # all four have imported MLflow by then
    db = tmp_path / "mlflow.db"
    processes = [
        subprocess.Popen([sys.executable, "-c", OPEN_THE_STORE, str(db), str(start)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    assert len({output.strip().splitlines()[-1] for output in outputs}) == 1, "one experiment, the same id for all"
    assert [e.name for e in MlflowClient(f"sqlite:///{db}").search_experiments()] == ["smoke", "Default"]


def test_a_diverged_config_is_not_trained_again_on_resume(experiment, tmp_path):
    client, experiment_id = experiment
    params = {"optimizer.lr": "1e+38", "epochs": "3"}
    tags = {**identity_tags(params), names.TAG_ERROR: f"{names.DIVERGED} 1"}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    client.set_terminated(run_id, "FAILED")
    [plan] = plan_jobs(client, experiment_id, [params], parent_run_id="p", resume=True, checkpoint_root=tmp_path)
    assert (plan.action, plan.run_id, plan.run_status) == ("skip", run_id, "FAILED")
    assert "diverged with this config" in plan.describe()
