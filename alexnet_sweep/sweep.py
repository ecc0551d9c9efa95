"""Hydra glue: run one job in single-run or multirun mode, and the sweep's MLflow parent run and summary.

`MlflowSweepCallback` (registered in conf/config.yaml under `hydra.callbacks`) opens the sweep's parent run
before any job starts and, once all jobs are done, prints the comparison table and ends the parent run. Jobs find
the parent run id and the job count in `mlflow_sweep.json` in the sweep directory, which works for every launcher
whose jobs see that directory.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_original_cwd, to_absolute_path
from mlflow import MlflowClient
from mlflow.entities import Run
from omegaconf import DictConfig, open_dict

from alexnet_sweep import checkpoint, launching, report, resume, tracking
from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.launching import JOB_ERROR_FILE, JOB_RESULT_FILE, write_record
from alexnet_sweep.redact import redact

log = logging.getLogger(__name__)

STATE_FILE = "mlflow_sweep.json"
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@dataclass(frozen=True)
class SweepState:
    """What every job of a sweep needs to know about it."""

    tracking_uri: str
    experiment_name: str
    parent_run_id: str
    num_jobs: int | None
    started_at: float = 0.0  # time.time() when the sweep (or its resumption) started
    most_epochs: dict[str, int] | None = None  # per config-without-epochs: the grid's largest `epochs` (basic sweeper)
    process: str = ""  # host:pid of the process that runs the sweep; jobs elsewhere come from a parallel launcher

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
    from alexnet_sweep import train  # TensorFlow: not needed by the callback, which Hydra creates for every run

    hydra_cfg = HydraConfig.get()
    overrides = redact(" ".join(hydra_cfg.overrides.task))  # shown and logged as a tag: no credentials
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            result = train.run(cfg, tags={tracking.TAG_OVERRIDES: overrides})
        except UserInputError as err:
            log.error("%s", err)
            sys.exit(2)
        log.info("Finished run %s: %s", result.run_id, _format_metrics(result.metrics))
        log.info("Look at it in the MLflow UI: %s", ui_hint(cfg.mlflow.tracking_uri, result.experiment_id))
        return result.metrics.get("val_accuracy")

    sweep_dir = Path(to_absolute_path(hydra_cfg.sweep.dir))  # the job may run elsewhere (hydra.job.chdir=true)
    if not (sweep_dir / STATE_FILE).exists():  # the job cannot reach the sweep's folder (another machine?)
        log.error("No %s in %s: a job must see the sweep's folder (a shared filesystem)", STATE_FILE, sweep_dir)
        return None
    state = SweepState.load(sweep_dir)
    job = f"[{hydra_cfg.job.num + 1}/{state.num_jobs or '?'}]"
    log.info("%s %s (%s)", job, overrides or "(no overrides)", progress(sweep_dir, state, hydra_cfg.job.num))
    started = time.monotonic()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        _pin_to_sweep(cfg, state)
        result = train.run(
            cfg,
            parent_run_id=state.parent_run_id,
            tags={tracking.TAG_OVERRIDES: overrides, tracking.TAG_JOB_NUM: str(hydra_cfg.job.num)},
            in_sweep=True,
        )
    except KeyboardInterrupt:  # the job's run is already KILLED
        if state.process != this_process():  # a parallel launcher's worker: its sweep process decides what stops
            write_record(output_dir / JOB_ERROR_FILE, {"job_num": hydra_cfg.job.num, "overrides": overrides,
                                                       "cause": "interrupted (Ctrl-C or SIGTERM)"})  # fmt: skip
            raise
        stop_interrupted_sweep(sweep_dir)  # Hydra's default launcher: stop the sweep here, with its summary
        sys.exit(130)
    except (Exception, SystemExit) as err:  # SystemExit: code inside a job must not end the whole sweep
        cause = str(err) if isinstance(err, UserInputError) else tracking.one_line(err)
        log.error("%s failed: %s", job, cause)
        record = {"job_num": hydra_cfg.job.num, "overrides": overrides, "cause": cause}
        write_record(output_dir / JOB_ERROR_FILE, record)
        (output_dir / "error.txt").write_text(traceback.format_exc())
        return None
    record = {
        "job_num": hydra_cfg.job.num,
        "overrides": overrides,
        "run_id": result.run_id,
        "action": result.plan.action,
        "seconds": round(time.monotonic() - started, 3),
    }
    write_record(output_dir / JOB_RESULT_FILE, record)
    if result.plan.action != "skip":
        _release_checkpoint(cfg, state, result.run_id)
    log.info("%s done: %s", job, _format_metrics(result.metrics))
    return result.metrics.get("val_accuracy")


def _release_checkpoint(cfg: DictConfig, state: SweepState, run_id: str) -> None:
    """Deletes a finished run's saved state at once unless a longer job of the grid can start from it.

    At 227x227 a state is ~700 MB; keeping every finished run's until the sweep ends would hold gigabytes.
    """
    prefix = resume.identity(tracking.flatten_params(cfg), without=("epochs",))
    longest = None if state.most_epochs is None else state.most_epochs.get(prefix, 0)
    if cfg.share_epochs and (longest is None or longest > cfg.epochs):
        return  # with another sweeper the grid is unknown: the sweep's end cleans up
    directory = tracking.connect(state.tracking_uri).get_run(run_id).data.tags.get(resume.TAG_CHECKPOINT)
    if directory:
        checkpoint.remove(Path(directory))


def this_process() -> str:
    """Names this process across machines: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def progress(sweep_dir: Path, state: SweepState, job_num: int) -> str:
    """Says how long the sweep has run and, from the jobs that trained so far, about how long is left."""
    elapsed = time.time() - state.started_at if state.started_at else 0.0
    trained = [record["seconds"] for record in _records(sweep_dir, JOB_RESULT_FILE) if record["action"] != "skip"]
    text = f"elapsed {format_duration(elapsed)}"
    if trained and state.num_jobs:
        left = sum(trained) / len(trained) * (state.num_jobs - job_num)
        text += f", about {format_duration(left)} left"
    return text


