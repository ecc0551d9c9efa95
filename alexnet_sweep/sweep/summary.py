"""The terminal side of a sweep: each job's progress line and the end-of-sweep table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
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
    pruned = run.data.tags.get(names.TAG_PRUNED)  # a study's trial stopped early: not ranked with finished ones
    return Row(
        overrides,
        "PRUNED" if pruned else run.info.status,
        run.data.metrics.get(names.VAL_ACCURACY),
        run.data.metrics.get(names.TEST_ACCURACY),
        cause=cause or pruned or run.data.tags.get(names.TAG_ERROR) or interrupted,
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

    With replicate seeds (`seed=0,1,2`), one line per configuration instead: its finished seeds, mean ± sd of
    val_accuracy and mean test_accuracy, best mean first; the jobs that did not finish are listed below it.

    Args:
        rows: One per job of the grid.
        where: Lines that say where the results are (MLflow experiment and parent run, UI, sweep dir).
        interrupted: Whether the sweep was stopped (Ctrl-C, SIGTERM) before every job ran.
    """
    common = set.intersection(*(set(row.overrides.split()) for row in rows)) if len(rows) > 1 else set()

    def varying(row: Row) -> str:
        return " ".join(part for part in row.overrides.split() if part not in common) or row.overrides

    groups: dict[str, list[Row]] = {}
    for row in rows:
        name = " ".join(part for part in varying(row).split() if not part.startswith("seed=")) or "(all runs)"
        groups.setdefault(name, []).append(row)
    finished = sum(row.status == "FINISHED" for row in rows)
    pruned = sum(row.status == "PRUNED" for row in rows)
    head = f"\nSweep {'interrupted' if interrupted else 'done'}: {finished}/{len(rows)} jobs finished"
    head += f", {pruned} pruned. " if pruned else ". "
    if all(len(group) == 1 for group in groups.values()):
        lines = [head + f"Best (*) is chosen by {names.SELECTION_METRIC}; {_REPORTED}", *_job_lines(rows, varying)]
    else:
        lines = [head + f"Best (*) has the best mean {names.SELECTION_METRIC} over its seeds; {_REPORTED}",
                 *_configuration_lines(groups, varying)]  # fmt: skip
    return "\n".join([*lines, *where])


_REPORTED = f"{names.TEST_ACCURACY} is reported, never used to choose."


def _scored(row: Row) -> bool:
    return row.status == "FINISHED" and row.val_accuracy is not None and math.isfinite(row.val_accuracy)


def _job_lines(rows: Sequence[Row], varying: Callable[[Row], str]) -> list[str]:
    ordered = sorted(rows, key=lambda row: (not _scored(row), -row.val_accuracy if _scored(row) else 0.0))
    width = max([len(varying(row)) for row in rows] + [9])
    lines = [f"  {'overrides':<{width}}  {'status':<11}  {names.VAL_ACCURACY:>12}  {names.TEST_ACCURACY:>13}"]
    for index, row in enumerate(ordered):
        mark = "*" if index == 0 and row.status == "FINISHED" else " "
        lines.append(
            f"{mark} {varying(row):<{width}}  {row.status:<11}  {_metric(row.val_accuracy):>12}  "
            f"{_metric(row.test_accuracy):>13}"
        )
        if row.status != "FINISHED":
            lines.append(f"    cause: {row.cause or 'see the run in MLflow'}")
    return lines


def _configuration_lines(groups: Mapping[str, Sequence[Row]], varying: Callable[[Row], str]) -> list[str]:
    def mean(values: Sequence[float]) -> float:
        return math.fsum(values) / len(values)

    val = {name: [row.val_accuracy for row in group if _scored(row)] for name, group in groups.items()}
    test = {name: [row.test_accuracy for row in group if _scored(row) and row.test_accuracy is not None]
            for name, group in groups.items()}  # fmt: skip
    ordered = sorted(groups, key=lambda name: (not val[name], -mean(val[name]) if val[name] else 0.0))
    width = max([len(name) for name in groups] + [13])
    lines = [f"  {'configuration':<{width}}  {'seeds':>5}  {names.VAL_ACCURACY + ' mean ± sd':>22}  "
             f"{names.TEST_ACCURACY + ' mean':>18}"]  # fmt: skip
    for index, name in enumerate(ordered):
        values = val[name]
        sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        spread = f"{mean(values):.4f}{sd}" if values else "-"
        mark = "*" if index == 0 and values else " "
        lines.append(f"{mark} {name:<{width}}  {f'{len(values)}/{len(groups[name])}':>5}  {spread:>22}  "
                     f"{_metric(mean(test[name]) if test[name] else None):>18}")  # fmt: skip
        for row in groups[name]:
            if row.status != "FINISHED":
                lines.append(f"    {varying(row)}: {row.status}, {row.cause or 'see the run in MLflow'}")
    return lines


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
