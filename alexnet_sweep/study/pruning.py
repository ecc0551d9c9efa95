"""A trial's side of a study: report the objective after every epoch, and stop when the pruner says so.

The job reaches its trial through the study's storage (`optuna.trial.Trial(study, trial_id)`), so this works in
the sweeper's process (Hydra's default launcher) and in a launcher's worker processes alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import mlflow
import numpy as np
import optuna

from alexnet_sweep import names
from alexnet_sweep.study.settings import StudySettings, open_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialRef:
    """What a job needs to reach its trial: the study's storage and name, the trial, and the settings."""

    storage: str
    study_name: str
    trial_id: int
    number: int
    metric: str
    pruner: str
    pruner_args: dict[str, Any]


class ReportToTrial(keras.callbacks.Callback):
    """After every epoch, reports the objective to the job's trial and stops training if the trial is pruned.

    Place it after the callbacks that save and log the epoch: a pruned run keeps that epoch's curves and state.
    `stopped` is then the sentence also set as the run's `pruned` tag.
    """

    def __init__(self, ref: TrialRef) -> None:
        super().__init__()
        self.ref = ref
        settings = StudySettings(pruner=ref.pruner, pruner_args=ref.pruner_args)
        study = optuna.load_study(
            study_name=ref.study_name, storage=open_storage(ref.storage), pruner=settings.make_pruner()
        )
        self.study = study
        self.trial = optuna.trial.Trial(study, ref.trial_id)
        self.stopped: str | None = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.ref.metric)
        if value is None or not math.isfinite(float(value)):
            return  # StopOnDivergence ends the run; the sweeper tells the trial FAIL
        step = epoch + 1
        self.trial.report(float(value), step)
        if step < self.params.get("epochs", step + 1) and self.trial.should_prune():  # the last epoch completes it
            self.stopped = f"at epoch {step}: {self.ref.metric} {float(value):.4f} {self._threshold(step)}"
            log.info("Trial %d pruned %s", self.ref.number, self.stopped)
            mlflow.set_tag(names.TAG_PRUNED, self.stopped)
            self.model.stop_training = True

    def _threshold(self, step: int) -> str:
        """What the trial fell short of: the median of the others at this epoch, or its rung's cut-off."""
        trials = self.study.get_trials(deepcopy=False)
        mine = next(t for t in trials if t.number == self.ref.number)
        ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        others = [t for t in trials if t.number != self.ref.number and t.state in ended]
        maximize = self.study.direction == optuna.study.StudyDirection.MAXIMIZE
        if self.ref.pruner == "median":
            values = [t.intermediate_values[step] for t in others if step in t.intermediate_values]
            if values:
                return f"{'below' if maximize else 'above'} the median {np.median(values):.4f} of {len(values)} trials"
        if self.ref.pruner == "successive_halving":
            rungs = [int(key.rsplit("_", 1)[-1]) for key in mine.system_attrs if key.startswith(RUNG)]
            if rungs:  # Optuna's rule: the trial must be in the top len(competing) // reduction_factor (at least 1)
                key = f"{RUNG}{max(rungs)}"
                competing = sorted([mine.system_attrs[key]] + [t.system_attrs[key] for t in trials
                                   if t.number != mine.number and key in t.system_attrs], reverse=maximize)  # fmt: skip
                kept = max(len(competing) // self.ref.pruner_args.get("reduction_factor", 4), 1)
                needed = competing[kept - 1]
                return f"outside the top {kept} of {len(competing)} at rung {max(rungs)} (needed {needed:.4f})"
        if self.ref.pruner == "threshold":
            bounds = {key: self.ref.pruner_args.get(key) for key in ("lower", "upper")}
            return " ".join(f"{key} bound {value}" for key, value in bounds.items() if value is not None)
        return f"(pruned by {self.ref.pruner})"


RUNG = "completed_rung_"  # SuccessiveHalvingPruner's system attribute: the trial's value when it reached rung k
