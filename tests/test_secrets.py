"""No secret reaches a file: a tracking URI's password, typed on the command line or set in the environment, shows
nowhere in the run and sweep folders (`.hydra/`, `multirun.yaml`, the sweep file, submitit's pickles, the job
logs), the store, the artifacts or the terminal, while the jobs still record with it.

Single runs and sweeps, through the team's MLflow server (HTTP, basic-auth credentials in the URL) and straight
into its PostgreSQL (a database URL with the role's password).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names
from alexnet_sweep.redact import mask_uri
from tests.conftest import HTTP_SECRET, TINY, TeamServer, TeamSweep, run_cli
from tests.test_server import secrets_in

pytestmark = pytest.mark.slow


def files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under `folder` whose bytes hold `secret`: text, pickles, databases, logs."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    )


def rows_holding(database_uri: str, secret: str) -> list[str]:
    """Every table of a database with a row that holds `secret` in any column."""
    engine = sqlalchemy.create_engine(database_uri)
    try:
        metadata = sqlalchemy.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return [
                table.name
                for table in metadata.sorted_tables
                if any(secret in str(tuple(row)) for row in connection.execute(table.select()))
            ]
    finally:
        engine.dispose()


def password_of(database_uri: str) -> str:
    return database_uri.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]


def assert_nothing_holds(secret: str, server: TeamServer, folder: Path, result: subprocess.CompletedProcess) -> None:
    """The password is in no file under `folder` (outputs, multirun, mlruns), not in the server's artifacts, not in
    any table of the store, and not on the terminal."""
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert secret not in result.stdout + result.stderr
    assert files_holding(folder, secret) == []
    assert files_holding(server.artifacts, secret) == []
    assert rows_holding(server.postgres.uri(), secret) == []


@pytest.fixture
def server(team_server: TeamServer, team_sweep: TeamSweep) -> TeamServer:
    """The team server, once the session's joblib sweep has recorded into it (`team_sweep` counts all its runs)."""
    return team_server


def runs_of(tracking_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_a_single_run_through_the_server_keeps_the_password_off_disk(server, tfds_dir, tmp_path):
    uri = server.url.replace("http://", f"http://alice:{HTTP_SECRET}@")
    result = run_cli(*TINY, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={uri}",
                     "mlflow.experiment_name=secret_single_http", cwd=tmp_path)  # fmt: skip
    assert_nothing_holds(HTTP_SECRET, server, tmp_path, result)
    [run] = runs_of(server.url, "secret_single_http")
    assert run.info.status == "FINISHED" and names.TEST_ACCURACY in run.data.metrics
    assert secrets_in(MlflowClient(server.url), run, HTTP_SECRET) == []
    [hydra] = tmp_path.glob("outputs/*/*/.hydra")
    masked = mask_uri(uri)
    assert f"tracking_uri: {masked}" in (hydra / "config.yaml").read_text()
    assert f"- mlflow.tracking_uri={masked}" in (hydra / "overrides.yaml").read_text()


def test_a_single_run_takes_its_database_from_mlflow_tracking_uri(server, tfds_dir, tmp_path):
    database = server.postgres.uri()
    result = run_cli(*TINY, f"dataset.data_dir={tfds_dir}", "mlflow.experiment_name=secret_single_env",
                     cwd=tmp_path, env={"MLFLOW_TRACKING_URI": database})  # fmt: skip
    assert_nothing_holds(password_of(database), server, tmp_path, result)
    [run] = runs_of(database, "secret_single_env")
    assert run.info.status == "FINISHED" and names.TEST_ACCURACY in run.data.metrics
    assert not (tmp_path / "mlflow.db").exists(), "not the default store"
    [hydra] = tmp_path.glob("outputs/*/*/.hydra")
    assert f"tracking_uri: {mask_uri(database)}" in (hydra / "config.yaml").read_text()


def test_a_joblib_sweep_through_the_server_keeps_the_password_off_disk(team_server, team_sweep):
    assert_nothing_holds(HTTP_SECRET, team_server, team_sweep.workdir, team_sweep.result)
    [sweep_dir] = {path.parent for path in team_sweep.workdir.glob("multirun/*/*/multirun.yaml")}
    masked = mask_uri(team_server.url.replace("http://", "http://alice:x@"))
    assert f"tracking_uri: {masked}" in (sweep_dir / "multirun.yaml").read_text()
    assert f'"tracking_uri": "{masked}"' in (sweep_dir / "mlflow_sweep.json").read_text()
    assert len(list(sweep_dir.glob("*/.hydra/overrides.yaml"))) == 4


def test_a_submitit_sweep_into_postgresql_gets_the_password_through_the_environment(server, tfds_dir, tmp_path):
    database = server.postgres.uri()
    result = run_cli(
        "-m", "optimizer.lr=1e-3,1e-4", *TINY, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={database}",
        "mlflow.experiment_name=secret_sweep_postgres", "hydra/launcher=submitit_local",
        "hydra.sweeper.max_batch_size=2", cwd=tmp_path,
    )  # fmt: skip
    assert_nothing_holds(password_of(database), server, tmp_path, result)
    runs = runs_of(database, "secret_sweep_postgres")
    children = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags]
    assert len(runs) == 3 and [run.info.status for run in runs] == ["FINISHED"] * 3
    assert all(names.TEST_ACCURACY in run.data.metrics for run in children)
    assert list(tmp_path.glob("multirun/*/*/.submitit/*/*.pkl")), "submitit pickled the jobs into the sweep folder"


def test_a_masked_uri_without_its_password_in_the_environment_stops_in_one_line(server, tfds_dir, tmp_path):
    masked = server.url.replace("http://", "http://***@")
    result = run_cli(*TINY, f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={masked}", cwd=tmp_path,
                     env={"MLFLOW_TRACKING_URI": ""})  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert f"mlflow.tracking_uri='{masked}': its user and password are not in this process's environment" in output
