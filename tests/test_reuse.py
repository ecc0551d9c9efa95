"""Reusing the last job's traced model (`reuse.py`): the same results as a fresh build; a new build for a new graph."""

import h5py
import keras
import numpy as np
import pytest

from alexnet_sweep import model as models
from alexnet_sweep import reuse, train
from alexnet_sweep.optimizer import build_optimizer
from alexnet_sweep.plan import Plan
from tests.conftest import TINY

JOB = [*TINY, "epochs=2", "precise_bn_images=32"]  # two epochs: the optimizer's state and the dropout reseeding count


@pytest.fixture
def builds(monkeypatch):
    """Counts the models compiled (new traces to come) and the Keras sessions cleared, from a process that keeps no
    model."""
    reuse.forget()
    counts = {"models": 0, "clears": 0}

    def counting(function, key):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(models, "compile_model", counting(models.compile_model, "models"))
    monkeypatch.setattr(keras.backend, "clear_session", counting(keras.backend.clear_session, "clears"))
    yield counts
    reuse.forget()


def saved_state(directory):
    """Every array of a job's saved training state: the weights, the optimizer's step count, moments and lr."""
    [path] = directory.glob("epoch-*.weights.h5")
    arrays = {}
    with h5py.File(path) as file:
        file.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow  # three jobs train (about 10 s)
def test_a_reused_model_ends_with_exactly_the_weights_of_a_fresh_build(make_cfg, tiny_overrides, tmp_path, builds):
    def job(name, *overrides):
        result = train.run(make_cfg(*tiny_overrides, *JOB, *overrides), plan=Plan(checkpoint_dir=str(tmp_path / name)))
        return result.metrics, saved_state(tmp_path / name)

    first = job("a", "seed=0", "optimizer.lr=1e-3")
    reused = job("b_reused", "seed=1", "optimizer.lr=1e-4")
    assert builds == {"models": 1, "clears": 1}, "the second job built and traced nothing new"
    fresh = job("b_fresh", "seed=1", "optimizer.lr=1e-4", "reuse_model=false")
    assert builds == {"models": 2, "clears": 2}

    assert reused[0] == fresh[0], "the same metrics, to the last bit"
    assert reused[1].keys() == fresh[1].keys()
    for name, value in fresh[1].items():
        np.testing.assert_array_equal(reused[1][name], value, err_msg=name)
    assert any(not np.array_equal(first[1][name], value) for name, value in fresh[1].items())


@pytest.mark.slow  # builds two AlexNets (about 2.5 s): the fast tier stays under a minute
def test_a_job_of_another_graph_builds_its_own_model(make_cfg, builds):
    def prepare(*overrides):
        """What a job does before it trains: whether it reuses the kept model, and the model it gets."""
        cfg = make_cfg(*TINY, "precision=float32", *overrides)
        reused = reuse.begin(cfg)
        reuse.set_random_seed(cfg.seed, keep_kernels=reused)
        optimizer = build_optimizer(cfg.optimizer)
        return reused, reuse.compiled_model(cfg, optimizer, image_shape=(32, 32, 3), num_classes=10)

    _, first = prepare()
    reused, model = prepare("seed=1", "optimizer.lr=1e-3", "epochs=3", "precise_bn_images=64", "save_model=true")
    assert reused and model is first and builds == {"models": 1, "clears": 1}
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    reused, model = prepare("batch_size=16")
    assert not reused and model is not first and builds == {"models": 2, "clears": 2}, "a new graph, a new session"
    reused, other = prepare("batch_size=16", "reuse_model=false")
    assert not reused and other is not model and builds == {"models": 3, "clears": 3}
    for changed in ("model.dropout=0.3", "optimizer.beta_1=0.8", "dataset.train_split='train[:32]'"):
        assert reuse.graph_key(make_cfg(changed)) != reuse.graph_key(make_cfg()), changed  # beta_1: baked in
