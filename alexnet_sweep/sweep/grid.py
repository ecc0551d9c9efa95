"""The grid: expand the command line into jobs and compose every job's config before the first one starts.

Expansion accepts Hydra's basic-sweeper grammar through its public override parser: `a=1,2`, `range(...)`,
`choice(...)`, `glob(...)` and group options (`model=alexnet8,alexnet9`), with `hydra.sweeper.params` first and
the command line overriding them key by key, as Hydra's own sweeper does.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from alexnet_sweep.config import validate
from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.plan import identity, prefix_identity
from alexnet_sweep.redact import redact
from alexnet_sweep.tracking import flatten_params


@dataclass(frozen=True)
class Job:
    """One grid point: its overrides, its params and, if its config is refused, why (it is then never launched)."""

    overrides: tuple[str, ...]
    params: Mapping[str, str]
    refused: str | None = None

    @property
    def identity(self) -> str:
        """The job's config hash (see `plan.identity`)."""
        return identity(self.params)

    @property
    def epochs(self) -> int:
        """How many epochs the job trains (0 if its config was refused before `epochs` was known)."""
        return int(self.params.get("epochs", 0))


def expand(params: Mapping[str, str] | None, arguments: Sequence[str], loader: ConfigLoader) -> list[list[str]]:
    """Lists each grid point's overrides: the product of every swept key's values, in command-line order.

    Args:
        params: `hydra.sweeper.params` (e.g. from an experiment preset), overridden by `arguments` key by key.
        arguments: The command line's overrides.
        loader: Hydra's config loader: `glob(...)` over a group needs its options.

    Raises:
        UserInputError: If an override cannot be parsed or sweeps a range a grid cannot list (`interval(...)`).
    """
    given = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    try:
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(given)
    except Exception as err:
        raise UserInputError(redact(f"sweep {' '.join(given)}: {first_line(err)}")) from None
    choices: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise UserInputError(
                redact(
                    f"{override.input_line}: a grid lists values (a,b / range(...) / choice(...) / glob(...)); "
                    f"an {override.value_type.name.lower()} needs a sampler such as Optuna"
                )  # fmt: skip
            )
    return [list(point) for point in itertools.product(*choices.values())]


def compose(master: DictConfig, points: Sequence[Sequence[str]], loader: ConfigLoader) -> list[Job]:
    """Composes and checks every grid point's config now, as Hydra would when it launches the job.

    Args:
        master: The sweep's config (Hydra's, with `hydra.overrides.hydra`).
        points: Each grid point's overrides (`expand`).
        loader: Hydra's config loader.

    Returns:
        One job per grid point. A point whose values `config.validate` refuses is returned with the reason and is
        never launched; the sweep goes on without it.

    Raises:
        UserInputError: If a point cannot be composed at all (e.g. an unknown group option), naming the point.
    """
    jobs = []
    checked: dict[str, str | None] = {}  # a dataset config's problem, if any: each distinct one is checked once
    for number, overrides in enumerate(points, start=1):
        try:
            job_cfg = loader.load_sweep_config(master, list(overrides))
        except Exception as err:
            raise UserInputError(redact(f"job {number} ({' '.join(overrides)}): {first_line(err)}")) from None
        with open_dict(job_cfg):
            del job_cfg["hydra"]
        _check_same_store(job_cfg, master)
        try:
            validate(job_cfg)
            refused = _data_problem(job_cfg.dataset, checked)
        except UserInputError as err:
            refused = str(err)
        jobs.append(Job(tuple(overrides), flatten_params(job_cfg) if refused is None else {}, refused))
    return jobs


def _data_problem(dataset: DictConfig, checked: dict[str, str | None]) -> str | None:
    """What is wrong with a grid point's data (a split that selects nothing, an unknown dataset), if anything."""
    from alexnet_sweep import data  # TensorFlow: only once the grid's configs are known to be sound

    key = OmegaConf.to_yaml(dataset)
    if key not in checked:
        try:
            data.check_splits(dataset)
            checked[key] = None
        except UserInputError as err:
            checked[key] = str(err)
    return checked[key]


def _check_same_store(job_cfg: DictConfig, master: DictConfig) -> None:
    for key in ("tracking_uri", "experiment_name"):
        if job_cfg.mlflow[key] != master.mlflow[key]:
            raise UserInputError(
                redact(
                    f"mlflow.{key}={job_cfg.mlflow[key]!r}: a sweep records into one store and experiment "
                    f"({master.mlflow[key]!r} here); run one sweep per value instead"
                )  # fmt: skip
            )


def without_repeats(jobs: Sequence[Job]) -> list[Job]:
    """Drops grid points whose config repeats an earlier one's (e.g. `epochs=5,5`): one run answers both."""
    seen: set[str] = set()
    unique = []
    for job in jobs:
        if job.refused is None:
            if job.identity in seen:
                continue
            seen.add(job.identity)
        unique.append(job)
    return unique


def in_waves(jobs: Sequence[Job]) -> list[list[Job]]:
    """Orders the jobs in waves: a job's shorter siblings (same config, fewer epochs) run in an earlier wave.

    A job can then start from their saved epochs, with any launcher, parallel ones included.

    Wave k holds the jobs whose `epochs` is the k-th smallest among their siblings; the order within a wave is
    the grid's.
    """
    siblings: dict[str, set[int]] = {}
    for job in jobs:
        if job.refused is None:
            siblings.setdefault(prefix_identity(job.params), set()).add(job.epochs)
    waves: dict[int, list[Job]] = {}
    for job in jobs:
        rank = 0 if job.refused else sorted(siblings[prefix_identity(job.params)]).index(job.epochs)
        waves.setdefault(rank, []).append(job)
    return [waves[rank] for rank in sorted(waves)]
