"""Planning a sweep's jobs from the runs of its experiment: skip, continue, share a sibling's epochs, or start."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import checkpoint, names, tracking
from alexnet_sweep.plan import Plan, identity, prefix_identity
from alexnet_sweep.sweep.grid import Job

log = logging.getLogger(__name__)


def plan_jobs(
    client: MlflowClient,
    experiment_id: str,
    job_params: Sequence[Mapping[str, str]],
    *,
    parent_run_id: str,
    resume: bool,
    checkpoint_root: Path,
) -> list[Plan]:
    """Plans every job of a sweep from the runs of its experiment (one paged search, whatever the grid's size).

    Args:
        client: Client of the sweep's store.
        experiment_id: The sweep's experiment.
        job_params: Each job's params (`tracking.flatten_params`).
        parent_run_id: The sweep's parent run: only its unfinished runs are continued.
        resume: Skip a job whose config has a FINISHED run; continue this sweep's unfinished run of it.
        checkpoint_root: The folder under which new runs save their states (`checkpoint_dir`, absolute).

    Returns:
        One plan per job: skip, continue or start (`share_from_sibling` turns a start into a share later, once
        the siblings have finished).
    """
    by_config: dict[str, list[Run]] = {}
    if resume:
        for run in tracking.search_all_runs(client, [experiment_id], order_by=["attributes.start_time DESC"]):
            config = run.data.tags.get(names.TAG_CONFIG)
            if config and names.TAG_SUPERSEDED_BY not in run.data.tags:
                by_config.setdefault(config, []).append(run)
    plans = []
    for params in job_params:
        fresh_dir = str(checkpoint_root / parent_run_id / identity(params))
        plans.append(_plan_one(client, by_config.get(identity(params), []), parent_run_id, fresh_dir))
    return plans


def describe_resume(plans: Sequence[Plan]) -> str | None:
    """One line on what resuming decided (`Resume: 2 of 4 jobs have a FINISHED run ...`), None if all start."""
    skipped = [plan for plan in plans if plan.action == "skip"]
    continued = [plan for plan in plans if plan.action == "continue"]
    if not skipped and not continued:
        return None
    epochs = ", ".join(f"epoch {plan.state_epoch}" for plan in continued)
    diverged = sum(plan.run_status != "FINISHED" for plan in skipped)
    return (
        f"Resume: {len(skipped) - diverged} of {len(plans)} jobs have a FINISHED run"
        f"{f' or diverged ({diverged})' if diverged else ''} (skipped), {len(continued)} continue an unfinished run"
        f"{f' (from {epochs})' if continued else ''}, {len(plans) - len(skipped) - len(continued)} start "
        "(resume=false runs them all again)"
    )


def _plan_one(client: MlflowClient, runs: list[Run], parent_run_id: str, fresh_dir: str) -> Plan:
    finished = [run for run in runs if run.info.status == "FINISHED"]
    mine = [run for run in runs if run.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent_run_id]
    unfinished_mine = [run for run in mine if run.info.status != "FINISHED"]
    diverged = [run for run in runs if run.data.tags.get(names.TAG_ERROR, "").startswith(names.DIVERGED)]
    if finished:  # an unfinished run of this sweep with the same config is then obsolete
        obsolete = unfinished_mine[0].info.run_id if unfinished_mine else None
        return Plan("skip", run_id=finished[0].info.run_id, run_status="FINISHED", supersedes=obsolete)
    if diverged:  # the same config and seed diverge again: its answer stands until the config changes
        return Plan("skip", run_id=diverged[0].info.run_id, run_status=diverged[0].info.status)
    if not unfinished_mine:
        return Plan(checkpoint_dir=fresh_dir)
    run = unfinished_mine[0]
    tags = run.data.tags
    state = saved_state(run)
    logged = last_logged_epoch(client, run.info.run_id)
    if (state.epoch if state else 0) < logged:
        log.warning("Run %s logged %d epochs but has no usable saved state: starting over in a new run",
                    run.info.run_id, logged)  # fmt: skip
        return Plan(checkpoint_dir=fresh_dir, supersedes=run.info.run_id)
    return Plan(
        "continue",
        run_id=run.info.run_id,
        run_status=run.info.status,
        state_dir=str(state.directory) if state else None,
        state_epoch=state.epoch if state else 0,
        logged_epochs=logged,
        shared_epochs=int(tags.get(names.TAG_SHARED_EPOCHS, 0)) if state else 0,
        checkpoint_dir=tags.get(names.TAG_CHECKPOINT) or fresh_dir,
    )


def share_from_sibling(client: MlflowClient, experiment_id: str, params: Mapping[str, str], plan: Plan) -> Plan:
    """Turns a `start` plan into `share` if a FINISHED sibling (fewer epochs, same config) saved its final state.

    Of several such siblings the one with the most epochs is chosen.
    """
    if plan.action != "start":
        return plan
    epochs = int(params["epochs"])
    best: tuple[Run, checkpoint.SavedState] | None = None
    query = f"tags.`{names.TAG_PREFIX}` = '{prefix_identity(params)}' and attributes.status = 'FINISHED'"
    for run in tracking.search_all_runs(client, [experiment_id], filter_string=query):
        their_epochs = int(run.data.params.get("epochs", 0))
        if names.TAG_SUPERSEDED_BY in run.data.tags or not 0 < their_epochs < epochs:
            continue
        if best is not None and their_epochs <= best[1].epoch:
            continue
        state = saved_state(run)
        if state is not None and state.epoch == their_epochs:
            best = (run, state)
    if best is None:
        return plan
    run, state = best
    return replace(
        plan,
        action="share",
        run_id=run.info.run_id,
        run_status="FINISHED",
        state_dir=str(state.directory),
        state_epoch=state.epoch,
        shared_epochs=state.epoch,
    )


def release_saved_state(job: Job, plan: Plan, pending: Sequence[Job]) -> bool:
    """Deletes a finished job's saved state unless a job still to run may start from it; says if it did."""
    longer_later = any(
        prefix_identity(other.params) == prefix_identity(job.params) and other.epochs > job.epochs for other in pending
    )
    if longer_later or not plan.checkpoint_dir:
        return False
    checkpoint.remove(Path(plan.checkpoint_dir))
    return True


def remove_saved_states(finished: Sequence[Plan], folder: Path) -> None:
    """At the end of a sweep: deletes the finished jobs' saved states, and the sweep's folder of them once empty."""
    for plan in finished:
        if plan.checkpoint_dir:
            checkpoint.remove(Path(plan.checkpoint_dir))  # resume and sharing are done with it
    with contextlib.suppress(OSError):
        folder.rmdir()


def saved_state(run: Run) -> checkpoint.SavedState | None:
    """The training state a run saved, if its checkpoint directory still holds a usable one (`checkpoint.load`)."""
    directory = run.data.tags.get(names.TAG_CHECKPOINT)
    return checkpoint.load(Path(directory)) if directory else None


def last_logged_epoch(client: MlflowClient, run_id: str) -> int:
    """The highest epoch (metric step) a run has logged its training loss for; 0 if none."""
    return max((metric.step for metric in client.get_metric_history(run_id, names.LOSS)), default=0)
