"""What a sweep job still has to do: skip it, go on in an earlier run, start from a sibling's epochs, or start.

A job is identified by its resolved config (the MLflow params, without the keys that only steer resuming), hashed
into the run tag `sweep.config_hash`; `sweep.prefix_hash` is the same without `epochs`, which finds the siblings
whose first epochs a longer job can reuse.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import checkpoint
from alexnet_sweep.checkpoint import SavedState
from alexnet_sweep.tracking import TAG_SUPERSEDED_BY

log = logging.getLogger(__name__)

TAG_CONFIG = "sweep.config_hash"
TAG_PREFIX = "sweep.prefix_hash"
TAG_GRID = "sweep.grid_hash"
TAG_CHECKPOINT = "checkpoint.dir"
TAG_CONTINUED_FROM = "continued_from"  # the finished sibling whose epochs a run starts from
TAG_SHARED_EPOCHS = "continued_from.epochs"
# They change how a result is obtained, not the result.
NOT_IDENTITY = ("resume", "share_epochs", "checkpoint_dir", "gpu_memory")


def identity(params: Mapping[str, str], *, without: tuple[str, ...] = ()) -> str:
    """Hashes a job's params (see `tracking.flatten_params`) into a short id that ignores bookkeeping keys."""
    kept = {key: value for key, value in params.items() if key not in NOT_IDENTITY + without}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def identity_tags(params: Mapping[str, str]) -> dict[str, str]:
    """The tags that let later sweeps find this job's run: its config hash and its hash without `epochs`."""
    return {TAG_CONFIG: identity(params), TAG_PREFIX: identity(params, without=("epochs",))}


def grid_identity(job_params: list[Mapping[str, str]]) -> str:
    """Identifies a whole sweep by the set of its jobs' configs (the order of the values does not matter)."""
    return hashlib.sha256(" ".join(sorted(identity(params) for params in job_params)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """What to do for one job.

    Attributes:
        action: `skip` (a FINISHED run has this config), `continue` (go on in an unfinished run of this sweep),
            `share` (start a new run from a finished sibling's epochs) or `start`.
        run: The finished run (skip), the run to go on in (continue) or the sibling (share).
        state: The saved training state to start from, if any.
        supersedes: An unfinished run of this job that cannot be continued consistently (its checkpoint is gone
            but epochs were logged); the new run replaces it in the sweep.
    """

    action: str
    run: Run | None = None
    state: SavedState | None = None
    supersedes: Run | None = None

    def describe(self) -> str:
        """One line for the terminal: what this job will do."""
        if self.action == "skip":
            return f"skipped: FINISHED run {self.run.info.run_id} has this config"
        if self.action == "continue":
            where = f"from epoch {self.state.epoch}" if self.state else "from the start"
            return f"continues {self.run.info.status} run {self.run.info.run_id} {where}"
        if self.action == "share":
            return f"starts after epoch {self.state.epoch}, copied from FINISHED run {self.run.info.run_id}"
        return "starts"


def plan_job(
    client: MlflowClient,
    experiment_id: str,
    params: Mapping[str, str],
    *,
    parent_run_id: str | None,
    resume: bool,
    share_epochs: bool,
) -> Plan:
    """Decides what a job does, from the runs of its experiment.

    Args:
        client: Client of the job's store.
        experiment_id: The job's experiment.
        params: The job's params (`tracking.flatten_params`).
        parent_run_id: The sweep's parent run: only its unfinished runs are continued.
        resume: Skip a job whose config has a FINISHED run; continue this sweep's unfinished run of it.
        share_epochs: Start from the saved state of a FINISHED run that differs only in having fewer epochs.

    Returns:
        The plan.
    """
    supersedes = None
    if resume:
        runs = [run for run in _runs_tagged(client, experiment_id, TAG_CONFIG, identity(params)) if _current(run)]
        finished = [run for run in runs if run.info.status == "FINISHED"]
        mine = [run for run in runs if run.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent_run_id]
        unfinished_mine = [run for run in mine if run.info.status != "FINISHED"]
        if finished:  # an unfinished run of this sweep with the same config is then obsolete
            return Plan("skip", run=finished[0], supersedes=unfinished_mine[0] if unfinished_mine else None)
        if mine:
            run, state = mine[0], saved_state(mine[0])
            logged = last_logged_epoch(client, run.info.run_id)
            if (state.epoch if state else 0) >= logged:
                return Plan("continue", run=run, state=state)
            log.warning("Run %s logged %d epochs but its checkpoint is gone: starting over", run.info.run_id, logged)
            supersedes = run
    if share_epochs:
        sibling = _longest_finished_prefix(client, experiment_id, params)
        if sibling is not None:
            return Plan("share", run=sibling[0], state=sibling[1], supersedes=supersedes)
    return Plan("start", supersedes=supersedes)


def _longest_finished_prefix(
    client: MlflowClient, experiment_id: str, params: Mapping[str, str]
) -> tuple[Run, SavedState] | None:
    epochs = int(params["epochs"])
    best: tuple[Run, SavedState] | None = None
    prefix = identity(params, without=("epochs",))
    for run in _runs_tagged(client, experiment_id, TAG_PREFIX, prefix):
        their_epochs = int(run.data.params.get("epochs", 0))
        if run.info.status != "FINISHED" or not _current(run) or not 0 < their_epochs < epochs:
            continue
        state = saved_state(run)
        if state is not None and state.epoch == their_epochs and (best is None or their_epochs > best[1].epoch):
            best = (run, state)
    return best


def saved_state(run: Run) -> SavedState | None:
    """The training state a run saved, if its checkpoint directory still holds one."""
    directory = run.data.tags.get(TAG_CHECKPOINT)
    return checkpoint.load(Path(directory)) if directory else None


def last_logged_epoch(client: MlflowClient, run_id: str) -> int:
    """The highest epoch (metric step) a run has logged its training loss for; 0 if none."""
    return max((metric.step for metric in client.get_metric_history(run_id, "loss")), default=0)


def _current(run: Run) -> bool:
    return TAG_SUPERSEDED_BY not in run.data.tags


def _runs_tagged(client: MlflowClient, experiment_id: str, tag: str, value: str) -> list[Run]:
    """Runs with `tag = value`, newest first."""
    return list(
        client.search_runs(
            [experiment_id], filter_string=f"tags.`{tag}` = '{value}'", order_by=["attributes.start_time DESC"]
        )
    )


def find_sweep_parent(client: MlflowClient, experiment_id: str, grid: str) -> Run | None:
    """The latest parent run of an earlier sweep over the same grid, if any."""
    runs = _runs_tagged(client, experiment_id, TAG_GRID, grid)
    return runs[0] if runs else None


def mark_running_children_killed(client: MlflowClient, parent: Run) -> list[str]:
    """Ends as KILLED the child runs a killed sweep left RUNNING; returns their ids."""
    running = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}' and attributes.status = 'RUNNING'",
    )
    for run in running:
        client.set_terminated(run.info.run_id, "KILLED")
    return [run.info.run_id for run in running]
