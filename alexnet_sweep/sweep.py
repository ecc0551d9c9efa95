"""Hydra glue: run one job in single-run or multirun mode, and the sweep's MLflow parent run and summary.

`MlflowSweepCallback` (registered in conf/config.yaml under `hydra.callbacks`) opens the sweep's parent run
before any job starts and, once all jobs are done, prints the comparison table and ends the parent run. Jobs find
the parent run id and the job count in `mlflow_sweep.json` in the sweep directory, which works for every launcher
whose jobs see that directory.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from alexnet_sweep import tracking, train
from alexnet_sweep.errors import UserInputError, first_line

log = logging.getLogger(__name__)

STATE_FILE = "mlflow_sweep.json"
JOB_ERROR_FILE = "job_error.json"
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@dataclass(frozen=True)
class SweepState:
    """What every job of a sweep needs to know about it."""

    tracking_uri: str
    experiment_name: str
    parent_run_id: str
    num_jobs: int | None

    def save(self, sweep_dir: Path) -> None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepState:
        return cls(**json.loads((sweep_dir / STATE_FILE).read_text()))


def run_job(cfg: DictConfig) -> float | None:
    """Runs the current Hydra job and returns its final val_accuracy, the value a sweeper would optimize.

    A single run turns bad input into a one-line error and exit status 2. In a multirun every failure is
    confined to its job: it is logged in one line, recorded in the job directory, and the sweep goes on (Hydra
    itself would re-raise it only after the whole batch and skip the sweep's end-of-run callback).

    Args:
        cfg: The composed job config.

    Returns:
        The job's final val_accuracy, or None if a multirun job failed.
    """
    hydra_cfg = HydraConfig.get()
    overrides = " ".join(hydra_cfg.overrides.task)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            result = train.run(cfg, tags={tracking.TAG_OVERRIDES: overrides})
        except UserInputError as err:
            log.error("%s", err)
            sys.exit(2)
        log.info("Finished run %s: %s", result.run_id, _format_metrics(result.metrics))
        log.info("Look at it in the MLflow UI: %s", ui_hint(cfg.mlflow.tracking_uri, result.experiment_id))
        return result.metrics.get("val_accuracy")

    state = SweepState.load(Path(hydra_cfg.sweep.dir))
    job = f"[{hydra_cfg.job.num + 1}/{state.num_jobs or '?'}]"
    log.info("%s %s", job, overrides or "(no overrides)")
    try:
        _check_same_store(cfg, state)
        result = train.run(
            cfg,
            parent_run_id=state.parent_run_id,
            tags={tracking.TAG_OVERRIDES: overrides, tracking.TAG_JOB_NUM: str(hydra_cfg.job.num)},
        )
    except KeyboardInterrupt:  # the job's run is already KILLED; the sweep stops here, so end its parent too
        tracking.connect(state.tracking_uri).set_terminated(state.parent_run_id, "KILLED")
        raise
    except Exception as err:
        cause = str(err) if isinstance(err, UserInputError) else tracking.one_line(err)
        log.error("%s failed: %s", job, cause)
        record = {"job_num": hydra_cfg.job.num, "overrides": overrides, "cause": cause}
        Path(hydra_cfg.runtime.output_dir, JOB_ERROR_FILE).write_text(json.dumps(record, indent=2))
        Path(hydra_cfg.runtime.output_dir, "error.txt").write_text(traceback.format_exc())
        return None
    log.info("%s done: %s", job, _format_metrics(result.metrics))
    return result.metrics.get("val_accuracy")


def _check_same_store(cfg: DictConfig, state: SweepState) -> None:
    for key, sweep_value in (("tracking_uri", state.tracking_uri), ("experiment_name", state.experiment_name)):
        if cfg.mlflow[key] != sweep_value:
            raise UserInputError(
                f"mlflow.{key}={cfg.mlflow[key]!r}: a sweep records into one store and experiment "
                f"({sweep_value!r} here); run one sweep per value instead"
            )


class MlflowSweepCallback(Callback):
    """Opens the sweep's MLflow parent run before the jobs and prints the comparison table after them."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            job_overrides = expand_grid(config)
            if job_overrides is not None:
                _compose_every_job(config, job_overrides)
            client = tracking.connect(config.mlflow.tracking_uri)
            sweep_dir = Path(config.hydra.sweep.dir)
            overrides = " ".join(config.hydra.overrides.task)
            parent_run_id = tracking.start_sweep_run(
                client,
                config.mlflow.experiment_name,
                name=f"sweep {overrides}".strip(),
                tags={tracking.TAG_OVERRIDES: overrides, tracking.TAG_SWEEP_DIR: str(sweep_dir.resolve())},
            )
        except UserInputError as err:
            log.error("%s", err)
            sys.exit(2)
        state = SweepState(
            tracking_uri=config.mlflow.tracking_uri,
            experiment_name=config.mlflow.experiment_name,
            parent_run_id=parent_run_id,
            num_jobs=None if job_overrides is None else len(job_overrides),
        )
        state.save(sweep_dir)
        # Hydra skips on_multirun_end when the sweep itself raises; never leave the parent RUNNING then.
        atexit.register(_fail_if_running, state)
        log.info(
            "Sweep of %s jobs into MLflow experiment %r, parent run %s; outputs in %s",
            state.num_jobs or "?",
            state.experiment_name,
            parent_run_id,
            sweep_dir,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        state = SweepState.load(sweep_dir)
        client = tracking.connect(state.tracking_uri)
        parent = client.get_run(state.parent_run_id)
        rows = [_row_of_run(run) for run in tracking.child_runs(client, parent)]
        recorded = {row["job_num"] for row in rows}
        for path in sorted(sweep_dir.glob(f"*/{JOB_ERROR_FILE}")):
            record = json.loads(path.read_text())
            if str(record["job_num"]) not in recorded:
                rows.append({**record, "job_num": str(record["job_num"]), "status": "NOT STARTED"})
        missing = (state.num_jobs or 0) - len(rows)
        if missing > 0:
            rows.append({"job_num": "", "overrides": f"({missing} more)", "status": "NO RECORD",
                         "cause": "jobs that left neither an MLflow run nor an error file"})  # fmt: skip
        failed = [row for row in rows if row["status"] != "FINISHED"]
        client.set_terminated(state.parent_run_id, "FAILED" if failed else "FINISHED")
        experiment_id = parent.info.experiment_id
        print(format_summary(rows, state, sweep_dir, ui_hint(state.tracking_uri, experiment_id)))
        if failed:
            sys.exit(1)


def _fail_if_running(state: SweepState) -> None:
    client = tracking.connect(state.tracking_uri)
    if client.get_run(state.parent_run_id).info.status == "RUNNING":
        client.set_terminated(state.parent_run_id, "FAILED")


def expand_grid(config: DictConfig) -> list[list[str]] | None:
    """Lists each job's overrides the way Hydra's BasicSweeper expands the grid (None for other sweepers).

    Raises:
        UserInputError: If the basic sweeper cannot expand the grid (e.g. `interval(...)` needs Optuna).
    """
    if config.hydra.sweeper.get("_target_") != _BASIC_SWEEPER:
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    try:
        overrides = parser.parse_overrides(params + list(config.hydra.overrides.task))
        return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    except Exception as err:
        raise UserInputError(
            f"sweep {' '.join(params + list(config.hydra.overrides.task))}: {first_line(err)}"
        ) from None


def _compose_every_job(config: DictConfig, job_overrides: list[list[str]]) -> None:
    """Composes each job's config now, so an unknown option in the grid stops the sweep before any training.

    Hydra composes a job only when it launches it; a bad grid point would otherwise end the sweep mid-way.
    """
    loader = GlobalHydra.instance().config_loader()
    for number, overrides in enumerate(job_overrides, start=1):
        try:
            loader.load_sweep_config(config, list(overrides))
        except Exception as err:
            raise UserInputError(f"job {number} ({' '.join(overrides)}): {first_line(err)}") from None


def format_summary(rows: list[dict[str, Any]], state: SweepState, sweep_dir: Path, ui: str) -> str:
    """Formats the end-of-sweep table: the overrides that differ between jobs -> val/test accuracy."""
    varying = _varying_overrides(rows)
    rows = sorted(rows, key=lambda row: (row["status"] != "FINISHED", -(row.get("val_accuracy") or -1.0)))
    width = max([len(varying(row)) for row in rows] + [9])
    finished = sum(row["status"] == "FINISHED" for row in rows)
    lines = [
        f"\nSweep done: {finished}/{len(rows)} jobs finished. Best (*) is chosen by val_accuracy; "
        "test_accuracy is reported, never used to choose.",
        f"  {'overrides':<{width}}  {'status':<11}  {'val_accuracy':>12}  {'test_accuracy':>13}",
    ]
    for index, row in enumerate(rows):
        mark = "*" if index == 0 and row["status"] == "FINISHED" else " "
        lines.append(
            f"{mark} {varying(row):<{width}}  {row['status']:<11}  {_metric(row, 'val_accuracy'):>12}  "
            f"{_metric(row, 'test_accuracy'):>13}"
        )
        if row["status"] != "FINISHED":
            lines.append(f"    cause: {row.get('cause') or 'see the run in MLflow'}")
    lines += [
        f"MLflow: experiment {state.experiment_name!r}, parent run {state.parent_run_id}",
        f"  UI: {ui}",
        f"Sweep dir: {sweep_dir}",
    ]
    return "\n".join(lines)


def _row_of_run(run: Any) -> dict[str, Any]:
    return {
        "job_num": run.data.tags.get(tracking.TAG_JOB_NUM, ""),
        "overrides": run.data.tags.get(tracking.TAG_OVERRIDES, ""),
        "status": run.info.status,
        "cause": run.data.tags.get(tracking.TAG_ERROR),
        "val_accuracy": run.data.metrics.get("val_accuracy"),
        "test_accuracy": run.data.metrics.get("test_accuracy"),
    }


def _varying_overrides(rows: list[dict[str, Any]]):
    common = set.intersection(*(set(row["overrides"].split()) for row in rows)) if rows else set()

    def varying(row: dict[str, Any]) -> str:
        return " ".join(part for part in row["overrides"].split() if part not in common) or row["overrides"]

    return varying


def _metric(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "-" if value is None else f"{value:.4f}"


def _format_metrics(metrics: dict[str, float]) -> str:
    keys = ("val_accuracy", "test_accuracy", "val_loss", "test_loss")
    return ", ".join(f"{key}={metrics[key]:.4f}" for key in keys if key in metrics)


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    """Says how to see an experiment's runs in the MLflow UI, from any working directory."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs"
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        tracking_uri = f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).resolve()}"
    return (
        f"python -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000 (or make ui "
        f"in the repo), then open http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    )
