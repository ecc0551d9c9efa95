"""What our Hydra launchers add to the plugins they extend: up-front resource checks and jobs whose process died.

The launcher classes themselves live in `hydra_plugins/alexnet_sweep_launchers` (Hydra only loads launchers from
the `hydra_plugins` namespace); this module holds their logic and imports neither Ray nor joblib.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict

from alexnet_sweep.errors import UserInputError
from alexnet_sweep.redact import redact

log = logging.getLogger(__name__)

JOB_ERROR_FILE = "job_error.json"
JOB_RESULT_FILE = "job_result.json"
_PLUGIN = "hydra_plugins.alexnet_sweep_launchers.launchers"
_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
# launcher class -> (the Hydra plugin it needs, the extra of ours that installs it)
_NEEDS = {
    f"{_PLUGIN}.JoblibLauncher": ("hydra_plugins.hydra_joblib_launcher", "joblib"),
    f"{_PLUGIN}.RayLauncher": ("hydra_plugins.hydra_ray_launcher", "ray"),
    f"{_SUBMITIT}.LocalLauncher": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    f"{_SUBMITIT}.SlurmLauncher": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Writes a job record atomically: a parallel reader sees the old file or the whole new one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, path)


def check_plugin_installed(launcher: DictConfig) -> None:
    """Fails in one line, naming the extra to install, if the chosen launcher's plugin is missing.

    Raises:
        UserInputError: If the plugin that `hydra.launcher._target_` needs cannot be imported.
    """
    target = str(launcher.get("_target_", ""))
    plugin, extra = _NEEDS.get(target, (None, None))
    if plugin is not None and importlib.util.find_spec(plugin) is None:
        install = f"pip install 'alexnet-sweep[{extra}]'"
        raise UserInputError(f"hydra.launcher._target_={target!r}: its Hydra plugin is not installed; {install}")


def resolve_ray_resources(remote: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Turns `num_gpus: auto` into 1 (or 0 without GPUs) and checks that some node can run one trial.

    Ray queues a task it can never place ("infeasible") and waits for ever; we fail at once instead.

    Args:
        remote: The `hydra.launcher.ray.remote` options (passed to `ray.remote`).
        nodes: `ray.nodes()`: each alive node's `Resources`.

    Returns:
        The options to pass to `ray.remote`.

    Raises:
        UserInputError: If no alive node has the CPUs or GPUs one trial asks for.
    """
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    options = dict(remote)
    most_gpus = max((resources.get("GPU", 0) for resources in alive), default=0)
    if options.get("num_gpus") == "auto":
        options["num_gpus"] = 1 if most_gpus >= 1 else 0
    for key, resource in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
        wanted = options.get(key) or 0
        if not isinstance(wanted, (int, float)) or wanted < 0:
            raise UserInputError(f"hydra.launcher.ray.remote.{key}={wanted!r}: must be a number >= 0 (or auto)")
        most = max((resources.get(resource, 0) for resources in alive), default=0)
        if wanted > most:
            have = ", ".join(f"{resources.get(resource, 0):g}" for resources in alive) or "none"
            raise UserInputError(
                f"hydra.launcher.ray.remote.{key}={wanted:g}: no node of the Ray cluster has that many "
                f"{resource}s (per node: {have}), so Ray would wait for ever; ask for at most {most:g}"
            )
    return options


def lost_jobs(
    hydra_context: HydraContext,
    config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    causes: Mapping[int, str],
) -> list[JobReturn]:
    """Records jobs whose process died (or that the launcher dropped with it) and returns Hydra's job results.

    A job that left neither a result nor an error record gets `job_error.json` with its cause, so the sweep's
    summary names it and `MlflowSweepCallback` ends its run FAILED. Every job is returned as completed: the
    failure is recorded, and Hydra would otherwise end the sweep without its summary.

    Args:
        hydra_context: The launcher's Hydra context (its config loader composes each job's config).
        config: The sweep's config.
        job_overrides: The batch's jobs.
        initial_job_idx: The number of the batch's first job.
        causes: Per job number, why it was lost; jobs missing here have finished or recorded their own error.
    """
    returns = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        job_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job_config):
            job_config.hydra.job.num = idx
        job_dir = Path(job_config.hydra.sweep.dir) / str(job_config.hydra.sweep.subdir)
        recorded = (job_dir / JOB_RESULT_FILE).exists() or (job_dir / JOB_ERROR_FILE).exists()
        if idx in causes and not recorded:
            job_dir.mkdir(parents=True, exist_ok=True)
            record = {"job_num": idx, "overrides": redact(" ".join(overrides)), "cause": causes[idx]}
            write_record(job_dir / JOB_ERROR_FILE, record)
            log.error("[job %d] %s: %s", idx + 1, " ".join(overrides), causes[idx])
        returns.append(JobReturn(overrides=list(overrides), working_dir=str(job_dir), status=JobStatus.COMPLETED))
    return returns


def preflight(launcher: DictConfig) -> None:
    """Checks, before the sweep records anything, that its launcher can run the jobs.

    Raises:
        UserInputError: If the launcher's plugin is missing, or (Ray) no node could ever run a job.
    """
    check_plugin_installed(launcher)
    target = str(launcher.get("_target_", ""))
    if target == f"{_PLUGIN}.RayLauncher":
        from hydra.utils import get_class

        get_class(target).start(launcher.ray)  # Ray stays up for the launcher, which finds it running
