"""Everything MLflow: the store, experiments, parent (sweep) and child (job) runs, params and metric logging."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus, ViewType
from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException
from mlflow.utils.git_utils import get_git_commit
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep import names
from alexnet_sweep.errors import UserInputError, first_line, root_cause
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
from alexnet_sweep.signals import held

log = logging.getLogger(__name__)

_SERVER_TIMEOUT_S = 5
MAX_RUN_NAME = 250  # characters: the runs.name column of MLflow's SQL stores
SEARCH_PAGE = 1000  # runs per page of a search: the most MLflow's stores return at once


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


def flatten_params(cfg: DictConfig) -> dict[str, str]:
    """Flattens the resolved config to MLflow params with dotted keys (`optimizer.lr`, `epochs`, ...).

    The `mlflow` section says where results go, not how they were made, so it is left out.
    """
    params: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            params[prefix[:-1]] = str(node)

    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("mlflow", None)
    walk(container, "")
    return params


def source_tags() -> dict[str, str]:
    """Returns the git commit of this package's checkout as MLflow's standard tag, if it is one."""
    commit = get_git_commit(Path(__file__).parent)
    return {MLFLOW_GIT_COMMIT: commit} if commit else {}


def format_lr(lr: float) -> str:
    """Formats a learning rate the way people type it: 1e-4, 5e-5, 3.2e-4."""
    mantissa, exponent = f"{lr:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def run_name(cfg: DictConfig) -> str:
    """Returns a readable run name such as `alexnet8 lr=1e-4 epochs=5`."""
    return f"{cfg.model.name} lr={format_lr(cfg.optimizer.lr)} epochs={cfg.epochs}"


@contextlib.contextmanager
def job_run(
    cfg: DictConfig,
    experiment_id: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[Run]:
    """Runs the body inside one MLflow run of the job, which ends FINISHED, FAILED or KILLED (Ctrl-C, SIGTERM).

    Args:
        cfg: The job's resolved config: its params and run name come from here.
        experiment_id: The experiment to record into (`get_or_create_experiment`) in the store `connect` opened.
        parent_run_id: The sweep's parent run, or None for a top-level run.
        tags: Extra tags, e.g. the Hydra override string.
        run_id: An unfinished run of this job to go on in (resume) instead of creating one.

    Yields:
        The active run.
    """
    all_tags = {names.TAG_MODEL: cfg.model.name, names.TAG_DATASET: cfg.dataset.name, **source_tags(), **(tags or {})}
    if run_id is None:
        started = mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name(cfg), parent_run_id=parent_run_id, tags=all_tags
        )
    else:
        started = mlflow.start_run(run_id=run_id, tags=all_tags)
        if names.TAG_ERROR in started.data.tags:  # the cause of an earlier attempt; its error.txt artifact stays
            MlflowClient().delete_tag(run_id, names.TAG_ERROR)
    with started as run:
        try:
            log_params_once(flatten_params(cfg))
            yield run
        except KeyboardInterrupt:
            with held("Stopping: the run is being ended KILLED first"):  # a second signal must not leave it RUNNING
                mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
            raise
        except (Exception, SystemExit) as err:  # SystemExit: code inside the job may call sys.exit
            mlflow.set_tag(names.TAG_ERROR, one_line(err))
            mlflow.log_text(traceback.format_exc(), "error.txt")
            raise  # mlflow.start_run's context ends the run FAILED


def log_params_once(params: Mapping[str, str]) -> None:
    """Logs params on the active run, keeping values an earlier attempt of a continued run already logged.

    MLflow refuses to change a param. A continued run may legitimately differ in bookkeeping keys (`resume`,
    `share_epochs`, `checkpoint_dir`) or in what `precision=auto` resolved to on another machine.
    """
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    changed = {key: value for key, value in params.items() if key in logged and logged[key] != str(value)}
    if changed:
        log.warning("Continuing run keeps the params of its first attempt: %s", ", ".join(
            f"{key}={logged[key]} (now {value})" for key, value in changed.items()))  # fmt: skip
    mlflow.log_params({key: value for key, value in params.items() if key not in logged})


def one_line(err: BaseException) -> str:
    """Returns `Type: first line of the message` of the root cause (`errors.root_cause`), shown in tags and summaries.

    An exception whose class sets `cause_is_message` (`callbacks.Diverged`) is shown by its message alone.
    """
    err = root_cause(err)
    message = first_line(err)
    if getattr(err, "cause_is_message", False) and message:
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def search_all_runs(
    client: MlflowClient,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | None = None,
    view: int = ViewType.ACTIVE_ONLY,
) -> list[Run]:
    """Every run a search matches, page after page (`MlflowClient.search_runs` returns one page of at most 1,000).

    Args:
        client: A client of the store.
        experiment_ids: The experiments to search.
        filter_string: An MLflow search filter, e.g. "tags.`sweep.config_hash` = 'abc'".
        order_by: MLflow order-by clauses.
        view: Which runs by lifecycle (`mlflow.entities.ViewType`): active ones, deleted ones or all.

    Returns:
        All matching runs, in the requested order.
    """
    runs: list[Run] = []
    page_token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            run_view_type=view,
            order_by=order_by,
            max_results=SEARCH_PAGE,
            page_token=page_token,
        )
        runs.extend(page)
        page_token = page.token
        if not page_token:
            return runs


def child_runs(client: MlflowClient, parent_run: Run) -> list[Run]:
    """Returns the job runs of a sweep's parent run, oldest first (without runs a rerun replaced)."""
    runs = search_all_runs(
        client,
        [parent_run.info.experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    return [run for run in runs if names.TAG_SUPERSEDED_BY not in run.data.tags]


def sweep_runs(client: MlflowClient, parent_run: Run) -> list[Run]:
    """The job runs of a sweep: its children, then the runs of other sweeps that its skipped jobs reused."""
    runs = child_runs(client, parent_run)
    known = {run.info.run_id for run in runs}
    for run_id in parent_run.data.tags.get(names.TAG_REUSED_RUNS, "").split():
        if run_id not in known:
            runs.append(client.get_run(run_id))
            known.add(run_id)
    return runs


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    """Says how to see an experiment's runs in the MLflow UI, from any working directory."""
    if tracking_uri.startswith(("http://", "https://")):
        return redact(f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs")
    tracking_uri = redact(absolute_uri(tracking_uri, Path.cwd()))
    return (
        f"python -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000 (or make ui "
        f"in the repo), then open http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    )
