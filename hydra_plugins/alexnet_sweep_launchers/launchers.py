"""Launchers for `hydra/launcher=joblib | ray_local | ray` (conf/hydra/launcher/): the plugins' own, plus two things.

1. A job whose process dies hard (`os._exit`, a segfault, the kernel's out-of-memory killer) is recorded as failed
   and the sweep still ends with its summary and report; the plugins would raise and skip both.
2. Ray: a trial asking for more GPUs or CPUs than any node has fails at once instead of waiting for ever, and
   `num_gpus: auto` becomes one GPU per trial where there are GPUs.

Hydra imports every module under `hydra_plugins` at start-up, so this one imports neither joblib nor Ray, and
defines a launcher only if the plugin it extends is installed (`pip install 'alexnet-sweep[joblib]'`, `[ray]`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from alexnet_sweep import launching
from alexnet_sweep.errors import first_line

log = logging.getLogger(__name__)

try:
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _JoblibLauncher
except ImportError:
    _JoblibLauncher = None

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _RayLauncher
except ImportError:
    _RayLauncher = None


if _JoblibLauncher is not None:

    class JoblibLauncher(_JoblibLauncher):
        """hydra-joblib-launcher: jobs in `n_jobs` parallel processes; a dead worker ends the batch, recorded."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from joblib.externals.loky.process_executor import TerminatedWorkerError

            try:
                return super().launch(job_overrides, initial_job_idx)
            except KeyboardInterrupt:  # joblib has stopped its workers
                _stop_interrupted_sweep(self.config)
            except TerminatedWorkerError as err:
                # loky ends the whole pool when one worker dies: every job without a record of its own is lost.
                reason = first_line(err).split(". ")[0]
                cause = f"a joblib worker process died ({type(err).__name__}: {reason}); joblib stops the whole batch"
                numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
                return launching.lost_jobs(
                    self.hydra_context, self.config, job_overrides, initial_job_idx, dict.fromkeys(numbers, cause)
                )


if _RayLauncher is not None:

    class RayLauncher(_RayLauncher):
        """hydra-ray-launcher: one Ray task per job; each job's outcome is collected, crashed or not."""

        @staticmethod
        def start(ray_cfg: DictConfig) -> dict:
            """Starts (or connects to) Ray and returns the `ray.remote` options one trial runs with.

            Raises:
                UserInputError: If no node can ever run a trial (see `launching.resolve_ray_resources`).
            """
            import ray
            from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

            if ray_cfg.init.get("address") in (None, "local"):  # an instance of its own; Ray refuses it when joining
                with open_dict(ray_cfg):
                    # As the plugin does: Ray's default object store is too small for CI machines.
                    ray_cfg.init.setdefault("object_store_memory", 78643200)
            start_ray(ray_cfg.init)
            return launching.resolve_ray_resources(OmegaConf.to_container(ray_cfg.remote, resolve=True), ray.nodes())

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            import ray

            futures = []
            try:
                return self._launch(job_overrides, initial_job_idx, futures)
            except KeyboardInterrupt:
                for future in futures:
                    ray.cancel(future, force=True)  # no job writes after the sweep has ended its runs
                _stop_interrupted_sweep(self.config)

        def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, futures: list) -> list:
            import ray
            from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray

            setup_globals()
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            remote = OmegaConf.create(self.start(self.ray_cfg))
            log.info("Ray is launching %d jobs (%s each); sweep output dir: %s", len(job_overrides),
                     ", ".join(f"{key}={value}" for key, value in remote.items()), sweep_dir)  # fmt: skip
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(sweep_config):
                    sweep_config.hydra.job.id = f"job_id_for_{idx}"
                    sweep_config.hydra.job.num = idx
                    # Workers of a cluster started with `ray start` run elsewhere than this process.
                    sweep_config.hydra.sweep.dir = str(sweep_dir.absolute())
                futures.append(
                    launch_job_on_ray(
                        self.hydra_context, remote, sweep_config, self.task_function, Singleton.get_state()
                    )
                )
            returns: list[JobReturn | None] = []
            causes = {}
            for idx, future in enumerate(futures, start=initial_job_idx):
                try:  # one by one: the plugin's ray.get stops at the first crashed job and loses the rest
                    returns.append(ray.get(future))
                except ray.exceptions.RayError as err:
                    causes[idx] = f"its Ray task failed ({type(err).__name__}: {first_line(err)[:200]})"
                    returns.append(None)
            if not causes:
                return returns
            lost = launching.lost_jobs(self.hydra_context, self.config, job_overrides, initial_job_idx, causes)
            return [done if done is not None else record for done, record in zip(returns, lost, strict=True)]


def _stop_interrupted_sweep(config: DictConfig) -> NoReturn:
    """Ctrl-C or SIGTERM in the sweep's process: its runs and the parent end KILLED, the summary says what ran."""
    import sys

    from alexnet_sweep.sweep import stop_interrupted_sweep

    stop_interrupted_sweep(Path(str(config.hydra.sweep.dir)))
    sys.exit(130)


def register_launchers() -> None:
    """Makes Hydra use these launchers and our `hydra/launcher` configs; call it before Hydra composes a config.

    - Hydra finds plugins by listing the `hydra_plugins` package, and pkgutil cannot list the part of that
      namespace an editable install (PEP 660) maps in; `pip install .` would need no help.
    - Our `conf/hydra/launcher/{joblib,ray,submitit_local}.yaml` replace the plugins' configs of the same names.
      Left in the ConfigStore, theirs would be matched to ours as schemas, a deprecated Hydra behaviour that
      warns on every run (and `submitit_local.yaml`, which also sets the sweeper, does not fit its schema).
    """
    from importlib.resources import files

    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # scans hydra_plugins now, which stores the plugins' configs
    for launcher in (globals().get("JoblibLauncher"), globals().get("RayLauncher")):
        if launcher is not None:
            plugins.register(launcher)
    stored = ConfigStore.instance().repo.get("hydra", {}).get("launcher", {})
    for config in files("alexnet_sweep.conf").joinpath("hydra", "launcher").iterdir():
        stored.pop(config.name, None)
