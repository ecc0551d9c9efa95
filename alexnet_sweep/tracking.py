"""MLflow runs: a job's run, its params and tags, and searches of runs (the store itself: `tracking_store`)."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus, ViewType
from mlflow.utils.git_utils import get_git_commit
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep import names
from alexnet_sweep.errors import first_line, root_cause
from alexnet_sweep.labels import format_lr
from alexnet_sweep.signals import held

log = logging.getLogger(__name__)

MAX_RUN_NAME = 250  # characters: the runs.name column of MLflow's SQL stores
SEARCH_PAGE = 1000  # runs per page of a search: the most MLflow's stores return at once


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


def run_name(cfg: DictConfig) -> str:
    """Returns the name of a single run, e.g. `alexnet8 lr=1e-4 epochs=5` (a sweep names its jobs by what varies)."""
    return f"{cfg.model.name} lr={format_lr(cfg.optimizer.lr)} epochs={cfg.epochs}"


@contextlib.contextmanager
def job_run(
    cfg: DictConfig,
    experiment_id: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
    name: str | None = None,
) -> Iterator[Run]:
    """Runs the body inside one MLflow run of the job, which ends FINISHED, FAILED or KILLED (Ctrl-C, SIGTERM).

    Args:
        cfg: The job's resolved config: its params and run name come from here.
        experiment_id: The experiment to record into (`get_or_create_experiment`) in the store `connect` opened.
        parent_run_id: The sweep's parent run, or None for a top-level run.
        tags: Extra tags, e.g. the Hydra override string.
        run_id: An unfinished run of this job to go on in (resume) instead of creating one.
        name: The new run's name (default: `run_name(cfg)`).

    Yields:
        The active run.
    """
    all_tags = {names.TAG_MODEL: cfg.model.name, names.TAG_DATASET: cfg.dataset.name, **source_tags(), **(tags or {})}
    if run_id is None:
        started = mlflow.start_run(
            experiment_id=experiment_id, run_name=name or run_name(cfg), parent_run_id=parent_run_id, tags=all_tags
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