def format_duration(seconds: float) -> str:
    """Formats seconds as `42s`, `3m05s` or `1h02m`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _pin_to_sweep(cfg: DictConfig, state: SweepState) -> None:
    """Points the job at the sweep's store and makes its paths absolute, wherever Hydra runs the job.

    Raises:
        UserInputError: If the job's store or experiment differ from the sweep's (e.g. a grid over them).
    """
    launch_dir = get_original_cwd()
    job_store = tracking.absolute_uri(cfg.mlflow.tracking_uri, launch_dir)
    for key, job_value, sweep_value in (
        ("tracking_uri", job_store, state.tracking_uri),
        ("experiment_name", cfg.mlflow.experiment_name, state.experiment_name),
    ):
        if job_value != sweep_value:
            raise UserInputError(
                f"mlflow.{key}={cfg.mlflow[key]!r}: a sweep records into one store and experiment "
                f"({sweep_value!r} here); run one sweep per value instead"
            )
    cfg.mlflow.tracking_uri = state.tracking_uri
    cfg.checkpoint_dir = str(Path(launch_dir) / cfg.checkpoint_dir)


def _exit_on_error(hook):
    """Makes an unexpected error in a sweep hook end the sweep with its cause; Hydra would only warn and go on.

    Jobs started after a failed `on_multirun_start` would all fail without its state; a failed `on_multirun_end`
    would end the sweep with exit status 0 and no summary.
    """

    @functools.wraps(hook)
    def guarded(self: Callback, config: DictConfig, **kwargs: Any) -> None:
        try:
            hook(self, config, **kwargs)
        except Exception as err:
            log.error("The sweep stopped: %s failed: %s", hook.__name__, redact(tracking.one_line(err)))
            log.debug("Traceback", exc_info=True)
            sys.exit(1)

    return guarded


class MlflowSweepCallback(Callback):
    """Opens (or resumes) the sweep's MLflow parent run before the jobs; reports and closes it after them."""

    @_exit_on_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            launching.preflight(config.hydra.launcher)  # e.g. Ray: GPUs that no node has fail now, not never
            job_overrides = expand_grid(config)
            job_params = None if job_overrides is None else _compose_every_job(config, job_overrides)
            client = tracking.connect(config.mlflow.tracking_uri)
            experiment_id = tracking.get_or_create_experiment(client, config.mlflow.experiment_name)
        except UserInputError as err:
            log.error("%s", err)
            sys.exit(2)
        grid = resume.grid_identity(job_params) if job_params else None
        earlier = resume.find_sweep_parent(client, experiment_id, grid) if grid and config.resume else None
        overrides = redact(" ".join(config.hydra.overrides.task))
        if earlier is None:
            tags = {tracking.TAG_OVERRIDES: overrides, tracking.TAG_SWEEP_DIR: str(sweep_dir.resolve())}
            parent_run_id = tracking.start_sweep_run(
                client, config.mlflow.experiment_name, name=sweep_run_name(config.hydra.overrides.task),
                tags=tags | ({resume.TAG_GRID: grid} if grid else {}),
            )  # fmt: skip
        else:
            parent_run_id = earlier.info.run_id
            _reopen(client, earlier, sweep_dir)
        state = SweepState(
            tracking_uri=tracking.absolute_uri(config.mlflow.tracking_uri, Path.cwd()),
            experiment_name=config.mlflow.experiment_name,
            parent_run_id=parent_run_id,
            num_jobs=None if job_overrides is None else len(job_overrides),
            started_at=time.time(),
            most_epochs=None if job_params is None else _most_epochs(job_params),
            process=this_process(),
        )
        state.save(sweep_dir)
        # Hydra skips on_multirun_end when the sweep itself raises; never leave the parent RUNNING then.
        atexit.register(_fail_if_running, state, sweep_dir)
        log.info(
            "Sweep of %s jobs into MLflow experiment %r, parent run %s; outputs in %s",
            state.num_jobs or "?",
            state.experiment_name,
            parent_run_id,
            sweep_dir,
        )
        if job_params and config.resume:
            _announce_plans(client, experiment_id, parent_run_id, job_params, config)

    @_exit_on_error
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        state = SweepState.load(sweep_dir)
        client = tracking.connect(state.tracking_uri)
        parent = client.get_run(state.parent_run_id)
        end_orphaned_runs(client, parent, sweep_dir)
        rows = sweep_rows(client, parent, sweep_dir, state.num_jobs)
        failed = [row for row in rows if row["status"] != "FINISHED"]
        _record_reused_runs(client, parent, sweep_dir)
        written = _write_report(client, state.parent_run_id, sweep_dir / "report")
        for run in tracking.child_runs(client, parent):
            if run.info.status == "FINISHED" and resume.TAG_CHECKPOINT in run.data.tags:
                checkpoint.remove(Path(run.data.tags[resume.TAG_CHECKPOINT]))  # resume and sharing are done
        client.set_terminated(state.parent_run_id, "FAILED" if failed else "FINISHED")
        summary = format_summary(rows, state, sweep_dir, ui_hint(state.tracking_uri, parent.info.experiment_id))
        print(redact(summary) + (f"\nReport: {written}" if written else ""))
        if failed:
            sys.exit(1)


