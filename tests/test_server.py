"""A team's tracking server: `python -m alexnet_sweep.server` (what `make server` runs) on its own PostgreSQL.

A parallel sweep records into it over HTTP, and a job records straight into PostgreSQL; every run, metric and
artifact must arrive, and the credentials in the tracking URIs must appear nowhere: params, tags, artifacts, the
terminal, the jobs' log files or any file of the run folder (tests/test_secrets.py greps everything else).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from alexnet_sweep import names
from tests.conftest import HTTP_SECRET, TINY, run_cli

pytestmark = pytest.mark.slow

LR_SHOWN = {"0.001": "1e-3", "0.0001": "1e-4"}  # the sweep's learning rates in run names, as typed
ARTIFACTS = {"config.yaml", "model_summary.txt", "curves.png", "predictions.png"}


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


def test_a_parallel_sweep_records_everything_through_the_server(team_server, team_sweep):
    server, result, parent, children = team_server, team_sweep.result, team_sweep.parent, team_sweep.children
    client = MlflowClient(server.url)
    assert parent.info.status == "FINISHED" and len(children) == 4
    # Two configurations (lr), two replicates (seed) each: replicates share the tag `configuration`, and run names
    # lead with what the sweep varies.
    replicates: dict[str, list[tuple[str, str]]] = {}
    for child in children:
        lr, seed, model = (child.data.params[key] for key in ("optimizer.lr", "seed", "model.name"))
        replicates.setdefault(child.data.tags[names.TAG_CONFIGURATION], []).append((lr, seed))
        assert child.data.tags[MLFLOW_RUN_NAME] == f"lr={LR_SHOWN[lr]} seed={seed} ({model})"
    assert sorted(sorted(pairs) for pairs in replicates.values()) == [
        [("0.0001", "0"), ("0.0001", "1")],
        [("0.001", "0"), ("0.001", "1")],
    ]
    for child in children:
        assert child.info.status == "FINISHED"
        # Every epoch's metrics arrived, one step per epoch (from 1), and the run says how many epochs it trained.
        epochs = int(child.data.params["epochs"])
        for key in names.EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == list(range(1, epochs + 1))
        assert {names.TEST_ACCURACY, names.TEST_LOSS, names.EPOCHS_TRAINED} <= set(child.data.metrics)
        assert child.data.metrics[names.EPOCHS_TRAINED] == epochs
        assert {item.path for item in client.list_artifacts(child.info.run_id)} >= ARTIFACTS
        # The server keeps the artifacts (--artifacts-destination): the jobs never wrote to its disk themselves.
        assert list(server.artifacts.rglob(f"{child.info.run_id}/artifacts/curves.png"))
    assert {item.path for item in client.list_artifacts(parent.info.run_id, "report")} >= {"report/report.md"}

    terminal = result.stdout + result.stderr
    assert HTTP_SECRET not in terminal and "http://***@127.0.0.1" in terminal
    for run in [parent, *children]:
        assert secrets_in(client, run, HTTP_SECRET) == []
    logs = list(team_sweep.workdir.rglob("*.log"))
    assert logs, "the sweep wrote job logs"
    assert [path for path in logs if HTTP_SECRET in path.read_text(errors="replace")] == []


def test_a_job_recording_straight_into_postgresql_shows_no_password(team_server, tmp_path, tfds_dir):
    tracking_uri = team_server.postgres.uri()
    password = tracking_uri.split(":")[2].split("@")[0]
    result = run_cli(
        *TINY, "mlflow.experiment_name=direct",
        f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={tracking_uri}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("direct")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and names.TEST_ACCURACY in run.data.metrics
    assert secrets_in(client, run, password) == []
    assert password not in result.stdout + result.stderr
    on_disk = [path for path in tmp_path.rglob("*") if path.is_file() and password.encode() in path.read_bytes()]
    assert on_disk == [], "outputs/DATE/TIME/.hydra/ and ./mlruns hold no password"
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml")).read_text()
    assert f"tracking_uri: postgresql+psycopg2://***@127.0.0.1:{team_server.postgres.port}/mlflow" in config


def test_studies_live_beside_the_runs_in_the_servers_own_optuna_database(team_server):
    import optuna

    from alexnet_sweep.study.settings import StudySettings, open_storage

    storage = team_server.postgres.study_uri()
    password = storage.split(":")[2].split("@")[0]
    assert StudySettings().storage_url(team_server.postgres.uri()) == storage, "a postgresql store's default"
    study = optuna.create_study(storage=open_storage(storage), study_name="beside", direction="maximize")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    assert optuna.load_study(study_name="beside", storage=storage).best_value == 0.5
    printed = (team_server.artifacts.parent / "server.log").read_text()
    assert "ALEXNET_SWEEP_STUDY_STORAGE=postgresql+psycopg2://***@127.0.0.1:" in printed
    assert password not in printed
