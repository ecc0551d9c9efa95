"""Resume and epoch-prefix sharing inside one process: which runs a job skips, continues or starts from."""

import h5py
import numpy as np
import pytest
from mlflow import MlflowClient

from alexnet_sweep import callbacks, checkpoint, resume, tracking, train

TINY_MODEL = ["model.dense_units=[32,32]"]  # checkpoints of a few MB instead of 200


@pytest.fixture
def sweep_cfg(make_cfg, tiny_overrides, tmp_path):
    """Composes a job of a sweep whose checkpoints go under tmp_path."""

    def make(*overrides):
        return make_cfg(*tiny_overrides, *TINY_MODEL, f"checkpoint_dir={tmp_path / 'checkpoints'}", *overrides)

    return make


@pytest.fixture
def parent(store):
    client = tracking.connect(store)
    return tracking.start_sweep_run(client, "smoke", name="sweep", tags={})


def weights_of(run, client):
    state = resume.saved_state(client.get_run(run.run_id))
    with h5py.File(state.weights) as file:
        arrays = []
        file.visit(lambda name: arrays.append(np.array(file[name])) if isinstance(file[name], h5py.Dataset) else None)
    return arrays


def test_a_longer_job_starts_from_its_finished_sibling_and_ends_with_the_same_weights(sweep_cfg, parent, store):
    client = MlflowClient(store)
    short = train.run(sweep_cfg("epochs=1"), parent_run_id=parent, in_sweep=True)
    shared = train.run(sweep_cfg("epochs=3"), parent_run_id=parent, in_sweep=True)
    scratch = train.run(
        sweep_cfg("epochs=3", "share_epochs=false", "resume=false"), parent_run_id=parent, in_sweep=True
    )

    assert (short.plan.action, shared.plan.action, scratch.plan.action) == ("start", "share", "start")
    shared_run = client.get_run(shared.run_id)
    assert shared_run.data.tags[resume.TAG_CONTINUED_FROM] == short.run_id
    assert shared_run.data.metrics["epochs_trained"] == 2
    assert client.get_run(scratch.run_id).data.metrics["epochs_trained"] == 3
    for key in ("loss", "val_accuracy"):
        history = client.get_metric_history(shared.run_id, key)
        assert [m.step for m in history] == [1, 2, 3]
        reference = [m.value for m in client.get_metric_history(scratch.run_id, key)]
        assert [m.value for m in history] == pytest.approx(reference, rel=1e-5)
    for ours, theirs in zip(weights_of(shared, client), weights_of(scratch, client), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def interrupt_after_epoch(monkeypatch, stop_epoch):
    """Makes the job stop like Ctrl-C right after epoch `stop_epoch` (1-based) is saved and logged."""
    log_epoch = callbacks.EpochMetricsLogger.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        log_epoch(self, epoch, logs)
        if epoch + 1 == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.EpochMetricsLogger, "on_epoch_end", on_epoch_end)


def test_a_killed_job_continues_in_its_own_run_from_its_last_epoch(sweep_cfg, parent, store, monkeypatch):
    client = MlflowClient(store)
    interrupt_after_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train.run(sweep_cfg("epochs=3", "resume=false"), parent_run_id=parent, in_sweep=True)
    monkeypatch.undo()
    [killed] = tracking.child_runs(client, client.get_run(parent))
    assert killed.info.status == "KILLED"

    # Bookkeeping keys may differ between attempts: the run keeps its first params (MLflow cannot change them).
    result = train.run(sweep_cfg("epochs=3", "share_epochs=false"), parent_run_id=parent, in_sweep=True)
    assert result.plan.action == "continue" and result.run_id == killed.info.run_id
    assert result.plan.state.epoch == 2
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["resume"] == "False"
    assert [m.step for m in client.get_metric_history(result.run_id, "val_loss")] == [1, 2, 3]
    assert run.data.metrics["epochs_trained"] == 3


def test_a_job_whose_checkpoint_is_gone_starts_over_and_replaces_its_run(sweep_cfg, parent, store, monkeypatch):
    client = MlflowClient(store)
    interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train.run(sweep_cfg("epochs=2"), parent_run_id=parent, in_sweep=True)
    monkeypatch.undo()
    [killed] = tracking.child_runs(client, client.get_run(parent))
    checkpoint.remove(resume.saved_state(killed).directory)

    result = train.run(sweep_cfg("epochs=2"), parent_run_id=parent, in_sweep=True)
    assert result.plan.action == "start" and result.run_id != killed.info.run_id
    assert client.get_run(killed.info.run_id).data.tags[tracking.TAG_SUPERSEDED_BY] == result.run_id
    assert [run.info.run_id for run in tracking.child_runs(client, client.get_run(parent))] == [result.run_id]
