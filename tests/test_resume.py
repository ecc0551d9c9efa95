"""Resume and epoch-prefix sharing inside one process: the plans a sweep makes, and jobs that follow them."""

import logging

import h5py
import numpy as np
import pytest
from mlflow import MlflowClient

from alexnet_sweep import callbacks, checkpoint, names, tracking, tracking_store, train
from alexnet_sweep.sweep import parent as sweep_parent
from alexnet_sweep.sweep.planning import plan_jobs, saved_state, share_from_sibling

pytestmark = pytest.mark.slow  # the jobs here train (seconds each)

TINY_MODEL = ["model.dense_units=[32,32]"]  # checkpoints of a few MB instead of 200


@pytest.fixture
def sweep(make_cfg, tiny_overrides, tmp_path, store):
    """A sweep's parent run, and `job(*overrides)` that plans a job of it and runs it with its plan."""
    client = tracking_store.connect(store)
    experiment_id = tracking_store.get_or_create_experiment(client, "smoke")
    parent_run_id = sweep_parent.open_parent(
        client, experiment_id, grid="g", resume=True, overrides=[], sweep_dir=tmp_path
    )
    checkpoints = tmp_path / "checkpoints"

    def plan(cfg):
        params = tracking.flatten_params(cfg)
        [made] = plan_jobs(client, experiment_id, [params], parent_run_id=parent_run_id, resume=cfg.resume,
                           checkpoint_root=checkpoints)  # fmt: skip
        return share_from_sibling(client, experiment_id, params, made) if cfg.share_epochs else made

    def job(*overrides):
        cfg = make_cfg(*tiny_overrides, *TINY_MODEL, *overrides)
        made = plan(cfg)
        return made, train.run(cfg, parent_run_id=parent_run_id, plan=made)

    job.plan = lambda *overrides: plan(make_cfg(*tiny_overrides, *TINY_MODEL, *overrides))
    job.parent = lambda: client.get_run(parent_run_id)
    job.client = client
    return job


def weights_of(run_id, client):
    state = saved_state(client.get_run(run_id))
    with h5py.File(state.weights) as file:
        arrays = []
        file.visit(lambda name: arrays.append(np.array(file[name])) if isinstance(file[name], h5py.Dataset) else None)
    return arrays


# With precise BatchNorm (the default; off in the smoke preset): every validation recomputes BatchNorm's statistics,
# and the saved states hold them.
def test_a_longer_job_starts_from_its_finished_sibling_and_ends_with_the_same_weights(sweep, store):
    extra = ["precise_bn_images=100"]
    client = MlflowClient(store)
    short_plan, short = sweep("epochs=1", *extra)
    shared_plan, shared = sweep("epochs=3", *extra)
    scratch_plan, scratch = sweep("epochs=3", "share_epochs=false", "resume=false", *extra)

    assert (short_plan.action, shared_plan.action, scratch_plan.action) == ("start", "share", "start")
    assert shared_plan.run_id == short.run_id and shared_plan.state_epoch == 1
    shared_run = client.get_run(shared.run_id)
    assert shared_run.data.tags[names.TAG_CONTINUED_FROM] == short.run_id
    assert shared_run.data.metrics[names.EPOCHS_TRAINED] == 2
    assert client.get_run(scratch.run_id).data.metrics[names.EPOCHS_TRAINED] == 3
    for key in ("loss", "val_accuracy"):
        history = client.get_metric_history(shared.run_id, key)
        assert [m.step for m in history] == [1, 2, 3]
        reference = [m.value for m in client.get_metric_history(scratch.run_id, key)]
        assert [m.value for m in history] == pytest.approx(reference, rel=1e-5)
    for ours, theirs in zip(weights_of(shared.run_id, client), weights_of(scratch.run_id, client), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert sweep.plan("epochs=3", *extra).action == "skip", "a FINISHED run has this config now"


def killed_after_epoch(sweep, monkeypatch, stop_epoch, *overrides):
    """Runs a job of the sweep that stops like Ctrl-C after `stop_epoch`; returns its run (KILLED)."""
    interrupt_after_epoch(monkeypatch, stop_epoch)
    with pytest.raises(KeyboardInterrupt):
        sweep(*overrides)
    monkeypatch.undo()
    [killed] = tracking.child_runs(sweep.client, sweep.parent())
    return killed


def interrupt_after_epoch(monkeypatch, stop_epoch):
    """Makes the job stop like Ctrl-C right after epoch `stop_epoch` (1-based) is saved and logged."""
    log_epoch = callbacks.EpochMetricsLogger.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        log_epoch(self, epoch, logs)
        if epoch + 1 == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.EpochMetricsLogger, "on_epoch_end", on_epoch_end)