def sweep_run_name(overrides: list[str]) -> str:
    """Names a sweep's parent run by what it sweeps: `sweep optimizer.lr=1e-3,1e-4 epochs=5,10`.

    MLflow keeps at most 250 characters of a run name (PostgreSQL and MySQL refuse a longer one), so the fixed
    overrides are left to the `overrides` tag.
    """
    swept = [item for item in overrides if "," in item or "(" in item] or list(overrides)
    name = redact(" ".join(["sweep", *swept]))
    return name if len(name) <= tracking.MAX_RUN_NAME else name[: tracking.MAX_RUN_NAME - 1] + "…"


def _fail_if_running(state: SweepState, sweep_dir: Path) -> None:
    client = tracking.connect(state.tracking_uri)
    parent = client.get_run(state.parent_run_id)
    if parent.info.status == "RUNNING":
        end_orphaned_runs(client, parent, sweep_dir)
        client.set_terminated(state.parent_run_id, "FAILED")


def end_orphaned_runs(client: MlflowClient, parent: Run, sweep_dir: Path, status: str = "FAILED") -> list[str]:
    """Ends the child runs still RUNNING once their jobs are over: their process died without ending them.

    With a parallel launcher a job can die hard (killed, out of memory, `os._exit`): its run ends FAILED with the
    cause its launcher recorded in the job's `job_error.json`, if any. When the sweep is interrupted, the jobs it
    stopped end KILLED. Returns the ids of the runs it ended.
    """
    causes = {str(record["job_num"]): record["cause"] for record in _records(sweep_dir, JOB_ERROR_FILE)}
    running = [run for run in tracking.child_runs(client, parent) if run.info.status == "RUNNING"]
    for run in running:
        if status == "FAILED":
            cause = causes.get(run.data.tags.get(tracking.TAG_JOB_NUM, ""), "its process ended without ending the run")
            client.set_tag(run.info.run_id, tracking.TAG_ERROR, cause)
            log.error("Run %s (%s) was left RUNNING: ended FAILED (%s)", run.info.run_id,
                      run.data.tags.get(tracking.TAG_OVERRIDES, ""), cause)  # fmt: skip
        client.set_terminated(run.info.run_id, status)
    return [run.info.run_id for run in running]


