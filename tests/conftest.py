"""Shared fixtures: Hydra compose, a prepared offline `shapes` dataset, one SQLite MLflow store per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import tensorflow_datasets as tfds
from hydra import compose, initialize_config_module
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig

from alexnet_sweep import shapes  # noqa: F401  (registers the TFDS builder)
from alexnet_sweep.plugins import register
from alexnet_sweep.server.postgres import LocalPostgres

register()


# The longest test files first (tens of seconds to minutes each on 2 cores). `make test` hands whole files to two
# workers in collection order (--no-loadscope-reorder); xdist's own order, by number of tests, would start the
# subprocess-heavy files last, where one of them ends the run on a single worker.
LONGEST_FIRST = ("test_parallel.py", "test_faults_sweep.py", "test_study.py", "test_replicates.py",
                 "test_secrets.py", "test_cli.py", "test_sweep_resume.py", "test_bench.py", "test_ui.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFDS data_dir with `shapes` prepared once for the whole session (through the real builder)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("shapes", data_dir=str(data_dir)).download_and_prepare()
    return data_dir


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new MLflow SQLite database, created once: creating one takes a second or more (its schema migrations)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def shared_store(
    tmp_path_factory: pytest.TempPathFactory, empty_store: Path
) -> Callable[[str], tuple[MlflowClient, Path]]:
    """Makes a store for a module's tests that only read it: `client, folder = shared_store("name")`.

    The store is a copy of the empty database in a new folder of its own, for its artifacts and reports too.
    """

    def make(name: str) -> tuple[MlflowClient, Path]:
        folder = tmp_path_factory.mktemp(name)
        shutil.copyfile(empty_store, folder / "mlflow.db")
        return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}"), folder

    return make


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> str:
    """A SQLite tracking URI of this test's own, a copy of the empty database, under tmp_path; the test runs in
    tmp_path so artifacts land there too.
    """
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """Composes the app config with Hydra's compose API, as `python -m alexnet_sweep` would."""

    def make(*overrides: str) -> DictConfig:
        with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return make


@pytest.fixture
def tiny_overrides(tfds_dir: Path, store: str) -> list[str]:
    """Overrides for a seconds-long job on the prepared shapes data, logging to this test's store."""
    return ["experiment=smoke", f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={store}"]


@pytest.fixture
def tiny_cfg(make_cfg: Callable[..., DictConfig], tiny_overrides: list[str]) -> DictConfig:
    return make_cfg(*tiny_overrides)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """A job sets Keras' global dtype policy (precision=auto: mixed_bfloat16 on some CPUs); no test inherits it."""
    yield
    if "keras" in sys.modules:  # importing Keras just to reset it costs seconds per test
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


@pytest.fixture(autouse=True)
def no_run_left_active():
    """Like MLflow's own tests: fail a test that leaves an MLflow run active."""
    yield
    active = mlflow.active_run()
    if active is not None:
        mlflow.end_run()
        pytest.fail(f"run {active.info.run_id} was left active")


def all_runs(tracking_uri: str) -> list[Run]:
    """Every run in every experiment of the store (empty if the store was never created)."""
    path = tracking_uri.removeprefix("sqlite:///")
    if tracking_uri.startswith("sqlite:///") and not Path(path).exists():
        return []
    client = MlflowClient(tracking_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(experiment_ids, run_view_type=ViewType.ALL) if experiment_ids else []


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs `python -m alexnet_sweep ARGS` as a user would, in `cwd`, with `env` added to the environment."""
    # Not the developer's own store or Hydra settings: only what the test passes in `env`.
    ignored = ("HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    env = {key: value for key, value in os.environ.items() if key not in ignored} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "alexnet_sweep", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(command: list[str], url: str, log_path: Path, timeout: float = 120) -> Iterator[str]:
    """Runs a server command in its own process group until `url` answers 200; yields `url`, always stops it."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[2:4]} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with opener.open(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{url} gave no HTTP 200 in {timeout} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """Ends a server and its children (workers): SIGTERM to its process group, SIGKILL if it does not stop."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# Seconds-long jobs: the smoke preset with a narrow head and tiny splits.
TINY = [
    "experiment=smoke", "model.dense_units=[16,16]", "batch_size=32",
    "dataset.train_split='train[:64]'", "dataset.val_split='train[-32:]'", "dataset.test_split='test[:32]'",
]  # fmt: skip
HTTP_SECRET = "http-s3cret-9f2"  # basic-auth credentials in the team server's URL (the server ignores them)


@dataclass
class TeamServer:
    """`python -m alexnet_sweep.server` (what `make server` runs) on a PostgreSQL cluster of its own."""

    url: str
    postgres: LocalPostgres
    artifacts: Path


@dataclass
class TeamSweep:
    """A 2 x 2 sweep (lr x seed: two configurations, two replicates each) that two joblib workers recorded through
    the team server."""

    result: subprocess.CompletedProcess
    workdir: Path
    experiment_id: str
    parent: Run
    children: list[Run]


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    # Under /tmp with a short name: PostgreSQL (run as `postgres` when we are root) must reach it, and its socket
    # path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    artifacts = tmp_path_factory.mktemp("server") / "artifacts"
    port, postgres_port = free_loopback_port(), free_loopback_port()
    command = [sys.executable, "-m", "alexnet_sweep.server", "--port", str(port), "--workers", "1",
               "--postgres-dir", str(folder), "--postgres-port", str(postgres_port),
               "--artifacts-destination", str(artifacts)]  # fmt: skip
    postgres = LocalPostgres(folder, postgres_port)
    try:
        with serving(command, f"http://127.0.0.1:{port}/health", artifacts.parent / "server.log") as url:
            yield TeamServer(url.removesuffix("/health"), postgres, artifacts)
        assert not postgres.running(), "the server stops its PostgreSQL when it stops"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def team_sweep(team_server: TeamServer, tfds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TeamSweep:
    workdir = tmp_path_factory.mktemp("team_sweep")
    tracking_uri = team_server.url.replace("http://", f"http://alice:{HTTP_SECRET}@")
    result = run_cli(
        "-m", "optimizer.lr=1e-3,1e-4", "seed=0,1", *TINY, "hydra/launcher=joblib",
        f"dataset.data_dir={tfds_dir}", f"mlflow.tracking_uri={tracking_uri}", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(team_server.url)
    [parent] = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    children = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags]
    return TeamSweep(result, workdir, parent.info.experiment_id, parent, children)
