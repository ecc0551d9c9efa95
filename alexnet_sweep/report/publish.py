"""Writes a sweep's report into a folder, and attaches it with the best run to the sweep's parent run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep, load_sweep
from alexnet_sweep.report.figures import FIGURES
from alexnet_sweep.report.markdown import render_markdown, write_runs_csv
from alexnet_sweep.report.runs import RunSummary

log = logging.getLogger(__name__)

ARTIFACT_DIR = "report"
BEST_METRICS = (names.VAL_ACCURACY, names.TEST_ACCURACY)  # logged on the parent as best.<metric>


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
        """Every file of the report: report.md, runs.csv and the figures."""
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
    write_runs_csv(sweep, runs_csv)
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
    tags = {names.TAG_BEST_RUN: best.run_id}
    tags |= {names.BEST_PREFIX + key: best.params[key] for key in report.sweep.varying_keys if key in best.params}
    now = int(time.time() * 1000)
    metrics = [
        Metric(names.BEST_PREFIX + key, best.metrics[key], now, 0) for key in BEST_METRICS if key in best.metrics
    ]
    client.log_batch(parent_run_id, metrics=metrics, tags=[RunTag(key, value) for key, value in tags.items()])
