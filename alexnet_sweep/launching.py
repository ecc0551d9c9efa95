"""A sweep's launcher, readied before anything is recorded: its plugin installed, (Ray) some node able to run a job.

It imports neither Ray nor joblib.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict, read_write

from alexnet_sweep.errors import UserInputError

log = logging.getLogger(__name__)

_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
# launcher class -> (the Hydra plugin it needs, the extra of ours that installs it)
_NEEDS = {
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": (
        "hydra_plugins.hydra_joblib_launcher",
        "joblib",
    ),
    "hydra_plugins.alexnet_sweep_plugins.ray_launcher.RayLauncher": ("hydra_plugins.hydra_ray_launcher", "ray"),
    f"{_SUBMITIT}.LocalLauncher": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    f"{_SUBMITIT}.SlurmLauncher": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


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


def prepare(config: DictConfig) -> None:
    """Readies the sweep's config before Hydra's launcher is made from it.

    - A launcher whose Hydra plugin is not installed is one line naming the extra to install (exit 2).
    - The sweep dir becomes absolute in every job's config: jobs may run in other directories
      (`hydra.job.chdir=true`, Ray workers on other nodes), and all must write into this one.
    """
    try:
        check_plugin_installed(config.hydra.launcher)
    except UserInputError as err:
        log.error("%s", err)
        sys.exit(2)
    sweep_dir = str(Path(str(config.hydra.sweep.dir)).resolve())
    quoted = sweep_dir.replace("\\", "\\\\").replace("'", "\\'")
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = sweep_dir
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir='{quoted}'")
