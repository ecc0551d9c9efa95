"""Resume and epoch-prefix sharing inside one process: which runs a job skips, continues or starts from."""

import h5py
import numpy as np
import pytest
from mlflow import MlflowClient

from alexnet_sweep import resume, tracking, train

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
