"""The comparison report of a sweep, read from MLflow only: report.md, runs.csv and figures.

    python -m alexnet_sweep.report [--tracking-uri URI] [--experiment NAME] [--parent RUN_ID] [--out DIR]

writes the report of a sweep (default: the latest one in the experiment) and prints the path of its report.md.
The sweep calls `write_report` and `log_to_parent` at its end, which also attach the report to its parent run.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.redact import redact
from alexnet_sweep.report_data import RunSummary, Sweep, display, latest_sweep_parent, load_sweep
from alexnet_sweep.report_figures import FIGURES
from alexnet_sweep.report_findings import findings

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "alexnet_sweep"
DEFAULT_OUT = "reports/<parent run id>"
ARTIFACT_DIR = "report"
FINAL_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss", "test_accuracy", "test_loss")
TABLE_METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss")
_SERVER_TIMEOUT_S = 5


@dataclass(frozen=True)
class Report:
    """The files of a written report and the sweep they describe."""

    out_dir: Path
    markdown: Path
    runs_csv: Path
    figures: tuple[Path, ...]
    sweep: Sweep

    @property
    def best(self) -> RunSummary | None:
        """The best job run: the highest final val_accuracy among finished runs (None if none finished)."""
        return self.sweep.best

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.markdown, self.runs_csv, *self.figures)


def write_report(client: MlflowClient, parent_run_id: str, out_dir: Path) -> Report:
    """Writes report.md, runs.csv and the figures of a sweep into `out_dir` (created if needed).

    Args:
        client: A client of the sweep's tracking store.
        parent_run_id: The sweep's parent run.
        out_dir: Where to write; existing report files there are replaced.

    Returns:
        The report: its paths, the sweep and its best run.
    """
    sweep = load_sweep(client, parent_run_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, (_, draw) in FIGURES.items():
        draw(sweep).savefig(out_dir / name, dpi=100)
        figures.append(out_dir / name)
    runs_csv = out_dir / "runs.csv"
    _write_csv(sweep, runs_csv)
    markdown = out_dir / "report.md"
    markdown.write_text(render_markdown(sweep))
    log.info("Wrote the report of sweep %s (%d job runs) to %s", parent_run_id, len(sweep.runs), out_dir)
    return Report(out_dir, markdown, runs_csv, tuple(figures), sweep)


def log_to_parent(client: MlflowClient, parent_run_id: str, report: Report) -> None:
    """Attaches a report to the sweep's parent run and records the best job run on it.

    Logs the report's files as artifacts under `report/`, and, if a job finished, sets the tags `best.run_id` and
    `best.<key>` = the best run's own param for every key that varies in the sweep, and the metrics
    `best.val_accuracy` and `best.test_accuracy` (the best run's final values).

    Args:
        client: A client of the sweep's tracking store.
        parent_run_id: The sweep's parent run (works whether it is still running or has ended).
        report: What `write_report` returned for this sweep.
    """
    for path in report.files:
        client.log_artifact(parent_run_id, str(path), artifact_path=ARTIFACT_DIR)
    best = report.best
    if best is None:
        log.warning("No job of sweep %s finished: no best run to record", parent_run_id)
        return
    tags = {"best.run_id": best.run_id}
    tags |= {f"best.{key}": best.params[key] for key in report.sweep.varying_keys if key in best.params}
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"best.{key}", best.metrics[key], now, 0)
        for key in ("val_accuracy", "test_accuracy")
        if key in best.metrics
    ]
    client.log_batch(parent_run_id, metrics=metrics, tags=[RunTag(key, value) for key, value in tags.items()])


def render_markdown(sweep: Sweep) -> str:
    """Renders report.md: summary, findings, runs by val_accuracy, failed jobs, figures (relative links)."""
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


def _write_csv(sweep: Sweep, path: Path) -> None:
    """One row per job run, in job order, with every varying param (as logged) and the final numbers."""
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


def _plain(value: float | None) -> str:
    return "" if value is None else str(value)


def _rounded(value: float | None) -> str:
    return "" if value is None else str(round(value, 6))  # a difference: keep no float noise (0.020000000000000018)


# --- command line -------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the report of a sweep; returns the exit status (2 on bad input, with a one-line error)."""
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_sweep.report",
        description="Write the comparison report (report.md, runs.csv, figures) of a sweep, read from MLflow.",
    )
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow store (default: %(default)s)")
    parser.add_argument("--experiment", help=f"experiment of the sweep (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--parent", help="the sweep's parent run id (default: the latest sweep in the experiment)")
    parser.add_argument("--out", type=Path, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        client = open_store(args.tracking_uri)
        parent_run_id = find_parent(client, args.tracking_uri, args.experiment, args.parent)
        out_dir = args.out if args.out is not None else Path("reports", parent_run_id)
        if out_dir.exists() and not out_dir.is_dir():
            raise UserInputError(f"--out={str(out_dir)!r}: exists and is not a folder")
    except UserInputError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return 2
    report = write_report(client, parent_run_id, out_dir)
    print(report.markdown)
    return 0


def open_store(tracking_uri: str) -> MlflowClient:
    """Opens an existing tracking store for reading; creates nothing.

    Raises:
        UserInputError: If a SQLite store's file is missing, MLflow cannot use the URI, or no server answers.
    """
    option = f"--tracking-uri={tracking_uri!r}"
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise UserInputError(f"{option}: no MLflow store at {path.resolve()}")
    elif urlparse(tracking_uri).scheme in ("http", "https"):
        try:  # MLflow's client would retry an absent server for minutes
            requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=_SERVER_TIMEOUT_S)
        except requests.RequestException as err:
            raise UserInputError(f"{option}: no MLflow server answers ({type(err).__name__})") from None
    try:
        return MlflowClient(tracking_uri=tracking_uri)
    except Exception as err:  # an unknown scheme, the refused file store, a missing database driver, ...
        raise UserInputError(f"{option}: {type(err).__name__}: {first_line(err)}") from None


