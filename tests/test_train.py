"""One job as `train.run` runs it: what it records in MLflow, that it learns, and how it fails."""

import subprocess
from pathlib import Path

import keras
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID
from omegaconf import OmegaConf

from alexnet_sweep import train
from alexnet_sweep.errors import UserInputError
from tests.conftest import all_runs

EPOCH_METRICS = {"loss", "accuracy", "val_loss", "val_accuracy"}
ARTIFACTS = {"config.yaml", "model_summary.txt", "curves.png", "predictions.png"}


def expected_params(cfg):
    """Every leaf of the composed config but the `mlflow` section, dotted, as a string (flattened by pandas)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    del container["mlflow"]
    return {key: str(value) for key, value in pd.json_normalize(container, sep=".").iloc[0].items()}


@pytest.mark.slow
def test_one_job_logs_exactly_the_params_metrics_and_artifacts(make_cfg, tiny_overrides, store, monkeypatch):
    gpu_settings = []  # what the job saw of the GPUs is configure_gpus' report (tested in test_gpu): a known one here
    monkeypatch.setattr(
        train, "configure_gpus", lambda setting: gpu_settings.append(setting) or "2 (CUDA_VISIBLE_DEVICES=3,5)"
    )
    cfg = make_cfg(*tiny_overrides, "epochs=2", "optimizer.lr=3e-4", "gpu_memory=0.5", "precision=float32")
    result = train.run(cfg)

    client = MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "alexnet8 lr=3e-4 epochs=2"
    assert client.get_experiment(run.info.experiment_id).name == "smoke"
    assert run.data.params == {**expected_params(cfg), "precision.policy": "float32"}
    assert (run.data.params["optimizer.lr"], run.data.params["epochs"]) == ("0.0003", "2")
    assert set(run.data.metrics) == EPOCH_METRICS | {"test_loss", "test_accuracy", "epochs_trained"}
    for metric in EPOCH_METRICS:
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2]
    assert run.data.metrics["epochs_trained"] == 2
    assert result.metrics == {key: run.data.metrics[key] for key in EPOCH_METRICS | {"test_loss", "test_accuracy"}}
    assert run.data.tags["model"] == "alexnet8"
    assert run.data.tags["dataset"] == "shapes"
    assert gpu_settings == [0.5] and run.data.tags["gpus"] == "2 (CUDA_VISIBLE_DEVICES=3,5)"
    assert MLFLOW_PARENT_RUN_ID not in run.data.tags, "a single job is a top-level run"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(train.__file__).parent, capture_output=True, text=True)
    assert run.data.tags.get(MLFLOW_GIT_COMMIT) == (head.stdout.strip() if head.returncode == 0 else None)

    assert {a.path for a in client.list_artifacts(run.info.run_id)} == ARTIFACTS
    local = client.download_artifacts(run.info.run_id, "")
    logged_cfg = yaml.safe_load(open(f"{local}/config.yaml"))
    assert logged_cfg["optimizer"]["lr"] == 3e-4 and logged_cfg["epochs"] == 2
    summary = open(f"{local}/model_summary.txt").read()
    assert "conv1 (Conv2D)" in summary and "Total params" in summary
    for figure in ("curves.png", "predictions.png"):
        assert open(f"{local}/{figure}", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_save_model_switch_logs_a_loadable_mlflow_model(make_cfg, tiny_overrides, store):
    cfg = make_cfg(*tiny_overrides, "save_model=true", "model.dense_units=[32]")
    result = train.run(cfg)
    run = MlflowClient(store).get_run(result.run_id)
    [logged] = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{result.run_id}'",
        output_format="list",
    )
    assert logged.name == "model"
    model = mlflow.keras.load_model(logged.model_uri)
    assert [layer.name for layer in model.layers][-2:] == ["dropout1", "predictions"]
    assert model.count_params() == 3_758_186  # the convolutions' 3,749,632 + 256*32+32 + 32*10+10


@pytest.mark.slow
def test_training_learns_the_shapes(make_cfg, tfds_dir, store):
    # The demo's lr=1e-4 job at 8 epochs (measured with precision=auto, bf16 here: train 0.92, val 0.84); chance
    # is 0.1. Val accuracy still swings between epochs before that (0.63, 0.45, 0.74 at epochs 4-6).
    cfg = make_cfg(
        "experiment=demo",
        f"dataset.data_dir={tfds_dir}",
        f"mlflow.tracking_uri={store}",
        "epochs=8",
        "optimizer.lr=1e-4",
    )
    result = train.run(cfg)
    assert result.metrics["accuracy"] > 0.8
    assert result.metrics["val_accuracy"] > 0.6


@pytest.mark.parametrize(("raised", "status"), [(RuntimeError("disk full"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_a_job_that_stops_never_leaves_its_run_running(make_cfg, tiny_overrides, store, monkeypatch, raised, status):
    def broken(*args, **kwargs):  # where a real job stops: inside fit (out of memory, Ctrl-C); nothing trains
        raise raised

    monkeypatch.setattr(keras.Model, "fit", broken)
    with pytest.raises(type(raised)):
        train.run(make_cfg(*tiny_overrides))
    [run] = all_runs(store)
    assert run.info.status == status
    if status == "FAILED":
        assert run.data.tags["error"] == "RuntimeError: disk full"
        assert "error.txt" in {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id)}


@pytest.mark.parametrize(
    "override",
    [
        "optimizer.lr=-1",
        "epochs=0",
        "model.input_size=32",
        "mlflow.tracking_uri=foo://bar",
        "dataset.name=not_a_dataset",
        "dataset.train_split='train[:oops]'",
        "dataset.train_split='train[90%:10%]'",
        "dataset.val_split='train[2000:]'",
        "optimizer=sgd optimizer.momentum=-0.5",
        "model.input_size=100000",
    ],
)
def test_bad_input_fails_before_any_run_or_experiment(make_cfg, tiny_overrides, store, override):
    with pytest.raises(UserInputError) as caught:
        train.run(make_cfg(*tiny_overrides, *override.split()))
    assert "\n" not in str(caught.value)
    assert all_runs(store) == []
    if not override.startswith("mlflow."):
        assert [e.name for e in MlflowClient(store).search_experiments(view_type=ViewType.ALL)] == ["Default"]


def test_a_deleted_experiment_is_a_clear_error(make_cfg, tiny_overrides, store):
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("smoke"))
    with pytest.raises(UserInputError, match=r"^mlflow.experiment_name='smoke': this experiment is deleted; restore"):
        train.run(make_cfg(*tiny_overrides))


def test_ctrl_c_is_deferred_to_a_safe_point_and_the_handler_restored():
    import os
    import signal

    from alexnet_sweep.interrupt import DeferredInterrupt

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), DeferredInterrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested, "the signal only set a flag: this line still ran"
        with pytest.raises(KeyboardInterrupt):
            interrupt.on_train_batch_end(0)
    assert signal.getsignal(signal.SIGINT) is before
