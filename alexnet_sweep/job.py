"""One Hydra job: a single run, or one job of a sweep whose failure is confined to itself."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from alexnet_sweep import names, tracking, tracking_store, train
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.redact import redact
from alexnet_sweep.sweep.ownership import this_process
from alexnet_sweep.sweep.state import SweepFile

log = logging.getLogger(__name__)

FINAL_KEYS = (names.VAL_ACCURACY, names.TEST_ACCURACY, names.VAL_LOSS, names.TEST_LOSS)


def run_single(cfg: DictConfig) -> float | None:
    """Runs a single job (no -m); bad input is one line and exit status 2, a failed run one line and exit 1.

    Returns:
        The run's final val_accuracy.
    """
    overrides = redact(" ".join(HydraConfig.get().overrides.task))  # shown and logged as a tag: no credentials
    try:
        result = train.run(cfg, tags={names.TAG_OVERRIDES: overrides})
    except UserInputError as err:
        log.error("%s", err)
        sys.exit(2)
    except Exception as err:  # the run ended FAILED with its traceback as the artifact error.txt
        log.error("The run failed: %s", tracking.one_line(err))
        sys.exit(1)
    log.info("Finished run %s: %s", result.run_id, format_metrics(result.metrics))
    log.info("Look at it in the MLflow UI: %s", tracking_store.ui_hint(cfg.mlflow.tracking_uri, result.experiment_id))
    return result.metrics.get(names.VAL_ACCURACY)


def run_sweep_job(cfg: DictConfig) -> dict[str, Any]:
    """Runs one job of a sweep with the plan its sweeper wrote for it; never raises but KeyboardInterrupt.

    Any failure, `sys.exit` inside the job included, ends its run FAILED (with `error.txt`), is logged in one line,
    and is returned to the sweeper, which goes on with the other jobs. Ctrl-C or SIGTERM ends the run KILLED and
    propagates: the sweeper stops the sweep.

    Returns:
        `{"status": "FINISHED", "run_id": ..., "metrics": {...}}`, `{"status": "FAILED", "cause": ...}`, or in a
        study `{"status": "PRUNED", "run_id": ..., "metrics": {...}, "cause": ...}`.
    """
    hydra_cfg = HydraConfig.get()
    num = hydra_cfg.job.num
    sweep_dir = Path(to_absolute_path(hydra_cfg.sweep.dir))  # the job may run elsewhere (hydra.job.chdir=true)
    sweep = SweepFile.load(sweep_dir)
    entry = sweep.jobs[str(num)]
    overrides = redact(" ".join(hydra_cfg.overrides.task))
    label = f"[{num + 1}/{sweep.num_jobs}]"
    log.info("%s %s (%s)", label, overrides or "(no overrides)", entry.progress)
    log.info("Job %s", entry.plan.describe())
    cfg.mlflow.tracking_uri = sweep.tracking_uri  # absolute: the job may run in another directory
    tags = {names.TAG_OVERRIDES: overrides, names.TAG_JOB_NUM: str(num), names.TAG_PROCESS: this_process()}
    reporter = None
    try:
        if entry.trial is not None:  # a study's trial: reports every epoch, stops when pruned
            from alexnet_sweep.study.pruning import ReportToTrial, TrialRef

            reporter = ReportToTrial(TrialRef(**entry.trial))
        result = train.run(
            cfg, parent_run_id=sweep.parent_run_id, plan=entry.plan, tags={**tags, **entry.tags}, name=entry.run_name,
            extra_callbacks=[reporter] if reporter else [],
        )  # fmt: skip
    except KeyboardInterrupt:  # the run is KILLED already
        raise
    except (Exception, SystemExit) as err:  # SystemExit: code inside a job must not end the whole sweep
        cause = str(err) if isinstance(err, UserInputError) else tracking.one_line(err)
        log.error("%s failed: %s", label, cause)
        (Path(hydra_cfg.runtime.output_dir) / "error.txt").write_text(traceback.format_exc())
        return {"status": "FAILED", "cause": cause}
    if reporter is not None and reporter.stopped:
        log.info("%s pruned %s", label, reporter.stopped)
        return {"status": "PRUNED", "run_id": result.run_id, "metrics": result.metrics, "cause": reporter.stopped}
    log.info("%s done: %s", label, format_metrics(result.metrics))
    return {"status": "FINISHED", "run_id": result.run_id, "metrics": result.metrics}


def format_metrics(metrics: dict[str, float]) -> str:
    """`val_accuracy=0.8125, test_accuracy=0.7900, ...` for the terminal."""
    return ", ".join(f"{key}={metrics[key]:.4f}" for key in FINAL_KEYS if key in metrics)