def test_a_killed_job_continues_in_its_own_run_from_its_last_epoch(sweep, store, monkeypatch):
    client = MlflowClient(store)
    killed = killed_after_epoch(sweep, monkeypatch, 2, "epochs=3", "resume=false")
    assert killed.info.status == "KILLED"

    # Bookkeeping keys may differ between attempts: the run keeps its first params (MLflow cannot change them).
    made, result = sweep("epochs=3", "share_epochs=false")
    assert (made.action, made.state_epoch, made.logged_epochs) == ("continue", 2, 2)
    assert result.run_id == killed.info.run_id
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["resume"] == "False"
    assert [m.step for m in client.get_metric_history(result.run_id, "val_loss")] == [1, 2, 3]
    assert run.data.metrics[names.EPOCHS_TRAINED] == 3


def test_a_job_whose_checkpoint_is_gone_starts_over_and_replaces_its_run(sweep, store, monkeypatch):
    client = MlflowClient(store)
    killed = killed_after_epoch(sweep, monkeypatch, 1, "epochs=2")
    checkpoint.remove(saved_state(killed).directory)

    made, result = sweep("epochs=2")
    assert made.action == "start" and made.supersedes == killed.info.run_id
    assert result.run_id != killed.info.run_id
    assert client.get_run(killed.info.run_id).data.tags[names.TAG_SUPERSEDED_BY] == result.run_id
    assert [run.info.run_id for run in tracking.child_runs(client, sweep.parent())] == [result.run_id]


def truncate_weights(state):
    with open(state.weights, "r+b") as file:
        file.truncate(state.weights.stat().st_size // 2)


def drop_optimizer_variable(state):
    """Leaves a file whose structure looks complete, but whose optimizer state Keras would skip (with a warning)."""
    with h5py.File(state.weights, "r+") as file:
        del file["optimizer/vars/3"]


def finished_from_scratch(client, run_id, epochs):
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics[names.EPOCHS_TRAINED] == epochs
    assert names.TAG_CONTINUED_FROM not in run.data.tags
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(1, epochs + 1))


@pytest.mark.parametrize(
    ("damage", "file_name", "fault"),
    # The reported fault; the other kinds of damage are detected the same way (tests/test_checkpoint.py).
    [(truncate_weights, "epoch-0001.weights.h5", "truncated: ")],
    ids=["truncated weights"],
)
def test_a_killed_job_whose_saved_state_is_damaged_starts_over_in_a_new_run(sweep, store, monkeypatch, caplog,
                                                                              damage, file_name, fault):  # fmt: skip
    client = MlflowClient(store)
    killed = killed_after_epoch(sweep, monkeypatch, 1, "epochs=2")
    state = saved_state(killed)
    damage(state)

    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        made, result = sweep("epochs=2")
    [line] = [record.getMessage() for record in caplog.records if record.name == checkpoint.__name__]
    assert f"{state.directory}: {file_name} is unusable (" in line and fault in line, line
    assert made.action == "start" and made.supersedes == killed.info.run_id
    finished_from_scratch(client, result.run_id, 2)
    assert [run.info.run_id for run in tracking.child_runs(client, sweep.parent())] == [result.run_id]
    assert sweep.plan("epochs=2").action == "skip", "reruns are not stuck"


def test_a_saved_state_keras_refuses_fails_one_attempt_and_the_next_starts_over(sweep, store, monkeypatch):
    client = MlflowClient(store)
    killed = killed_after_epoch(sweep, monkeypatch, 1, "epochs=2")
    drop_optimizer_variable(saved_state(killed))

    # The structure looks complete, so the plan continues; Keras refuses it only when it loads it into the model.
    with pytest.raises(RuntimeError, match=r"weights\.h5 cannot be loaded: Skipping variable loading for optimizer .*"
                                           r"; set aside, run the sweep again to start this job over$"):  # fmt: skip
        sweep("epochs=2")
    made, result = sweep("epochs=2")
    assert made.action == "start" and made.supersedes == killed.info.run_id
    finished_from_scratch(client, result.run_id, 2)


def test_a_sibling_state_keras_refuses_fails_one_attempt_and_the_next_starts_from_scratch(sweep, store):
    client = MlflowClient(store)
    _, short = sweep("epochs=1")
    drop_optimizer_variable(saved_state(client.get_run(short.run_id)))

    with pytest.raises(RuntimeError, match="set aside, run the sweep again to start this job over"):
        sweep("epochs=2")
    [failed] = [run for run in tracking.child_runs(client, sweep.parent()) if run.info.status == "FAILED"]
    assert names.TAG_CONTINUED_FROM not in failed.data.tags, "it inherited nothing"
    made, result = sweep("epochs=2")
    assert (made.action, made.run_id, made.state_dir) == ("continue", failed.info.run_id, None)
    finished_from_scratch(client, result.run_id, 2)
