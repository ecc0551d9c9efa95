"""`hydra/sweeper=alexnet_sweep` (the default in conf/config.yaml): Hydra's grid grammar, with sweeps you can trust.

A thin class on Hydra's public `Sweeper` API; `alexnet_sweep.sweep.runner.SweepRunner` does the work. It is
imported lazily: Hydra imports this module at every start, single runs and `--help` included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class GridSweeperConf:
    """The sweeper's keys (`hydra.sweeper.*`)."""

    _target_: str = "hydra_plugins.alexnet_sweep_plugins.sweeper.GridSweeper"
    # Jobs handed to a parallel launcher at once (null: all of one wave); Hydra's default launcher gets one at a time.
    max_batch_size: int | None = None
    # Grid values a preset sweeps (experiment/*.yaml); the command line overrides them key by key.
    params: dict[str, str] | None = None


class GridSweeper(Sweeper):
    """Expands the grid, composes every job before the first starts, and runs them as `SweepRunner` does."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.params = params
        self.runner: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from alexnet_sweep.launching import prepare
        from alexnet_sweep.sweep.runner import SweepRunner

        prepare(config)  # before the launcher exists: a missing plugin is one line; the sweep dir made absolute
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        batch = self.max_batch_size
        if batch is None and type(launcher).__name__ == "BasicLauncher":  # Hydra's default: one job at a time
            batch = 1
        self.runner = SweepRunner(config, hydra_context, launcher, self.params, batch)

    def sweep(self, arguments: list[str]) -> Any:
        return self.runner.run(arguments)
