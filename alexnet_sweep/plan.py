"""A job's identity and its plan: what the job does (skip, continue a run, start from a sibling's epochs, start).

A job is identified by its resolved config (the MLflow params without the keys that only steer resuming), hashed
into the run tag `sweep.config_hash`; `sweep.prefix_hash` is the same without `epochs` and finds the finished
siblings whose epochs a longer job can start from. The sweeper makes each job's plan once, before the job starts
(`sweep.planning`), and hands it over whole: the job never looks anything up itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alexnet_sweep import names

# Keys that change how a result is obtained, not the result.
NOT_IDENTITY = ("resume", "share_epochs", "checkpoint_dir", "gpu_memory", "reuse_model")


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
        if self.action == "skip" and self.run_status != "FINISHED":
            return f"skipped: run {self.run_id} diverged with this config (change it, e.g. optimizer.lr, to retrain)"
        if self.action == "skip":
            return f"skipped: FINISHED run {self.run_id} has this config"
        if self.action == "continue":
            where = f"from epoch {self.state_epoch}" if self.state_dir else "from the start"
            return f"continues {self.run_status} run {self.run_id} {where}"
        if self.action == "share":
            return f"starts after epoch {self.state_epoch}, copied from FINISHED run {self.run_id}"
        return "starts"
