"""The sweep's parent run in MLflow, from before the first job to after the last.

It is opened (or reopened, to resume the same grid) before the first job and ended after the last, together with
any child run its job's process left RUNNING.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import checkpoint, names, report, tracking
from alexnet_sweep.redact import redact

log = logging.getLogger(__name__)


def sweep_run_name(overrides: Sequence[str]) -> str:
    """Names a sweep's parent run by what it sweeps: `sweep optimizer.lr=1e-3,1e-4 epochs=5,10`.

    MLflow keeps at most 250 characters of a run name (PostgreSQL and MySQL refuse a longer one), so the fixed
    overrides are left to the `overrides` tag.
    """
    swept = [item for item in overrides if "," in item or "(" in item] or list(overrides)
    name = redact(" ".join(["sweep", *swept]))
    return name if len(name) <= tracking.MAX_RUN_NAME else name[: tracking.MAX_RUN_NAME - 1] + "…"


def open_parent(
    client: MlflowClient,
    experiment_id: str,
    *,
    grid: str,
    resume: bool,
    overrides: Sequence[str],
    sweep_dir: Path,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Returns the RUNNING parent run of this sweep: the latest parent of the same grid when resuming, else new.

    Args:
        client: Client of the sweep's store.
        experiment_id: The sweep's experiment.
        grid: The grid's identity (`plan.grid_identity`), stored as a tag to find the parent again.
        resume: Reuse the latest parent run of the same grid, if there is one.
        overrides: The sweep's command-line overrides: the run's name and `overrides` tag.
        sweep_dir: The sweep's output folder, recorded as a tag.
        tags: Extra tags of a new parent run.
    """
    query = f"tags.`{names.TAG_GRID}` = '{grid}'"
    discard_deleted(client, experiment_id, query)
    earlier = client.search_runs([experiment_id], filter_string=query, max_results=1, order_by=["start_time DESC"])
    if resume and earlier:
        parent = earlier[0]
        killed = end_running_children(client, experiment_id, parent.info.run_id, status="KILLED")
        client.update_run(parent.info.run_id, status="RUNNING")
        client.set_tag(parent.info.run_id, names.TAG_SWEEP_DIR, str(sweep_dir.resolve()))
        log.info(
            "Resuming the sweep of parent run %s (status %s)%s",
            parent.info.run_id,
            parent.info.status,
            f"; marked KILLED the {len(killed)} runs it left RUNNING" if killed else "",
        )
        return parent.info.run_id
    tags = {
        **tracking.source_tags(),
        names.TAG_OVERRIDES: redact(" ".join(overrides)),
        names.TAG_SWEEP_DIR: str(sweep_dir.resolve()),
        names.TAG_GRID: grid,
        **(tags or {}),
    }
    return client.create_run(experiment_id, run_name=sweep_run_name(overrides), tags=tags).info.run_id


def discard_deleted(client: MlflowClient, experiment_id: str, parents_query: str) -> None:
    """Cleans up after runs deleted in the MLflow UI (or API) since the sweep last ran.

    A deleted parent run takes its children with it: any still RUNNING ends KILLED, each is deleted too (no
    orphaned active child), and their saved states are removed. A deleted child's saved state is removed. The
    sweep then starts those jobs afresh: a deleted run means "forget this result".

    Args:
        client: Client of the sweep's store.
        experiment_id: The sweep's experiment.
        parents_query: Selects the parent runs of this grid (`tags.sweep.grid_hash = ...`).
    """
    parents = tracking.search_all_runs(client, [experiment_id], parents_query, view=ViewType.ALL)
    for sweep_parent in parents:
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{sweep_parent.info.run_id}'"
        for child in tracking.search_all_runs(client, [experiment_id], query, view=ViewType.ALL):
            if "deleted" not in (sweep_parent.info.lifecycle_stage, child.info.lifecycle_stage):
                continue
            if child.info.lifecycle_stage != "deleted":  # a deleted run's status can no longer change
                if child.info.status == "RUNNING":
                    client.set_terminated(child.info.run_id, "KILLED")
                client.delete_run(child.info.run_id)
                log.info("Run %s belonged to the deleted parent run %s: deleted too", child.info.run_id,
                         sweep_parent.info.run_id)  # fmt: skip
            if child.data.tags.get(names.TAG_CHECKPOINT):
                checkpoint.remove(Path(child.data.tags[names.TAG_CHECKPOINT]))


def end_running_children(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    *,
    status: str,
    causes: Mapping[str, str] | None = None,
    cause: str = "its process ended without ending the run",
) -> list[str]:
    """Ends the parent's child runs that are still RUNNING although no job of theirs runs any more.

    A job's process can die hard (killed, out of memory, `os._exit`) or a sweep be interrupted: its run would stay
    RUNNING for ever. FAILED runs get the `error` tag: the cause recorded for their job number in `causes`,
    else `cause`. Returns the ids of the runs it ended.
    """
    query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    running = tracking.search_all_runs(client, [experiment_id], filter_string=query)
    for run in running:
        if status == "FAILED":
            why = (causes or {}).get(run.data.tags.get(names.TAG_JOB_NUM, ""), cause)
            client.set_tag(run.info.run_id, names.TAG_ERROR, why)
            log.error("Run %s (%s) was left RUNNING: ended FAILED (%s)", run.info.run_id,
                      run.data.tags.get(names.TAG_OVERRIDES, ""), why)  # fmt: skip
        client.set_terminated(run.info.run_id, status)
    return [run.info.run_id for run in running]


def record_reused_runs(client: MlflowClient, parent_run_id: str, run_ids: Sequence[str]) -> None:
    """Names on the parent the FINISHED runs of other sweeps that its skipped jobs stand for (the report reads it)."""
    known = client.get_run(parent_run_id).data.tags.get(names.TAG_REUSED_RUNS, "").split()
    reused = known + [run_id for run_id in run_ids if run_id not in known]
    if reused != known:
        client.set_tag(parent_run_id, names.TAG_REUSED_RUNS, " ".join(reused))


def runs_by_config(client: MlflowClient, parent_run_id: str) -> dict[str | None, Run]:
    """The sweep's job runs by config hash: its own children (the newest of a config), else the runs it reused."""
    by_config: dict[str | None, Run] = {}
    for run in tracking.sweep_runs(client, client.get_run(parent_run_id)):  # children oldest first, then reused
        mine = run.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent_run_id
        if mine or run.data.tags.get(names.TAG_CONFIG) not in by_config:
            by_config[run.data.tags.get(names.TAG_CONFIG)] = run
    return by_config


def attach_report(client: MlflowClient, parent_run_id: str, out_dir: Path) -> Path | None:
    """Writes the comparison report and logs it to the parent run; a report failure never hides the results.

    Returns:
        The path of report.md, or None if the report failed (logged in one line).
    """
    try:
        written = report.write_report(client, parent_run_id, out_dir)
        report.log_to_parent(client, parent_run_id, written)
    except Exception as err:
        log.error("The comparison report failed: %s", tracking.one_line(err))
        return None
    return written.markdown
