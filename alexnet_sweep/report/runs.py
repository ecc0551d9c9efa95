"""The units of a sweep's report: one job run (`RunSummary`) and a configuration's replicates (`Configuration`)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from alexnet_sweep import names
from alexnet_sweep.labels import SEED_KEY


@dataclass(frozen=True)
class RunSummary:
    """One job run of a sweep: what it was (params, tags), how it ended, and its numbers.

    Attributes:
        params: The flattened resolved config, as logged (all strings).
        metrics: Final values (`val_accuracy`, `test_accuracy`, ...): MLflow's latest value of each metric.
        history: Per-epoch values of `loss`, `accuracy`, `val_loss`, `val_accuracy`: {epoch: value}.
        pruned: Why a study pruned it (its `pruned` tag): a pruned run is never ranked with finished ones.
        trial_numbers: The study's trials it stands for (its `trial.number` tag; several where the study repeated a
            configuration and reused the run); () outside a study.
        trial_state: Its trial's state as Optuna recorded it (COMPLETE, PRUNED, FAIL), None where not recorded.
    """

    run_id: str
    name: str
    status: str
    job_num: str
    overrides: str
    error: str | None
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    history: Mapping[str, Mapping[int, float]]
    configuration: str | None = None  # the tag that groups its replicates in the MLflow UI, if it has one
    pruned: str | None = None
    trial_numbers: tuple[int, ...] = ()
    trial_state: str | None = None

    @property
    def diverged(self) -> bool:
        """Whether its loss or a metric became NaN or infinite.

        Such a run ends FAILED with the error `diverged at epoch k`; a run recorded before that check existed ended
        FINISHED with NaN or infinite numbers and counts as diverged too.
        """
        if self.error is not None and self.error.startswith(f"{names.DIVERGED} "):
            return True
        values = [*self.metrics.values(), *(value for points in self.history.values() for value in points.values())]
        return not all(_finite(value) for value in values)

    @property
    def finished(self) -> bool:
        """FINISHED, not diverged and not pruned: a run whose numbers can be compared.

        A pruned run ends FINISHED but stopped early on purpose: its numbers are listed apart, never ranked.
        """
        return self.status == "FINISHED" and not self.diverged and self.pruned is None

    @property
    def val_accuracy(self) -> float | None:
        return self.metrics.get(names.VAL_ACCURACY)

    @property
    def last_epoch(self) -> int | None:
        """The last epoch with a val_loss, or None without per-epoch metrics."""
        return max(self.history.get(names.VAL_LOSS, {}), default=None)

    @property
    def best_epoch(self) -> int | None:
        """The epoch of minimum val_loss (the earliest on a tie), or None without per-epoch metrics."""
        val_loss = self.history.get(names.VAL_LOSS, {})
        return min(sorted(val_loss), key=val_loss.__getitem__, default=None)

    def gap(self, epoch: int | None = None) -> float | None:
        """Returns train minus validation accuracy at `epoch` (default: the last one), None where not recorded."""
        train, val = self.history.get(names.ACCURACY, {}), self.history.get(names.VAL_ACCURACY, {})
        epoch = self.last_epoch if epoch is None else epoch
        return train[epoch] - val[epoch] if epoch in train and epoch in val else None


@dataclass(frozen=True)
class Configuration:
    """The runs of a sweep that differ only in `seed`: replicates of one configuration.

    Attributes:
        values: The configuration's value of each swept key but `seed` ({} when only the seed varies).
        runs: All its job runs, in job order, finished or not.
    """

    values: Mapping[str, str]
    runs: tuple[RunSummary, ...]

    @property
    def finished(self) -> tuple[RunSummary, ...]:
        """Its finished runs with a final val_accuracy: the replicates its statistics are computed from."""
        return tuple(run for run in self.runs if run.finished and run.val_accuracy is not None)

    @property
    def n(self) -> int:
        """How many replicates finished."""
        return len(self.finished)

    def final(self, metric: str) -> list[float]:
        """Returns the final value of `metric` in each finished replicate that logged it, in job order."""
        return [run.metrics[metric] for run in self.finished if metric in run.metrics]

    def by_seed(self, metric: str) -> dict[str, float]:
        """Returns {seed: final value of `metric`} of the finished replicates (the first run of a repeated seed)."""
        values: dict[str, float] = {}
        for run in self.finished:
            if metric in run.metrics:
                values.setdefault(run.params.get(SEED_KEY, ""), run.metrics[metric])
        return values

    @property
    def mean_val_accuracy(self) -> float | None:
        """The mean final val_accuracy of its finished replicates: what ranks configurations."""
        values = self.final(names.VAL_ACCURACY)
        return sum(values) / len(values) if values else None

    @property
    def best_run(self) -> RunSummary | None:
        """Its finished replicate with the highest final val_accuracy (then the lowest val_loss)."""
        return min(self.finished, key=run_rank, default=None)


def _finite(value: float) -> bool:
    # MLflow stores an infinite metric as the largest float.
    return math.isfinite(value) and abs(value) < sys.float_info.max


def run_rank(run: RunSummary) -> tuple[float, float]:
    """Sorts finished runs best first: highest final val_accuracy, then lowest final val_loss."""
    return (-run.val_accuracy, run.metrics.get(names.VAL_LOSS, math.inf))
