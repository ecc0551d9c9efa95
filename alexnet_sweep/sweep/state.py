"""The sweep file: what the sweeper tells its jobs, written into the sweep dir before each batch starts.

Every launcher's jobs see the sweep dir (a shared filesystem for cluster launchers), so this works for all of them.
A job reads only its own entry: where to record, under which parent run, its place in the sweep and its plan.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alexnet_sweep.plan import Plan

SWEEP_FILE = "mlflow_sweep.json"


@dataclass(frozen=True)
class JobEntry:
    """One job's instructions: its plan, progress line, run name and tags, and in a study its trial.

    `trial` holds the fields of `alexnet_sweep.study.pruning.TrialRef` (plain values: the file is JSON).
    """

    plan: Plan
    progress: str = ""
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    trial: dict[str, Any] | None = None


@dataclass
class SweepFile:
    """The sweep's store, experiment and parent run, its size, and each launched job's entry by job number."""

    tracking_uri: str
    experiment_id: str
    experiment_name: str
    parent_run_id: str
    num_jobs: int
    jobs: dict[str, JobEntry] = field(default_factory=dict)

    def save(self, sweep_dir: Path) -> None:
        """Writes the file atomically: a job starting meanwhile reads the old version or the whole new one."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        temporary = sweep_dir / f"{SWEEP_FILE}.tmp"
        temporary.write_text(json.dumps(asdict(self), indent=1))
        os.replace(temporary, sweep_dir / SWEEP_FILE)

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepFile:
        """Reads the file the sweeper wrote into `sweep_dir`."""
        data = json.loads((sweep_dir / SWEEP_FILE).read_text())
        jobs = {num: JobEntry(**{**entry, "plan": Plan(**entry["plan"])}) for num, entry in data.pop("jobs").items()}
        return cls(**data, jobs=jobs)
