"""A team's tracking server: `python -m alexnet_sweep.server` (what `make server` runs) on its own PostgreSQL.

A parallel sweep records into it over HTTP, and a job records straight into PostgreSQL; every run, metric and
artifact must arrive, and the credentials in the tracking URIs must appear nowhere: params, tags, artifacts, the
terminal or the jobs' log files.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from alexnet_sweep.postgres import LocalPostgres
from tests.conftest import free_loopback_port, run_cli, serving
from tests.test_cli import split_runs

pytestmark = pytest.mark.slow

HTTP_SECRET = "http-s3cret-9f2"  # basic-auth credentials in the server URL (this server ignores them)
ARTIFACTS = {"config.yaml", "model_summary.txt", "curves.png", "predictions.png"}
EPOCH_METRICS = {"loss", "accuracy", "val_loss", "val_accuracy"}


@dataclass
class Server:
    url: str
    postgres: LocalPostgres
    artifacts: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Under /tmp with a short name: PostgreSQL (run as `postgres` when we are root) must reach it, and its socket
    # path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    artifacts = tmp_path_factory.mktemp("server") / "artifacts"
    port, postgres_port = free_loopback_port(), free_loopback_port()
    command = [sys.executable, "-m", "alexnet_sweep.server", "--port", str(port), "--workers", "1",
               "--postgres-dir", str(folder), "--postgres-port", str(postgres_port),
               "--artifacts-destination", str(artifacts)]  # fmt: skip
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    postgres = LocalPostgres(folder, postgres_port)
    try:
        with serving(command, f"http://127.0.0.1:{port}/health", log_path) as url:
            yield Server(url.removesuffix("/health"), postgres, artifacts)
        assert not postgres.running(), "the server stops its PostgreSQL when it stops"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def secrets_in(client: MlflowClient, run: Run, secret: str) -> list[str]:
    """Where `secret` shows in a run: param and tag values, and the text of every artifact."""
    found = [f"param {key}" for key, value in run.data.params.items() if secret in value]
    found += [f"tag {key}" for key, value in run.data.tags.items() if secret in value]
    pending = [""]
    while pending:
        for item in client.list_artifacts(run.info.run_id, pending.pop()):
            if item.is_dir:
                pending.append(item.path)
            elif not item.path.endswith(".png"):
                text = Path(client.download_artifacts(run.info.run_id, item.path)).read_text(errors="replace")
                found += [f"artifact {item.path}"] if secret in text else []
    return found


def test_a_parallel_sweep_records_everything_through_the_server(server, tmp_path, tfds_dir):
    tracking_uri = server.url.replace("http://", f"http://alice:{HTTP_SECRET}@")
    result = run_cli(
        "-m", "optimizer.lr=1e-3,1e-4", "epochs=1,2", "experiment=smoke", "model.dense_units=[16,16]",
        "hydra/launcher=joblib", f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={tracking_uri}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(server.url)
    [parent], children = split_runs(server.url)
    assert parent.info.status == "FINISHED" and len(children) == 4
    for child in children:
        assert child.info.status == "FINISHED"
        epochs = int(child.data.params["epochs"])
        for key in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == list(range(1, epochs + 1))
        assert {"test_accuracy", "test_loss", "epochs_trained"} <= set(child.data.metrics)
        assert {item.path for item in client.list_artifacts(child.info.run_id)} >= ARTIFACTS
        # The server keeps the artifacts (--artifacts-destination): the jobs never wrote to its disk themselves.
        assert list(server.artifacts.rglob(f"{child.info.run_id}/artifacts/curves.png"))
    assert {item.path for item in client.list_artifacts(parent.info.run_id, "report")} >= {"report/report.md"}

    terminal = result.stdout + result.stderr
    assert HTTP_SECRET not in terminal and "http://***@127.0.0.1" in terminal
    for run in [parent, *children]:
        assert secrets_in(client, run, HTTP_SECRET) == []
    logs = [path for path in tmp_path.rglob("*.log") if HTTP_SECRET in path.read_text(errors="replace")]
    assert logs == []


def test_a_job_recording_straight_into_postgresql_shows_no_password(server, tmp_path, tfds_dir):
    tracking_uri = server.postgres.uri()
    password = tracking_uri.split(":")[2].split("@")[0]
    result = run_cli(
        "experiment=smoke", "model.dense_units=[16,16]", "mlflow.experiment_name=direct",
        f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={tracking_uri}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("direct")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert secrets_in(client, run, password) == []
    assert password not in result.stdout + result.stderr
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml")).read_text()
    assert f"tracking_uri: postgresql+psycopg2://***@127.0.0.1:{server.postgres.port}/mlflow" in config
