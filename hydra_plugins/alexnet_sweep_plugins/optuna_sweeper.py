"""`hydra/sweeper=optuna`: an Optuna study as a sweep, on current Optuna, stored, resumable and pruned by epoch.

The search space takes the grammar of Hydra's official Optuna sweeper (`interval(...)`, `tag(log, interval(...))`,
`choice(...)`, `range(...)`, `a,b`). A thin class on Hydra's public `Sweeper` API; the work is in
`alexnet_sweep.study.runner.StudyRunner`, imported lazily (Hydra imports this module at every start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class OptunaSweeperConf:
    """The sweeper's keys (`hydra.sweeper.*`)."""

    _target_: str = "hydra_plugins.alexnet_sweep_plugins.optuna_sweeper.OptunaSweeper"
    sampler: str = "tpe"  # tpe | random | qmc | grid | gp (gp needs PyTorch: pip install 'alexnet-sweep[gp]')
    sampler_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of Optuna's sampler class
    seed: int | None = None  # the sampler's seed (null: a fresh draw every run)
    direction: str = "maximize"  # maximize | minimize the objective
    metric: str = "val_accuracy"  # the objective: a metric every epoch logs (val_accuracy, val_loss, ...)
    n_trials: int = 20  # the study's total: a rerun of the same command runs only the trials still missing
    n_jobs: int = 1  # trials at once through a parallel launcher (joblib, ray, ...); one at a time by default
    pruner: str = "none"  # none | median | successive_halving | hyperband: stop poor trials early, by epoch
    pruner_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of Optuna's pruner class
    max_failure_rate: float = 0.5  # the study stops once more than this share of its trials failed (3 at least)
    # Where the study lives (null: optuna.db beside a SQLite mlflow.db); a server's: make server prints it.
    storage: str | None = "${oc.env:ALEXNET_SWEEP_STUDY_STORAGE,null}"
    study_name: str | None = None  # null: made from the experiment, the sampler and the search space
    params: dict[str, str] | None = None  # the search space (the command line overrides it key by key)


class OptunaSweeper(Sweeper):
    """Runs an Optuna study whose trials are Hydra jobs, as `StudyRunner` does."""

    def __init__(self, params: dict[str, str] | None = None, **settings: Any) -> None:
        self.params = params
        self.settings = settings
        self.runner: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from alexnet_sweep.launching import prepare
        from alexnet_sweep.study.runner import StudyRunner
        from alexnet_sweep.study.settings import StudySettings

        prepare(config)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        settings = StudySettings(**{
            key: OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
            for key, value in self.settings.items()
        })  # fmt: skip
        batch = 1 if type(launcher).__name__ == "BasicLauncher" else settings.n_jobs  # it runs one at a time
        params = OmegaConf.to_container(self.params) if isinstance(self.params, DictConfig) else self.params
        self.runner = StudyRunner(config, hydra_context, launcher, params, settings, batch)

    def sweep(self, arguments: list[str]) -> Any:
        return self.runner.run(arguments)
