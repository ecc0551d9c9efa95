"""Shared fixtures: Hydra compose, a prepared offline `shapes` dataset, one SQLite MLflow store per test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
import tensorflow_datasets as tfds
from hydra import compose, initialize_config_module
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from omegaconf import DictConfig

from alexnet_sweep import shapes  # noqa: F401  (registers the TFDS builder)
from alexnet_sweep.config import register_configs
from hydra_plugins.alexnet_sweep_launchers.launchers import register_launchers

register_configs()
register_launchers()


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFDS data_dir with `shapes` prepared once for the whole session (through the real builder)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("shapes", data_dir=str(data_dir)).download_and_prepare()
    return data_dir


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite tracking URI under tmp_path; the test runs in tmp_path so artifacts land there too."""
    monkeypatch.chdir(tmp_path)
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
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"} | (env or {})
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
