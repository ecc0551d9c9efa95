"""Writes a sweep's report into a folder, and attaches it with the best configuration to the sweep's parent run."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from alexnet_sweep import names
from alexnet_sweep.labels import short_names
from alexnet_sweep.report import study_figures
from alexnet_sweep.report.data import Sweep, load_sweep
from alexnet_sweep.report.figures import FIGURES
from alexnet_sweep.report.markdown import render_markdown, write_runs_csv
from alexnet_sweep.report.runs import Configuration, RunSummary
from alexnet_sweep.report.stats import summarize
from alexnet_sweep.report.study import Study, is_interval, load_study
from alexnet_sweep.report.study_text import write_trials_csv
from alexnet_sweep.report.tables import config_columns, config_records, write_configs_csv
from alexnet_sweep.tracking import one_line

log = logging.getLogger(__name__)

ARTIFACT_DIR = "report"
TABLE_FILE = "configurations.json"  # the parent's per-configuration MLflow table, under ARTIFACT_DIR
# Besides names.TAG_BEST_RUN and best.<key>, the parent's tags and metrics about its best configuration:
TAG_BEST_CONFIGURATION = names.BEST_PREFIX + "configuration"  # its runs' `configuration` tag, or its label
BEST_MEANS = (names.VAL_ACCURACY, names.TEST_ACCURACY)  # best.<metric>: the mean over its seeds
BEST_SDS = (names.VAL_ACCURACY,)  # best.<metric>_sd: their sd (not logged for one seed)
METRIC_BEST_N = names.BEST_PREFIX + "n"  # its finished seeds
HEATMAP = "test_accuracy_heatmap.png"
# A study's heatmap has a row or column per value: drawn only when its keys take few values (no float interval).
HEATMAP_MAX_VALUES = 10


@dataclass(frozen=True)
class Report:
    """The files of a written report and the sweep they describe."""

    out_dir: Path
    markdown: Path
    runs_csv: Path
    configs_csv: Path
    figures: tuple[Path, ...]
    sweep: Sweep
    study: Study | None = None  # the Optuna study the sweep ran, if it is one
    trials_csv: Path | None = None  # a study's trials.csv

    @property
    def best_configuration(self) -> Configuration | None:
        """The best configuration: the highest mean final val_accuracy over its seeds (None if no job finished)."""
        return self.sweep.best_configuration

    @property
    def best(self) -> RunSummary | None:
        """The best job run: the best replicate of the best configuration (None if no job finished)."""
        return self.sweep.best

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the report: report.md, runs.csv, configs.csv, a study's trials.csv and the figures."""
        trials = (self.trials_csv,) if self.trials_csv is not None else ()
        return (self.markdown, self.runs_csv, self.configs_csv, *trials, *self.figures)


def write_report(client: MlflowClient, parent_run_id: str, out_dir: Path) -> Report:
    """Writes report.md, runs.csv, configs.csv and the figures of a sweep into `out_dir` (created if needed).

    For a study (a parent run with `study.name`) also its Study section, trials.csv and its figures. A figure that
    cannot be drawn is left out with a logged line; pruned runs are listed apart and never ranked.

    Args:
        client: A client of the sweep's tracking store.
        parent_run_id: The sweep's parent run.
        out_dir: Where to write; existing report files there are replaced.

    Returns:
        The report: its paths, the sweep and its best run.
    """
    sweep = load_sweep(client, parent_run_id)
    study = _study(sweep)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [out_dir / name for name, draw in _figures(sweep, study).items() if _draw(draw, out_dir / name)]
    runs_csv = out_dir / "runs.csv"
    write_runs_csv(sweep, runs_csv)
    configs_csv = out_dir / "configs.csv"
    write_configs_csv(sweep, configs_csv)
    trials_csv = None
    if study is not None:
        trials_csv = out_dir / "trials.csv"
        write_trials_csv(study, trials_csv)
    markdown = out_dir / "report.md"
    markdown.write_text(render_markdown(sweep, [path.name for path in figures], study))
    log.info("Wrote the report of sweep %s (%d job runs) to %s", parent_run_id, len(sweep.runs), out_dir)
    return Report(out_dir, markdown, runs_csv, configs_csv, tuple(figures), sweep, study, trials_csv)


def _study(sweep: Sweep) -> Study | None:
    """The study the sweep ran; None for a grid, or (logged) for a study whose tags cannot be read."""
    try:
        return load_study(sweep)
    except Exception as err:  # the sweep's report is still worth writing without its study section
        log.warning("The study of sweep %s cannot be read, reported as a grid: %s", sweep.parent_run_id, one_line(err))
        return None


