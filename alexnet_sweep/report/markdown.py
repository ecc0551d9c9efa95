"""The report's text: report.md (summary, study, findings, configurations, runs, failures, figures), runs.csv."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from alexnet_sweep import names
from alexnet_sweep.report.claims import claims_section
from alexnet_sweep.report.data import Sweep, display
from alexnet_sweep.report.figures import FIGURES
from alexnet_sweep.report.findings import findings
from alexnet_sweep.report.runs import RunSummary, run_rank
from alexnet_sweep.report.stats import Summary
from alexnet_sweep.report.study import Study
from alexnet_sweep.report.study_text import pruned_section, study_section
from alexnet_sweep.report.tables import ConfigRow, config_rows
from alexnet_sweep.report.text import cell, number, plain, table

FINAL_METRICS = (names.VAL_ACCURACY, names.VAL_LOSS, names.ACCURACY, names.LOSS, names.TEST_ACCURACY, names.TEST_LOSS)
TABLE_METRICS = (names.VAL_ACCURACY, names.VAL_LOSS, names.TEST_ACCURACY, names.TEST_LOSS)


def render_markdown(sweep: Sweep, figures: Sequence[str] | None = None, study: Study | None = None) -> str:
    """Renders report.md: summary, study, findings, configurations, runs, failed jobs, pruned trials, figures.

    The configurations table comes first, one row per configuration (its seeds' mean ± sd and 95% interval) even
    when every configuration ran one seed (n = 1, sd "–"); the runs table below lists every finished run, grouped
    by configuration in the same order. Runs a study pruned are listed apart (Pruned trials), never ranked.

    Args:
        sweep: The sweep (`data.load_sweep`).
        figures: The names of the figures that were drawn, linked relatively (default: every `figures.FIGURES`).
        study: The study the sweep ran (`study.load_study`), which adds the Study section; None for a grid.

    Returns:
        The Markdown text, ending with a newline.
    """
    figures = list(FIGURES) if figures is None else figures
    pruned = sum(run.pruned is not None for run in sweep.runs)
    lines = [
        f"# Sweep report: experiment `{sweep.experiment_name}`, parent run `{sweep.parent_run_id}`",
        "",
        f"Sweep `{cell(sweep.parent_name)}`: {len(sweep.runs)} job runs, {len(sweep.finished)} finished"
        f"{f', {pruned} pruned' if pruned else ''}. {_swept_sentence(sweep)}",
        "",
        "A configuration is a setting of the swept keys but `seed`; its runs with different seeds are its "
        "replicates. The **best** configuration has the highest mean final val_accuracy over its seeds, and the "
        "**best** run is its best replicate; test_accuracy is reported, never used to choose.",
        "",
        *(study_section(study, figures) if study is not None else []),
        "## Findings",
        "",
        *(f"- {sentence}" for sentence in findings(sweep)),
        "",
        *claims_section(sweep),
        "## Configurations by mean val_accuracy",
        "",
        *_configurations(sweep),
        "",
        "## Runs",
        "",
        "Every finished run, grouped by configuration in the order above, best replicate first.",
        "",
    ]
    best = sweep.best
    columns = [sweep.short(key) for key in sweep.swept_keys] or ["run"]
    header = ["", "job", *columns, *TABLE_METRICS, "min val_loss at epoch", "train-val gap", "run_id"]
    runs = [run for config in sweep.ranked_configurations for run in sorted(config.finished, key=run_rank)]
    rows = [_run_row(sweep, run, best) for run in runs] or [["", "", "no finished run"]]
    lines += table(header, rows)
    listed = {run.run_id for run in runs}
    others = [run for run in sweep.runs if run.run_id not in listed and run.pruned is None]
    lines += ["", "## Failed and unfinished jobs", ""]
    if others:
        rows = [[run.job_num, run.status, sweep.label(run), _cause(run), f"`{run.run_id}`"] for run in others]
        lines += table(["job", "status", "run", "cause", "run_id"], rows)
    else:
        lines.append("None: every job finished." if not pruned else "None: every job finished or was pruned.")
    lines += ["", *pruned_section(sweep, study), "## Figures", ""]
    for name in figures:
        if name in FIGURES:
            lines += [f"![{FIGURES[name][0]}]({name})", ""]
    lines.append(
        "All runs and their numbers: [runs.csv](runs.csv); one row per configuration: [configs.csv](configs.csv)."
    )
    return "\n".join(lines) + "\n"


def _configurations(sweep: Sweep) -> list[str]:
    """The configurations table: one row per configuration with a finished replicate, best first."""
    rows = [row for row in config_rows(sweep) if row.rank is not None]
    if not rows:
        return ["No configuration has a finished run."]
    keys = list(sweep.config_keys)
    header = ["", *([sweep.short(key) for key in keys] or ["configuration"]), "n (seeds)",
              "val_accuracy mean ± sd", "val_accuracy 95% CI", "test_accuracy mean ± sd", "val_loss mean",
              "test_loss mean"]  # fmt: skip
    lines = table(header, [_config_row(row, keys) for row in rows])
    failed = sum(len(row.config.runs) - row.n for row in rows)
    runs = f"{failed} run{'s' if failed != 1 else ''}"
    note = f" {runs} of these configurations did not finish: n counts the finished ones." if failed else ""
    return [
        "Mean ± sample standard deviation over each configuration's finished seeds, and Student's t 95% interval "
        f'of the mean ("–": one seed measures no noise).{note}',
        "",
        *lines,
    ]


def _config_row(row: ConfigRow, keys: list[str]) -> list[str]:
    values = [display(key, row.config.values.get(key) or "?") for key in keys] or [row.label]
    val, test = row.stats.get(names.VAL_ACCURACY), row.stats.get(names.TEST_ACCURACY)
    interval = "–" if val is None or row.n < 2 else f"[{val.low:.4f}, {val.high:.4f}]"
    means = [number(row.stats[key].mean) if key in row.stats else "" for key in (names.VAL_LOSS, names.TEST_LOSS)]
    mark = "**best**" if row.is_best else ""
    return [mark, *values, str(row.n), _mean_sd(val), interval, _mean_sd(test), *means]


def _mean_sd(summary: Summary | None) -> str:
    if summary is None:
        return ""
    return f"{summary.mean:.4f} ± {'–' if summary.n < 2 else f'{summary.sd:.4f}'}"


def write_runs_csv(sweep: Sweep, path: Path) -> None:
    """Writes one row per job run, in job order, with its configuration, its varying params and final numbers.

    Columns: the run, its configuration's label (`Sweep.config_label`), every varying param (as logged), the final
    metrics, its last epoch, the epoch of minimum val_loss, the train-val gap and its error.

    Args:
        sweep: The sweep.
        path: The CSV file to write (replaced if it exists).
    """
    header = ["run_id", "run_name", "job_num", "status", "is_best", "configuration", *sweep.varying_keys,
              *FINAL_METRICS, "last_epoch", "best_epoch_by_val_loss", "train_val_gap", "error"]  # fmt: skip
    best_id = sweep.best.run_id if sweep.best else None
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for run in sweep.runs:
            writer.writerow([
                run.run_id, run.name, run.job_num, run.status, str(run.run_id == best_id).lower(),
                sweep.config_label(sweep.configuration_of(run)),
                *(run.params.get(key, "") for key in sweep.varying_keys),
                *(plain(run.metrics.get(key)) for key in FINAL_METRICS),
                plain(run.last_epoch), plain(run.best_epoch), _rounded(run.gap()), run.error or "",
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
    metrics = [number(run.metrics.get(key)) for key in TABLE_METRICS]
    epoch = f"{run.best_epoch} of {run.last_epoch}" if run.best_epoch is not None else ""
    mark = "**best**" if best is not None and run.run_id == best.run_id else ""
    return [mark, run.job_num, *values, *metrics, epoch, number(run.gap()), f"`{run.run_id}`"]


def _cause(run: RunSummary) -> str:
    if run.error:
        return cell(run.error)
    if run.diverged:  # recorded FINISHED before runs that diverge were ended FAILED
        return "diverged (loss or metrics NaN or infinite)"
    return {
        "KILLED": "interrupted (no error recorded)",
        "RUNNING": "still RUNNING, or its process died without ending the run",
    }.get(run.status, "no cause recorded; see the run in MLflow")


def _rounded(value: float | None) -> str:
    return "" if value is None else str(round(value, 6))  # a difference: keep no float noise (0.020000000000000018)
