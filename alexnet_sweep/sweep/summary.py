"""The terminal side of a sweep: each job's progress line and the end-of-sweep table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlflow.entities import Run

from alexnet_sweep import names
from alexnet_sweep.sweep.grid import Job


@dataclass(frozen=True)
class Row:
    """One job of the sweep in the summary: its overrides, outcome and final validation/test accuracy."""

    overrides: str
    status: str
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    cause: str | None = None


def rows(
    jobs: Sequence[Job],
    overrides: Sequence[str],
    runs: Mapping[str | None, Run],
    causes: Mapping[int, str],
    interrupted: bool,
) -> list[Row]:
    """One row per job of the grid, from its MLflow run (by config hash), or NOT STARTED with its cause."""
    never = "never started" if interrupted else "left no MLflow run"
    return [
        row(overrides[num], runs.get(job.identity) if job.refused is None else None, causes.get(num), never)
        for num, job in enumerate(jobs)
    ]


def row(overrides: str, run: Run | None, cause: str | None, missing: str) -> Row:
    """A job's row: from its MLflow run, or NOT STARTED with `cause` (else `missing`) if it has none."""
    if run is None:
        return Row(overrides, "NOT STARTED", cause=cause or missing)
    interrupted = "interrupted" if run.info.status == "KILLED" else None
    return Row(
        overrides,
        run.info.status,
        run.data.metrics.get(names.VAL_ACCURACY),
        run.data.metrics.get(names.TEST_ACCURACY),
        cause=cause or run.data.tags.get(names.TAG_ERROR) or interrupted,
    )


def format_duration(seconds: float) -> str:
    """Formats seconds as `42s`, `3m05s` or `1h02m`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress(elapsed: float, seconds_per_job: Sequence[float], jobs_left: int) -> str:
    """Says how long the sweep has run and, from the jobs that trained so far, about how long is left.

    Args:
        elapsed: Seconds since the sweep started.
        seconds_per_job: The (effective) seconds of each job trained so far.
        jobs_left: Jobs still to train, the one starting now included.
    """
    text = f"elapsed {format_duration(elapsed)}"
    if seconds_per_job and jobs_left:
        text += f", about {format_duration(sum(seconds_per_job) / len(seconds_per_job) * jobs_left)} left"
    return text


def format_summary(rows: Sequence[Row], *, where: Sequence[str], interrupted: bool = False) -> str:
    """Formats the end-of-sweep table: the overrides that differ between jobs -> status, val and test accuracy.

    Args:
        rows: One per job of the grid.
        where: Lines that say where the results are (MLflow experiment and parent run, UI, sweep dir).
        interrupted: Whether the sweep was stopped (Ctrl-C, SIGTERM) before every job ran.
    """
    common = set.intersection(*(set(row.overrides.split()) for row in rows)) if len(rows) > 1 else set()

    def varying(row: Row) -> str:
        return " ".join(part for part in row.overrides.split() if part not in common) or row.overrides

    def rank(row: Row) -> tuple[bool, float]:  # finished runs best first; the others in the grid's order
        finished = row.status == "FINISHED" and row.val_accuracy is not None and math.isfinite(row.val_accuracy)
        return (not finished, -row.val_accuracy if finished else 0.0)

    ordered = sorted(rows, key=rank)
    width = max([len(varying(row)) for row in rows] + [9])
    finished = sum(row.status == "FINISHED" for row in rows)
    lines = [
        f"\nSweep {'interrupted' if interrupted else 'done'}: {finished}/{len(rows)} jobs finished. Best (*) is "
        f"chosen by {names.SELECTION_METRIC}; {names.TEST_ACCURACY} is reported, never used to choose.",
        f"  {'overrides':<{width}}  {'status':<11}  {names.VAL_ACCURACY:>12}  {names.TEST_ACCURACY:>13}",
    ]
    for index, row in enumerate(ordered):
        mark = "*" if index == 0 and row.status == "FINISHED" else " "
        lines.append(
            f"{mark} {varying(row):<{width}}  {row.status:<11}  {_metric(row.val_accuracy):>12}  "
            f"{_metric(row.test_accuracy):>13}"
        )
        if row.status != "FINISHED":
            lines.append(f"    cause: {row.cause or 'see the run in MLflow'}")
    return "\n".join([*lines, *where])


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
