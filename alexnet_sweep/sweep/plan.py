"""What each job of a sweep has to do: skip it, go on in an earlier run, start from a sibling's epochs, or start.

A job is identified by its resolved config (the MLflow params without the keys that only steer resuming), hashed
into the run tag `sweep.config_hash`; `sweep.prefix_hash` is the same without `epochs` and finds the finished
siblings whose epochs a longer job can start from. The sweeper makes each job's plan once, before the job starts,
and hands it over whole: the job never looks anything up itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import checkpoint, names, tracking

log = logging.getLogger(__name__)

# Keys that change how a result is obtained, not the result.
NOT_IDENTITY = ("resume", "share_epochs", "checkpoint_dir", "gpu_memory")


def identity(params: Mapping[str, str], *, without: tuple[str, ...] = ()) -> str:
    """Hashes a job's params (`tracking.flatten_params`) into a short id that ignores bookkeeping keys."""
    kept = {key: value for key, value in params.items() if key not in NOT_IDENTITY + without}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def prefix_identity(params: Mapping[str, str]) -> str:
    """The identity without `epochs`: jobs that share it differ only in how long they train."""
    return identity(params, without=("epochs",))


def identity_tags(params: Mapping[str, str]) -> dict[str, str]:
    """The tags that let later sweeps find a job's run: its config hash and its hash without `epochs`."""
    return {names.TAG_CONFIG: identity(params), names.TAG_PREFIX: prefix_identity(params)}


def grid_identity(job_params: Sequence[Mapping[str, str]]) -> str:
    """Identifies a whole sweep by the set of its jobs' configs (the order of the values does not matter)."""
    return hashlib.sha256(" ".join(sorted(identity(params) for params in job_params)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """What one job does, with everything it needs to do it (plain values, so it travels as JSON).

    Attributes:
        action: `skip` (a FINISHED run has this config), `continue` (go on in an unfinished run of this sweep),
            `share` (start a new run from a finished sibling's epochs) or `start`.
        run_id: The finished run (skip), the run to go on in (continue) or the sibling (share).
        run_status: That run's status when the plan was made.
        state_dir: The saved training state to start from (continue, share), if any.
        state_epoch: The epochs done in that state.
        logged_epochs: Continue: the epochs the run has logged already.
        shared_epochs: The epochs of the job's run copied from a sibling rather than trained by it.
        checkpoint_dir: Where the job saves its training state after every epoch.
        supersedes: An unfinished run of this job that cannot be continued consistently (its checkpoint is gone
            but epochs were logged); the job's run replaces it.
    """

    action: str = "start"
    run_id: str | None = None
    run_status: str | None = None
    state_dir: str | None = None
    state_epoch: int = 0
    logged_epochs: int = 0
    shared_epochs: int = 0
    checkpoint_dir: str | None = None
    supersedes: str | None = None

    def describe(self) -> str:
        """One line for the terminal: what this job will do."""
        if self.action == "skip":
            return f"skipped: FINISHED run {self.run_id} has this config"
        if self.action == "continue":
            where = f"from epoch {self.state_epoch}" if self.state_dir else "from the start"
            return f"continues {self.run_status} run {self.run_id} {where}"
        if self.action == "share":
            return f"starts after epoch {self.state_epoch}, copied from FINISHED run {self.run_id}"
        return "starts"


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


def _plan_one(client: MlflowClient, runs: list[Run], parent_run_id: str, fresh_dir: str) -> Plan:
    finished = [run for run in runs if run.info.status == "FINISHED"]
    mine = [run for run in runs if run.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent_run_id]
    unfinished_mine = [run for run in mine if run.info.status != "FINISHED"]
    if finished:  # an unfinished run of this sweep with the same config is then obsolete
        obsolete = unfinished_mine[0].info.run_id if unfinished_mine else None
        return Plan("skip", run_id=finished[0].info.run_id, run_status="FINISHED", supersedes=obsolete)
    if not unfinished_mine:
        return Plan(checkpoint_dir=fresh_dir)
    run = unfinished_mine[0]
    tags = run.data.tags
    state = saved_state(run)
    logged = last_logged_epoch(client, run.info.run_id)
    if (state.epoch if state else 0) < logged:
        log.warning("Run %s logged %d epochs but its checkpoint is gone: starting over", run.info.run_id, logged)
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


def saved_state(run: Run) -> checkpoint.SavedState | None:
    """The training state a run saved, if its checkpoint directory still holds one."""
    directory = run.data.tags.get(names.TAG_CHECKPOINT)
    return checkpoint.load(Path(directory)) if directory else None


def last_logged_epoch(client: MlflowClient, run_id: str) -> int:
    """The highest epoch (metric step) a run has logged its training loss for; 0 if none."""
    return max((metric.step for metric in client.get_metric_history(run_id, names.LOSS)), default=0)
