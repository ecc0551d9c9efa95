"""A study's settings (`hydra.sweeper.*` of `hydra/sweeper=optuna`): checked in one line each, then built.

The sampler and pruner are Optuna's own classes, named by short keys and given Optuna's own keyword arguments
(`hydra.sweeper.pruner_args.reduction_factor=3`). The study is stored beside the MLflow store: `optuna.db` next
to `mlflow.db` (Optuna's and MLflow's schemas cannot share one SQLite file: both keep an `alembic_version` table,
and Optuna then refuses the file), or the database `hydra.sweeper.storage` names.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from alexnet_sweep import names
from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.redact import redact
from alexnet_sweep.study.space import SearchSpace

SAMPLERS = ("tpe", "random", "qmc", "grid", "gp")
PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,  # e.g. pruner_args.lower=0.2: stop a trial stuck near chance
}
DIRECTIONS = ("maximize", "minimize")
SQLITE_TIMEOUT_S = 60  # jobs in other processes report epochs while the sweeper asks and tells


@dataclass(frozen=True)
class StudySettings:
    """The keys of `hydra.sweeper` that shape a study (see `OptunaSweeperConf` for each one's meaning)."""

    sampler: str = "tpe"
    sampler_args: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    pruner: str = "none"
    pruner_args: Mapping[str, Any] = field(default_factory=dict)
    direction: str = "maximize"
    metric: str = names.VAL_ACCURACY
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.5
    storage: str | None = None
    study_name: str | None = None

    def check(self) -> None:
        """Refuses a bad value before anything runs.

        Raises:
            UserInputError: Naming the key and its value.
        """
        if self.sampler not in SAMPLERS:
            raise UserInputError(f"hydra.sweeper.sampler={self.sampler}: one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise UserInputError(f"hydra.sweeper.pruner={self.pruner}: one of {', '.join(PRUNERS)}")
        if self.direction not in DIRECTIONS:
            raise UserInputError(f"hydra.sweeper.direction={self.direction}: maximize or minimize")
        if self.metric not in names.EPOCH_METRICS:
            raise UserInputError(
                f"hydra.sweeper.metric={self.metric}: one of {', '.join(names.EPOCH_METRICS)} (a metric every epoch "
                "reports, so trials can be pruned; the test split is reported, never used to choose)"
            )  # fmt: skip
        for key, value, low in (("n_trials", self.n_trials, 1), ("n_jobs", self.n_jobs, 1)):
            if not isinstance(value, int) or value < low:
                raise UserInputError(f"hydra.sweeper.{key}={value}: a whole number >= {low}")
        if not (isinstance(self.max_failure_rate, int | float) and 0 <= self.max_failure_rate <= 1):
            raise UserInputError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: a fraction from 0 to 1")
        self.make_pruner()

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """Optuna's pruner with `pruner_args`.

        Raises:
            UserInputError: If Optuna refuses an argument.
        """
        try:
            return PRUNERS[self.pruner](**dict(self.pruner_args))
        except (TypeError, ValueError) as err:
            raise UserInputError(f"hydra.sweeper.pruner_args={dict(self.pruner_args)}: {first_line(err)}") from None

    def make_sampler(self, space: SearchSpace, trials_so_far: int) -> optuna.samplers.BaseSampler:
        """Optuna's sampler with `sampler_args`, seeded with `seed + trials_so_far`.

        A rerun that continues a study then draws new points instead of the first ones again (random and TPE's
        start-up trials would otherwise repeat them).

        Raises:
            UserInputError: If Optuna refuses an argument, `gp` lacks PyTorch, or `grid` meets an interval.
        """
        seed = None if self.seed is None else self.seed + trials_so_far
        args = dict(self.sampler_args)
        try:
            if self.sampler == "grid":
                return optuna.samplers.GridSampler(space.grid(), seed=seed, **args)
            if self.sampler == "gp":
                try:
                    import torch  # noqa: F401  (GPSampler's dependency; the base install leaves it out)
                except ImportError:
                    raise UserInputError(
                        "hydra.sweeper.sampler=gp: Optuna's GPSampler needs PyTorch: pip install 'alexnet-sweep[gp]'"
                    ) from None
                return optuna.samplers.GPSampler(seed=seed, **args)
            sampler_class = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                             "qmc": optuna.samplers.QMCSampler}[self.sampler]  # fmt: skip
            return sampler_class(seed=seed, **args)
        except (TypeError, ValueError) as err:
            raise UserInputError(f"hydra.sweeper.sampler_args={args}: {first_line(err)}") from None

    def trials_wanted(self, space: SearchSpace) -> int:
        """`n_trials`, at most the size of the grid with `sampler=grid`."""
        if self.sampler != "grid":
            return self.n_trials
        return min(self.n_trials, math.prod(len(values) for values in space.grid().values()))

    def described_sampler(self) -> str:
        """`tpe (seed 0)`: the parent run's `study.sampler` tag."""
        args = ", ".join(f"{key}={value}" for key, value in self.sampler_args.items())
        seed = "" if self.seed is None else f"seed {self.seed}"
        details = ", ".join(part for part in (seed, args) if part)
        return f"{self.sampler} ({details})" if details else self.sampler

    def described_pruner(self) -> str:
        """`successive_halving (reduction_factor=3)`: the parent run's `study.pruner` tag."""
        args = ", ".join(f"{key}={value}" for key, value in self.pruner_args.items())
        return f"{self.pruner} ({args})" if args else self.pruner

    def name(self, experiment: str, space: SearchSpace) -> str:
        """The study's name: given, or made from the experiment, the sampler, the space and a hash of it all."""
        if self.study_name:
            return self.study_name
        what = json.dumps([space.identity(), self.metric, self.direction, self.described_sampler(),
                           self.described_pruner()])  # fmt: skip
        digest = hashlib.sha256(what.encode()).hexdigest()[:8]
        search = self.sampler if self.pruner == "none" else f"{self.sampler}+{self.pruner}"
        return f"{experiment} {search}: {' '.join(space.distributions)} ({digest})"

    def storage_url(self, tracking_uri: str) -> str:
        """Where the study lives: `storage`, else beside the MLflow store.

        Beside a SQLite store that is `optuna.db` in its folder; beside a `postgresql+psycopg2://` store, the
        database `optuna` on the same server (`make server` creates it).

        Raises:
            UserInputError: If the MLflow store is a tracking server (http) and no storage was given.
        """
        if self.storage:
            return self.storage
        if tracking_uri.startswith("sqlite:///"):
            return f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
        if tracking_uri.startswith("postgresql"):  # the same server, the database `make server` creates for studies
            return tracking_uri.split("?")[0].rsplit("/", 1)[0] + "/optuna"
        raise UserInputError(
            redact(
                f"hydra.sweeper.storage: a study beside mlflow.tracking_uri={tracking_uri} needs a database of its "
                "own, e.g. hydra.sweeper.storage=postgresql+psycopg2://USER:PASSWORD@HOST/optuna (`make server` "
                "prints its own; or set ALEXNET_SWEEP_STUDY_STORAGE)"
            )  # fmt: skip
        )


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna's database storage at `url`, patient with SQLite's lock while other processes write.

    Raises:
        UserInputError: If the database cannot be opened (one line, credentials masked).
    """
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as err:
        raise UserInputError(redact(f"hydra.sweeper.storage={url}: {first_line(err)}")) from None
