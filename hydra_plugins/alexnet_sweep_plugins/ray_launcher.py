"""`hydra/launcher=ray | ray_local`: hydra-ray-launcher's launcher, adapted where the plugin offers no hook.

Upstream limitations this adapter works around (hydra-ray-launcher 1.2):
1. Its `launch` collects the batch with `[ray.get(job) for job in jobs]`: the first job whose process dies raises,
   and the outcome of every other job of the batch is lost while they still run. Here each job goes through the
   plugin's own `launch` in a thread of its own, so each outcome is collected, crashed or not.
2. It has no hook to check resources: a job asking for GPUs no node has waits for ever. `preflight` (called by the
   sweep before anything is recorded) fails at once instead, and turns `num_gpus: auto` into 1 per job where
   there are GPUs, else 0.
Hydra imports every module under `hydra_plugins` at start-up, so this one imports Ray only when it launches, and
defines the launcher only if the plugin is installed (`pip install 'alexnet-sweep[ray]'`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict

from alexnet_sweep.errors import JobLost, first_line
from alexnet_sweep.launching import resolve_ray_resources

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _PluginRayLauncher
except ImportError:
    _PluginRayLauncher = None

OBJECT_STORE_BYTES = 78_643_200  # the plugin's default for an instance of its own: Ray's is too big for CI machines


if _PluginRayLauncher is not None:

    class RayLauncher(_PluginRayLauncher):
        """hydra-ray-launcher: one Ray task per job; every job's outcome is collected, crashed or not."""

        def preflight(self) -> None:
            """Starts (or joins) Ray and checks that some node can run one job; resolves `num_gpus: auto`.

            Raises:
                UserInputError: If no alive node has the CPUs or GPUs one job asks for.
            """
            import ray

            if not ray.is_initialized():
                init = OmegaConf.to_container(self.ray_cfg.init, resolve=True)
                if init.get("address") in (None, "local"):  # Ray refuses it when joining a cluster
                    init.setdefault("object_store_memory", OBJECT_STORE_BYTES)
                ray.init(**init)
            remote = OmegaConf.to_container(self.ray_cfg.remote, resolve=True)
            with open_dict(self.ray_cfg):
                self.ray_cfg.remote = resolve_ray_resources(remote, ray.nodes())

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            import ray

            self.preflight()
            launch_one = super().launch
            with ThreadPoolExecutor(max_workers=len(job_overrides)) as pool:
                futures = [
                    pool.submit(launch_one, [list(overrides)], idx)
                    for idx, overrides in enumerate(job_overrides, start=initial_job_idx)
                ]
                returns = []
                for overrides, future in zip(job_overrides, futures, strict=True):
                    try:
                        returns += future.result()
                    except ray.exceptions.RayError as err:
                        returns.append(self._lost(overrides, err))
                    except KeyboardInterrupt:
                        ray.shutdown()  # ends the tasks this driver started; the sweep then ends their runs KILLED
                        raise
            return returns

        def _lost(self, overrides: Sequence[str], err: Exception) -> JobReturn:
            lost = JobReturn(overrides=list(overrides), working_dir=str(Path(str(self.config.hydra.sweep.dir))))
            lost.status = JobStatus.FAILED
            lost.return_value = JobLost(f"its Ray task failed ({type(err).__name__}: {first_line(err)[:200]})")
            return lost
