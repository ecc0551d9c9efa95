"""The report's tables: report.md (summary, findings, runs, failures, figures) and runs.csv (one row per job run)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep, display
from alexnet_sweep.report.figures import FIGURES
from alexnet_sweep.report.findings import findings
from alexnet_sweep.report.runs import RunSummary

FINAL_METRICS = (names.VAL_ACCURACY, names.VAL_LOSS, names.ACCURACY, names.LOSS, names.TEST_ACCURACY, names.TEST_LOSS)
TABLE_METRICS = (names.VAL_ACCURACY, names.VAL_LOSS, names.TEST_ACCURACY, names.TEST_LOSS)


def render_markdown(sweep: Sweep) -> str:
    """Renders report.md: summary, findings, runs by val_accuracy, failed jobs, figures (relative links).

    Args:
        sweep: The sweep (`data.load_sweep`).

    Returns:
        The Markdown text, ending with a newline.
    """
    best = sweep.best
    lines = [
        f"# Sweep report: experiment `{sweep.experiment_name}`, parent run `{sweep.parent_run_id}`",
        "",
        f"Sweep `{_cell(sweep.parent_name)}`: {len(sweep.runs)} job runs, {len(sweep.finished)} finished. "
        f"{_swept_sentence(sweep)}",
        "",
        "The **best** run is the finished run with the highest final val_accuracy; test_accuracy is reported, "
        "never used to choose.",
        "",
        "## Findings",
        "",
        *(f"- {sentence}" for sentence in findings(sweep)),
        "",
        "## Runs by val_accuracy",
        "",
    ]
    columns = [sweep.short(key) for key in sweep.swept_keys] or ["run"]
    header = ["", "job", *columns, *TABLE_METRICS, "min val_loss at epoch", "train-val gap", "run_id"]
    rows = [_run_row(sweep, run, best) for run in sweep.ranked] or [["", "", "no finished run"]]
    lines += _table(header, rows)
    ranked = {run.run_id for run in sweep.ranked}
    others = [run for run in sweep.runs if run.run_id not in ranked]
    lines += ["", "## Failed and unfinished jobs", ""]
    if others:
        rows = [[run.job_num, run.status, sweep.label(run), _cause(run), f"`{run.run_id}`"] for run in others]
        lines += _table(["job", "status", "run", "cause", "run_id"], rows)
    else:
        lines.append("None: every job finished.")
    lines += ["", "## Figures", ""]
    for name, (caption, _) in FIGURES.items():
        lines += [f"![{caption}]({name})", ""]
    lines.append("All runs and their numbers: [runs.csv](runs.csv).")
    return "\n".join(lines) + "\n"


def write_runs_csv(sweep: Sweep, path: Path) -> None:
    """Writes one row per job run, in job order, with every varying param (as logged) and the final numbers.

    Args:
        sweep: The sweep.
        path: The CSV file to write (replaced if it exists).
    """
    header = ["run_id", "run_name", "job_num", "status", "is_best", *sweep.varying_keys, *FINAL_METRICS,
              "last_epoch", "best_epoch_by_val_loss", "train_val_gap", "error"]  # fmt: skip
    best_id = sweep.best.run_id if sweep.best else None
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for run in sweep.runs:
            writer.writerow([
                run.run_id, run.name, run.job_num, run.status, str(run.run_id == best_id).lower(),
                *(run.params.get(key, "") for key in sweep.varying_keys),
                *(_plain(run.metrics.get(key)) for key in FINAL_METRICS),
                _plain(run.last_epoch), _plain(run.best_epoch), _rounded(run.gap()), run.error or "",
            ])  # fmt: skip


def _swept_sentence(sweep: Sweep) -> str:
    if not sweep.swept_keys:
        return "No param differs between the runs."
    keys = "; ".join(
        f"`{key}` ({', '.join(display(key, value) for value in sweep.values(key))})" for key in sweep.swept_keys
    )
    sentence = f"Swept keys (the params that differ between the runs): {keys}."
    if sweep.followers:
        follow = ", ".join(f"`{key}` with `{leader}`" for key, leader in sweep.followers.items())
        sentence += f" Changing with them: {follow}."
    return sentence


def _run_row(sweep: Sweep, run: RunSummary, best: RunSummary | None) -> list[str]:
    values = [display(key, run.params.get(key, "")) for key in sweep.swept_keys] or [run.name]
    metrics = [_number(run.metrics.get(key)) for key in TABLE_METRICS]
    epoch = f"{run.best_epoch} of {run.last_epoch}" if run.best_epoch is not None else ""
    mark = "**best**" if best is not None and run.run_id == best.run_id else ""
    return [mark, run.job_num, *values, *metrics, epoch, _number(run.gap()), f"`{run.run_id}`"]


def _cause(run: RunSummary) -> str:
    if run.error:
        return _cell(run.error)
    if run.diverged:  # recorded FINISHED before runs that diverge were ended FAILED
        return "diverged (loss or metrics NaN or infinite)"
    return {
        "KILLED": "interrupted (no error recorded)",
        "RUNNING": "still RUNNING, or its process died without ending the run",
    }.get(run.status, "no cause recorded; see the run in MLflow")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]


def _cell(value: str) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _plain(value: float | None) -> str:
    return "" if value is None else str(value)


def _rounded(value: float | None) -> str:
    return "" if value is None else str(round(value, 6))  # a difference: keep no float noise (0.020000000000000018)