def _figures(sweep: Sweep, study: Study | None) -> dict[str, Callable[[], Figure]]:
    """The figures to draw: every sweep's, then a study's (its heatmap only when its keys take few values)."""
    figures = {name: partial(draw, sweep) for name, (_, draw) in FIGURES.items()}
    if study is None:
        return figures
    if any(map(is_interval, study.space.values())) or any(
        len(sweep.values(key)) > HEATMAP_MAX_VALUES for key in sweep.config_keys
    ):
        log.info("Figure %s left out: the study searches an interval, so its grid would have a row per trial", HEATMAP)
        del figures[HEATMAP]
    return figures | {name: partial(draw, study) for name, (_, draw) in study_figures.FIGURES.items()}


def _draw(draw: Callable[[], Figure], path: Path) -> bool:
    """Draws a figure into `path`; one that cannot be drawn is logged in one line and left out (False)."""
    try:
        figure = draw()
    except study_figures.NotDrawn as err:
        log.info("Figure %s left out: %s", path.name, err)
        return False
    except Exception as err:  # a figure is never worth failing the sweep's report for
        log.warning("Figure %s failed and is left out: %s", path.name, one_line(err))
        return False
    figure.savefig(path, dpi=100)
    return True


def log_to_parent(client: MlflowClient, parent_run_id: str, report: Report) -> None:
    """Attaches a report to the sweep's parent run and records the best configuration on it.

    Logs the report's files as artifacts under `report/`, the per-configuration table as the MLflow table
    `report/configurations.json` (the rows of configs.csv), and, if a job finished, the tags
    `best.configuration` (the best configuration's label), `best.<key>` (its value of every key that varies in
    the sweep, but `seed`) and `best.run_id` (its best replicate), and the metrics `best.val_accuracy` and
    `best.test_accuracy` (means over its finished seeds), `best.val_accuracy_sd` (with two seeds or more) and
    `best.n` (its finished seeds). Attaching again (a resumed sweep) replaces all of them.

    Args:
        client: A client of the sweep's tracking store.
        parent_run_id: The sweep's parent run (works whether it is still running or has ended).
        report: What `write_report` returned for this sweep.
    """
    for path in report.files:
        client.log_artifact(parent_run_id, str(path), artifact_path=ARTIFACT_DIR)
    table = pd.DataFrame.from_records(config_records(report.sweep))
    # The UI's table view reads a dot in a column name as a path into nested data and shows an empty column.
    short = short_names(config_columns(report.sweep))
    _log_table(client, parent_run_id, table.rename(columns=lambda key: short.get(key, key).replace(".", "_")))
    config, best = report.best_configuration, report.best
    if config is None or best is None:
        log.warning("No job of sweep %s finished: no best configuration to record", parent_run_id)
        return
    sweep = report.sweep
    # The runs' own tag where they have one, so `tags.configuration = '<best.configuration>'` finds its replicates.
    label = best.configuration or sweep.config_label(config)
    tags = {TAG_BEST_CONFIGURATION: label, names.TAG_BEST_RUN: best.run_id}
    tags |= {names.BEST_PREFIX + key: best.params[key] for key in config_columns(sweep) if key in best.params}
    values = {key: summarize(config.final(key)) for key in {*BEST_MEANS, *BEST_SDS} if config.final(key)}
    numbers = {names.BEST_PREFIX + key: values[key].mean for key in BEST_MEANS if key in values}
    numbers |= {f"{names.BEST_PREFIX}{key}_sd": values[key].sd for key in BEST_SDS if key in values and config.n > 1}
    numbers[METRIC_BEST_N] = float(config.n)
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0) for key, value in numbers.items()]
    client.log_batch(parent_run_id, metrics=metrics, tags=[RunTag(key, value) for key, value in tags.items()])


def _log_table(client: MlflowClient, run_id: str, table: pd.DataFrame) -> None:
    """Logs `table` as the run's MLflow table `report/configurations.json`, replacing an earlier one.

    `MlflowClient.log_table` appends to a table that exists; attaching a report again must replace it, so then
    the file is written in the same format (pandas' JSON `split` orientation) and logged over the old one.
    """
    artifact_file = f"{ARTIFACT_DIR}/{TABLE_FILE}"
    if artifact_file not in {item.path for item in client.list_artifacts(run_id, ARTIFACT_DIR)}:
        client.log_table(run_id, data=table, artifact_file=artifact_file)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, TABLE_FILE)
        table.to_json(path, orient="split", index=False, date_format="iso")
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_DIR)
