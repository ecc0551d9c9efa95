"""One job as `train.run` runs it: what it records in MLflow, that it learns, and how it fails."""

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID
from omegaconf import OmegaConf

from alexnet_sweep import callbacks, checkpoint, tracking, train
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.plan import Plan
from alexnet_sweep.sweep import summary
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


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (RuntimeError("disk full"), "FAILED", "RuntimeError: disk full"),
        (callbacks.Diverged(2), "FAILED", "diverged at epoch 2"),  # the cause alone, no type name
        (KeyboardInterrupt(), "KILLED", None),
    ],
)
def test_a_job_that_stops_never_leaves_its_run_running(
    make_cfg, tiny_overrides, store, monkeypatch, raised, status, error
):
    def broken(*args, **kwargs):  # where a real job stops: inside fit (out of memory, Ctrl-C); nothing trains
        raise raised

    monkeypatch.setattr(keras.Model, "fit", broken)
    with pytest.raises(type(raised)):
        train.run(make_cfg(*tiny_overrides))
    [run] = all_runs(store)
    assert run.info.status == status
    assert run.data.tags.get("error") == error
    if status == "FAILED":
        assert "error.txt" in {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id)}


def epoch_logs(loss, val_loss=1.5, val_accuracy=0.4):
    return {"loss": loss, "accuracy": 0.3, "val_loss": val_loss, "val_accuracy": val_accuracy}


@pytest.mark.parametrize(
    ("batch_loss", "diverged_logs"),
    [
        (float("nan"), epoch_logs(float("nan"), val_loss=float("nan"), val_accuracy=0.1)),  # lr=1e30
        (2.0, epoch_logs(2.0, val_loss=float("inf"))),  # the training loss holds, validation blows up
        (2.0, epoch_logs(2.0, val_accuracy=float("nan"))),
    ],
)
def test_a_nan_or_infinite_loss_or_metric_ends_training_at_the_end_of_that_epoch(store, batch_loss, diverged_logs):
    model = SimpleNamespace(stop_training=False)
    stop = callbacks.StopOnDivergence()
    stop.set_model(model)
    mlflow.set_tracking_uri(store)
    with mlflow.start_run() as run:
        stop.on_train_begin()
        stop.on_train_batch_end(0, {"loss": 2.1})
        stop.on_epoch_end(0, epoch_logs(2.1))  # a healthy epoch: nothing happens (EpochMetricsLogger logs it)
        stop.on_train_batch_end(0, {"loss": batch_loss})
        assert model.stop_training is not math.isfinite(batch_loss), "a NaN batch loss ends the epoch at once"
        with pytest.raises(callbacks.Diverged) as caught:
            stop.on_epoch_end(1, diverged_logs)
    assert str(caught.value) == tracking.one_line(caught.value) == "diverged at epoch 2"
    client = MlflowClient(store)
    for key, value in diverged_logs.items():  # the diverged epoch's values are kept in its curves
        [point] = client.get_metric_history(run.info.run_id, key)
        assert point.step == 2
        assert point.value == value or not math.isfinite(value)


def test_the_summary_shows_a_diverged_run_failed_with_its_cause(store):
    client = MlflowClient(store)
    run_id = client.create_run(client.create_experiment("e"), tags={"error": "diverged at epoch 2"}).info.run_id
    client.log_metric(run_id, "val_accuracy", 0.1)
    client.set_terminated(run_id, "FAILED")
    row = summary.row("optimizer.lr=1e30", client.get_run(run_id), None, "left no MLflow run")
    assert (row.status, row.cause) == ("FAILED", "diverged at epoch 2")
    finished = summary.Row("optimizer.lr=1e-3", "FINISHED", 0.05, 0.05)
    lines = summary.format_summary([row, finished], where=[]).splitlines()
    assert lines[3].startswith("* optimizer.lr=1e-3") and lines[4].startswith("  optimizer.lr=1e30  FAILED")
    assert lines[5] == "    cause: diverged at epoch 2"


@pytest.mark.slow
def test_a_diverged_run_stops_at_that_epoch_and_ends_failed(make_cfg, tiny_overrides, store, tmp_path):
    # float32 on every machine: lr=1e30 overflows under bfloat16 (precision=auto on some CPUs) but in float32 the
    # loss stays finite (1e29); 1e38 overflows float32's range (3.4e38) at the first update.
    cfg = make_cfg(*tiny_overrides, "optimizer=sgd", "optimizer.lr=1e38", "epochs=3", "precision=float32")
    with pytest.raises(callbacks.Diverged) as caught:
        train.run(cfg, plan=Plan(checkpoint_dir=str(tmp_path / "state")))  # as a sweep's job: saving its state
    assert caught.value.epoch == 1, "the first update already makes the weights overflow"
    [run] = all_runs(store)
    assert run.info.status == "FAILED" and run.data.tags["error"] == "diverged at epoch 1"
    client = MlflowClient(store)
    for metric in EPOCH_METRICS:
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1], "kept up to epoch 1"
    loss = run.data.metrics["loss"]
    assert math.isnan(loss) or abs(loss) == sys.float_info.max, "NaN, or infinite (which MLflow stores as the max)"
    assert "test_accuracy" not in run.data.metrics and "epochs_trained" not in run.data.metrics
    assert checkpoint.load(tmp_path / "state") is None, "the diverged state is never saved"


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