def _most_epochs(job_params: list[dict[str, str]]) -> dict[str, int]:
    most: dict[str, int] = {}
    for params in job_params:
        prefix = resume.identity(params, without=("epochs",))
        most[prefix] = max(most.get(prefix, 0), int(params["epochs"]))
    return most


def _record_reused_runs(client: MlflowClient, parent: Run, sweep_dir: Path) -> None:
    """Names on the parent the runs of other sweeps that its skipped jobs stand for, so the report includes them."""
    children = {run.info.run_id for run in tracking.child_runs(client, parent)}
    reused = parent.data.tags.get(tracking.TAG_REUSED_RUNS, "").split()
    for record in _records(sweep_dir, JOB_RESULT_FILE):
        if record["run_id"] not in children and record["run_id"] not in reused:
            reused.append(record["run_id"])
    if reused:
        client.set_tag(parent.info.run_id, tracking.TAG_REUSED_RUNS, " ".join(reused))


def _reopen(client: MlflowClient, parent: Run, sweep_dir: Path) -> None:
    """Makes an earlier sweep's parent run the parent of this one (the same grid): RUNNING again, whole grid."""
    killed = resume.mark_running_children_killed(client, parent)
    client.update_run(parent.info.run_id, status="RUNNING")
    client.set_tag(parent.info.run_id, tracking.TAG_SWEEP_DIR, str(sweep_dir.resolve()))
    log.info(
        "Resuming the sweep of parent run %s (status %s)%s",
        parent.info.run_id,
        parent.info.status,
        f"; marked KILLED the {len(killed)} runs it left RUNNING" if killed else "",
    )


def _announce_plans(
    client: MlflowClient, experiment_id: str, parent_run_id: str, job_params: list[dict[str, str]], config: DictConfig
) -> None:
    """Says up front which jobs will be skipped and which continue an unfinished run."""
    plans = [
        resume.plan_job(client, experiment_id, params, parent_run_id=parent_run_id, resume=True, share_epochs=False)
        for params in job_params
    ]
    skipped = sum(plan.action == "skip" for plan in plans)
    continued = [plan for plan in plans if plan.action == "continue"]
    if skipped or continued:
        epochs = ", ".join(f"epoch {plan.state.epoch if plan.state else 0}" for plan in continued)
        log.info(
            "Resume: %d of %d jobs have a FINISHED run (skipped), %d continue an unfinished run%s, %d start "
            "(resume=false runs them all again)",
            skipped,
            len(plans),
            len(continued),
            f" (from {epochs})" if continued else "",
            len(plans) - skipped - len(continued),
        )


def stop_interrupted_sweep(sweep_dir: Path) -> None:
    """After Ctrl-C or SIGTERM in a job: ends the parent run KILLED and prints the summary; no job starts."""
    state = SweepState.load(sweep_dir)
    client = tracking.connect(state.tracking_uri)
    end_orphaned_runs(client, client.get_run(state.parent_run_id), sweep_dir, status="KILLED")  # parallel jobs
    client.set_terminated(state.parent_run_id, "KILLED")
    parent = client.get_run(state.parent_run_id)
    rows = sweep_rows(client, parent, sweep_dir, state.num_jobs, missing_status="NOT STARTED")
    summary = format_summary(rows, state, sweep_dir, ui_hint(state.tracking_uri, parent.info.experiment_id))
    print(redact(summary).replace("Sweep done:", "Sweep interrupted:", 1))
    print("Run the same command again to resume: finished jobs are skipped, the interrupted one continues.")