def find_parent(client: MlflowClient, tracking_uri: str, experiment: str | None, parent: str | None) -> str:
    """Returns the id of the sweep parent run to report: `parent`, or the latest sweep of `experiment`.

    Raises:
        UserInputError: If the experiment or run does not exist, the run is not a sweep's parent run, or the
            experiment holds no sweep; the message names the option and its value.
    """
    try:
        if parent is not None:
            return _check_parent(client, tracking_uri, experiment, parent)
        name = experiment or DEFAULT_EXPERIMENT
        found = client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage == "deleted":
            names = sorted(e.name for e in client.search_experiments())
            raise UserInputError(
                f"--experiment={name!r}: no such experiment in {tracking_uri} (it has: {', '.join(names) or 'none'})"
            )
        latest = latest_sweep_parent(client, found.experiment_id)
        if latest is None:
            raise UserInputError(f"--experiment={name!r}: holds no sweep (a parent run with job runs) to report")
        return latest.info.run_id
    except MlflowException as err:
        raise UserInputError(f"--tracking-uri={tracking_uri!r}: {first_line(err)}") from None


def _check_parent(client: MlflowClient, tracking_uri: str, experiment: str | None, parent: str) -> str:
    option = f"--parent={parent!r}"
    try:
        run = client.get_run(parent)
    except MlflowException:
        raise UserInputError(f"{option}: no such run in {tracking_uri}") from None
    if MLFLOW_PARENT_RUN_ID in run.data.tags:
        raise UserInputError(f"{option}: is a job run of sweep {run.data.tags[MLFLOW_PARENT_RUN_ID]}; pass that id")
    experiment_name = client.get_experiment(run.info.experiment_id).name
    if experiment is not None and experiment != experiment_name:
        raise UserInputError(f"{option}: belongs to experiment {experiment_name!r}, not --experiment={experiment!r}")
    if not client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'", max_results=1
    ):
        raise UserInputError(f"{option}: has no job runs, so it is not a sweep's parent run")
    return parent


if __name__ == "__main__":
    sys.exit(main())
