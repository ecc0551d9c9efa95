"""Checks of a sweep's launcher before anything is recorded: its plugin is installed, (Ray) some node can run a job.

It imports neither Ray nor joblib.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig

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