def _write_report(client: MlflowClient, parent_run_id: str, out_dir: Path) -> Path | None:
    """Writes the comparison report and logs it to the parent run; a report failure never hides the results."""
    try:
        written = report.write_report(client, parent_run_id, out_dir)
        report.log_to_parent(client, parent_run_id, written)
    except Exception as err:
        log.error("The comparison report failed: %s", tracking.one_line(err))
        return None
    return written.markdown


def sweep_rows(
    client: MlflowClient, parent: Run, sweep_dir: Path, num_jobs: int | None, missing_status: str = "NO RECORD"
) -> list[dict[str, Any]]:
    """One row per job of the sweep: its run under the parent, a run it reused, or its error record."""
    children = tracking.child_runs(client, parent)
    rows = [_row_of_run(run) for run in children]
    run_ids = {run.info.run_id for run in children}
    results, errors = _records(sweep_dir, JOB_RESULT_FILE), _records(sweep_dir, JOB_ERROR_FILE)
    for record in results:
        if record["run_id"] not in run_ids:  # skipped for a FINISHED run elsewhere in the experiment
            rows.append(_row_of_run(client.get_run(record["run_id"])) | {"overrides": record["overrides"]})
            run_ids.add(record["run_id"])
    by_overrides = {row["overrides"]: row for row in rows}
    for record in errors:
        row = by_overrides.get(record["overrides"])
        if row is None:
            rows.append({**record, "job_num": str(record["job_num"]), "status": "NOT STARTED"})
        elif row["status"] != "FINISHED":
            row["cause"] = record["cause"]  # this attempt's cause, not an earlier attempt's
    accounted = len({record["job_num"] for record in results + errors})
    missing = (num_jobs or 0) - max(accounted, len(rows))  # two grid points with one config share a run
    if missing > 0:
        cause = "never started" if missing_status == "NOT STARTED" else "left neither an MLflow run nor an error file"
        rows.append({"job_num": "", "overrides": f"({missing} more)", "status": missing_status, "cause": cause})
    return rows


def _records(sweep_dir: Path, name: str) -> list[dict[str, Any]]:
    """The job records of one kind in a sweep dir; a record being written by a parallel job is passed over."""
    records = []
    for path in sorted(sweep_dir.glob(f"*/{name}")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            log.warning("Unreadable job record %s", path)
    return records


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
            redact(f"sweep {' '.join(params + list(config.hydra.overrides.task))}: {first_line(err)}")
        ) from None


def _compose_every_job(config: DictConfig, job_overrides: list[list[str]]) -> list[dict[str, str]]:
    """Composes each job's config now and returns its params (`tracking.flatten_params`).

    Hydra composes a job only when it launches it; a bad grid point would otherwise end the sweep mid-way. The
    params identify the jobs, and so the sweep, for resuming.

    Raises:
        UserInputError: If a job's config cannot be composed (e.g. an unknown option in the grid).
    """
    loader = GlobalHydra.instance().config_loader()
    job_params = []
    for number, overrides in enumerate(job_overrides, start=1):
        try:
            job_cfg = loader.load_sweep_config(config, list(overrides))
        except Exception as err:
            raise UserInputError(f"job {number} ({' '.join(overrides)}): {first_line(err)}") from None
        with open_dict(job_cfg):
            del job_cfg["hydra"]
        job_params.append(tracking.flatten_params(job_cfg))
    return job_params


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
        "cause": run.data.tags.get(tracking.TAG_ERROR) or ("interrupted" if run.info.status == "KILLED" else None),
        "val_accuracy": run.data.metrics.get("val_accuracy"),
        "test_accuracy": run.data.metrics.get("test_accuracy"),
    }


def _varying_overrides(rows: list[dict[str, Any]]):
    jobs = [row for row in rows if row["job_num"] != ""]  # not the "(N more)" row of jobs without a record
    common = set.intersection(*(set(row["overrides"].split()) for row in jobs)) if len(jobs) > 1 else set()

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
        return redact(f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs")
    tracking_uri = redact(tracking.absolute_uri(tracking_uri, Path.cwd()))
    return (
        f"python -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000 (or make ui "
        f"in the repo), then open http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    )
