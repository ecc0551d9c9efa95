"""The MLflow tracking store: opening it, its experiments, and where its UI shows them.

Opening is checked in seconds (MLflow itself retries an unreachable server or database for minutes), and a URI whose
password was masked takes it from the environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

from alexnet_sweep import names
from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.redact import (
    PASSWORD_VARIABLE,
    URI_VARIABLE,
    USERNAME_VARIABLE,
    has_credentials,
    install_on_mlflow_logger,
    is_masked,
    mask_uri,
    redact,
)

log = logging.getLogger(__name__)

_SERVER_TIMEOUT_S = 5


def connect(tracking_uri: str) -> MlflowClient:
    """Opens the tracking store and makes it the one the fluent `mlflow.*` API writes to.

    The process environment is left as it was: MLflow's `set_tracking_uri` would also export the URI, a password
    included, as `MLFLOW_TRACKING_URI` to every process started later, which `python -m alexnet_sweep` takes as its
    store (`redact.hide_tracking_credentials`).

    Args:
        tracking_uri: `sqlite:///mlflow.db`, `http(s)://host:port`, or a database URL; with its user info masked
            (`http://***@host:5000`, as the config holds a URI whose password was typed on the command line), the
            real URI comes from the environment (`real_uri`).

    Returns:
        A client of that store.

    Raises:
        UserInputError: If MLflow cannot use the URI (unknown scheme, file store, missing database driver), no
            server answers at an http(s) URI, or a masked URI's credentials are not in the environment.
    """
    fix = "use sqlite:///mlflow.db, http(s)://HOST:PORT of a running MLflow server, or a database URL"
    shown = redact(tracking_uri)
    tracking_uri = real_uri(tracking_uri)
    if has_credentials(tracking_uri):
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # MLflow prints run URLs with them otherwise
    install_on_mlflow_logger()
    # MLflow logs a full traceback for every database error it then raises; the cause is reported once, in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    _check_database_answers(tracking_uri, fix)
    if urlparse(tracking_uri).scheme in ("http", "https"):
        _check_server_answers(tracking_uri, fix)  # before the first request, which MLflow retries for minutes
    try:
        with _one_creator_at_a_time(tracking_uri):
            client = MlflowClient(tracking_uri=tracking_uri)
            client.search_experiments(max_results=1)  # creates the tables of a new store now, inside the lock
    except UnsupportedModelRegistryStoreURIException:
        scheme = urlparse(tracking_uri).scheme
        raise UserInputError(f"mlflow.tracking_uri={shown!r}: MLflow has no store for {scheme!r}; {fix}") from None
    except Exception as err:  # the file-store refusal, a missing database driver, ...
        reason = redact(first_line(err).split(". ", 1)[0])
        raise UserInputError(f"mlflow.tracking_uri={shown!r}: {type(err).__name__}: {reason}; {fix}") from None
    exported = os.environ.get(URI_VARIABLE)
    mlflow.set_tracking_uri(tracking_uri)
    if exported is None:
        os.environ.pop(URI_VARIABLE, None)
    else:
        os.environ[URI_VARIABLE] = exported
    return client


def real_uri(tracking_uri: str) -> str:
    """Returns the URI to connect with: `tracking_uri` itself, or for a masked one (`http://***@host`) the real URI.

    The real URI is `MLFLOW_TRACKING_URI` when that masks to `tracking_uri` (`python -m alexnet_sweep` puts a URI
    typed with its password there; a user may set it). An http(s) URI may instead rely on `MLFLOW_TRACKING_USERNAME`
    and `MLFLOW_TRACKING_PASSWORD`, which MLflow sends to the server itself: the URI is then returned without user
    info.

    Raises:
        UserInputError: If the URI is masked and the environment holds neither.
    """
    if not is_masked(tracking_uri):
        return tracking_uri
    whole = os.environ.get(URI_VARIABLE, "")
    if whole and mask_uri(whole) == tracking_uri:
        return whole
    http = urlparse(tracking_uri).scheme in ("http", "https")
    if http and os.environ.get(USERNAME_VARIABLE) and os.environ.get(PASSWORD_VARIABLE):
        return tracking_uri.replace("***@", "", 1)
    either = f" (or {USERNAME_VARIABLE} and {PASSWORD_VARIABLE})" if http else ""
    raise UserInputError(
        f"mlflow.tracking_uri={tracking_uri!r}: its user and password are not in this process's environment; set "
        f"{URI_VARIABLE} to the whole URI{either} where the job runs"
    )


@contextlib.contextmanager
def _one_creator_at_a_time(tracking_uri: str) -> Iterator[None]:
    """Lets one process at a time open a local SQLite store, so that only one creates its tables.

    Processes creating a new SQLite store's tables at once (two sweeps, or a sweep and a single run, started
    together) break it: `table ... already exists`, runs lost. An exclusive lock on the store's folder serializes
    the opening, which takes milliseconds once the tables exist.
    """
    folder = Path(tracking_uri.removeprefix("sqlite:///")).parent if tracking_uri.startswith("sqlite:///") else None
    if folder is None or not folder.is_dir():
        yield  # a server or a database: it creates its own schema once; or no folder, which MLflow reports
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _check_server_answers(tracking_uri: str, fix: str) -> None:
    # MLflow's client retries an unreachable server for minutes; any HTTP answer (even 401) proves it is there.
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=_SERVER_TIMEOUT_S)
    except requests.RequestException as err:
        raise UserInputError(
            f"mlflow.tracking_uri={redact(tracking_uri)!r}: no MLflow server answers ({type(err).__name__}); {fix}"
        ) from None


def _check_database_answers(tracking_uri: str, fix: str) -> None:
    # MLflow's SQL store retries an unreachable database for about two minutes before it gives up.
    url = urlparse(tracking_uri)
    ports = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
    dialect = url.scheme.split("+")[0]
    if dialect not in ports or not url.hostname:
        return
    try:
        socket.create_connection((url.hostname, url.port or ports[dialect]), timeout=_SERVER_TIMEOUT_S).close()
    except OSError as err:
        raise UserInputError(
            f"mlflow.tracking_uri={redact(tracking_uri)!r}: no database server answers at {url.hostname}:"
            f"{url.port or ports[dialect]} ({type(err).__name__}); {fix}"
        ) from None


def absolute_uri(tracking_uri: str, base: str | Path) -> str:
    """Makes a relative SQLite URI (`sqlite:///mlflow.db`) absolute against `base`; other URIs are returned as is.

    A sweep's jobs may run in other directories (`hydra.job.chdir=true`, cluster launchers) and must all write to
    the store the sweep was started with.
    """
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        return f"sqlite:///{(Path(base) / tracking_uri.removeprefix('sqlite:///')).resolve()}"
    return tracking_uri


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """Returns the id of experiment `name`, creating it (as a model-training experiment) if needed.

    Raises:
        UserInputError: If the experiment exists but was deleted (MLflow keeps the name reserved).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags=names.EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel job
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise UserInputError(
            f"mlflow.experiment_name={name!r}: this experiment is deleted; restore it (MLflow UI, or "
            f"mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another name"
        )
    return experiment.experiment_id


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    """Says how to see an experiment's runs in the MLflow UI, from any working directory."""
    if tracking_uri.startswith(("http://", "https://")):
        return redact(f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs")
    tracking_uri = redact(absolute_uri(tracking_uri, Path.cwd()))
    return (
        f"python -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000 (or make ui "
        f"in the repo), then open http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    )
