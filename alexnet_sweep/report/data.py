"""A sweep as the report sees it, read from MLflow only: its job runs, their params, final metrics and curves.

This module, like the whole report, imports neither TensorFlow nor Hydra, so the report's command answers fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names
from alexnet_sweep.labels import display, key_order, short_names
from alexnet_sweep.report.runs import SEED_KEY, Configuration, RunSummary, run_rank
from alexnet_sweep.tracking import search_all_runs, sweep_runs


@dataclass(frozen=True)
class Sweep:
    """A sweep's parent run and job runs, with the keys the jobs differ in.

    Attributes:
        varying_keys: Every param with at least two different values among the runs, in report order.
        swept_keys: The varying keys minus those that only follow another one (switching `model=alexnet9` also
            changes `model.dense_units`): the keys the report compares.
        followers: {follower key: the swept key it changes with}.
        parent_tags: The parent run's tags (a study's `study.*` tags among them).

    A configuration is a setting of the swept keys other than `seed` (`config_keys`); its runs with different
    seeds are its replicates. "Best" is the configuration with the highest mean final val_accuracy.
    """

    experiment_name: str
    parent_run_id: str
    parent_name: str
    runs: tuple[RunSummary, ...]
    varying_keys: tuple[str, ...]
    swept_keys: tuple[str, ...]
    followers: Mapping[str, str]
    parent_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> tuple[RunSummary, ...]:
        return tuple(run for run in self.runs if run.finished)

    @cached_property
    def ranked(self) -> tuple[RunSummary, ...]:
        """Finished runs with a val_accuracy, best first: highest val_accuracy, then lowest val_loss, then job."""
        scored = [run for run in self.finished if run.val_accuracy is not None]
        return tuple(sorted(scored, key=run_rank))

    @property
    def config_keys(self) -> tuple[str, ...]:
        """The swept keys that tell configurations apart: all but `seed`."""
        return tuple(key for key in self.swept_keys if key != SEED_KEY)

    @property
    def replicated(self) -> bool:
        """Whether some configuration has more than one finished replicate, so seed noise can be measured."""
        return any(config.n > 1 for config in self.configurations)

    @cached_property
    def configurations(self) -> tuple[Configuration, ...]:
        """Every configuration with its replicates, in the order its first run appears (job order)."""
        groups: dict[tuple[str | None, ...], list[RunSummary]] = {}
        for run in self.runs:
            groups.setdefault(tuple(run.params.get(key) for key in self.config_keys), []).append(run)
        return tuple(
            Configuration(dict(zip(self.config_keys, key, strict=True)), tuple(runs)) for key, runs in groups.items()
        )

    @cached_property
    def ranked_configurations(self) -> tuple[Configuration, ...]:
        """Configurations with a finished replicate, best first.

        Ordered by highest mean final val_accuracy, then lowest mean final val_loss, then job order.
        """
        scored = [config for config in self.configurations if config.n]
        return tuple(sorted(scored, key=_config_rank))

    @property
    def best_configuration(self) -> Configuration | None:
        """The configuration with the highest mean final val_accuracy (test_accuracy never chooses)."""
        return self.ranked_configurations[0] if self.ranked_configurations else None

    @property
    def best(self) -> RunSummary | None:
        """The best run: the best replicate (highest final val_accuracy) of the best configuration."""
        config = self.best_configuration
        return config.best_run if config is not None else None

    def configuration_of(self, run: RunSummary) -> Configuration:
        """Returns the configuration a run is a replicate of."""
        return self._configuration_by_run[run.run_id]

    @cached_property
    def _configuration_by_run(self) -> dict[str, Configuration]:
        # Looked up once per run by the report's tables and findings: a scan per lookup is quadratic in the runs.
        return {run.run_id: config for config in self.configurations for run in config.runs}

    def config_label(self, config: Configuration) -> str:
        """Labels a configuration by its swept params but `seed`, e.g. `lr=1e-4 epochs=10`."""
        parts = [f"{self.short(key)}={display(key, value or '?')}" for key, value in config.values.items()]
        return " ".join(parts) or "all runs"

    def values(self, key: str, runs: Sequence[RunSummary] | None = None) -> list[str]:
        """Returns the values of param `key` among `runs` (default: all), sorted numerically where all are numbers."""
        return sort_values({run.params[key] for run in (self.runs if runs is None else runs) if key in run.params})

    def short(self, key: str) -> str:
        """Returns the short name of a swept key in labels: `lr`, `epochs`, `model` (for `model.name`)."""
        return short_names(self.swept_keys).get(key, key)

    def label(self, run: RunSummary) -> str:
        """Labels a run by its swept params, e.g. `lr=1e-4 epochs=10 model=alexnet9`."""
        parts = [f"{self.short(key)}={display(key, run.params.get(key, '?'))}" for key in self.swept_keys]
        return " ".join(parts) or run.name or run.run_id


def load_sweep(client: MlflowClient, parent_run_id: str) -> Sweep:
    """Reads a sweep's parent run and all its job runs, with their per-epoch metrics, from MLflow.

    Args:
        client: A client of the sweep's tracking store.
        parent_run_id: The sweep's parent run.

    Returns:
        The sweep.
    """
    parent = client.get_run(parent_run_id)
    runs = tuple(_summary(client, run) for run in sweep_runs(client, parent))
    runs = tuple(sorted(runs, key=_job_order)) if all(run.job_num.isdigit() for run in runs) else runs
    varying = varying_keys(runs)
    followers = _followers(runs, varying)
    return Sweep(
        experiment_name=client.get_experiment(parent.info.experiment_id).name,
        parent_run_id=parent_run_id,
        parent_name=parent.info.run_name or "",
        runs=runs,
        varying_keys=varying,
        swept_keys=tuple(key for key in varying if key not in followers),
        followers=followers,
        parent_tags=dict(parent.data.tags),
    )


def latest_sweep_parent(client: MlflowClient, experiment_id: str) -> Run | None:
    """Returns the newest sweep parent run of an experiment: a run without a parent that has child runs."""
    runs = search_all_runs(client, [experiment_id], order_by=["attributes.start_time DESC"])
    parents = {run.data.tags[MLFLOW_PARENT_RUN_ID] for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags}
    return next((run for run in runs if run.info.run_id in parents and MLFLOW_PARENT_RUN_ID not in run.data.tags), None)


def _summary(client: MlflowClient, run: Run) -> RunSummary:
    history: dict[str, dict[int, float]] = {}
    for metric in names.EPOCH_METRICS:
        points = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: (m.step, m.timestamp))
        if points:
            history[metric] = {point.step: point.value for point in points}  # a re-logged step keeps its last value
    tags = run.data.tags
    return RunSummary(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        job_num=tags.get(names.TAG_JOB_NUM, ""),
        overrides=tags.get(names.TAG_OVERRIDES, ""),
        error=tags.get(names.TAG_ERROR),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        history=history,
        configuration=tags.get(names.TAG_CONFIGURATION),
        pruned=_pruned(tags),
        trial_numbers=tuple(int(number) for number in re.findall(r"\d+", tags.get(names.TAG_TRIAL, ""))),
        trial_state=tags.get(names.TAG_TRIAL_STATE),
    )


def _pruned(tags: Mapping[str, str]) -> str | None:
    """Why a study pruned the run: its `pruned` tag, or a stand-in where only `trial.state` says PRUNED."""
    if names.TAG_PRUNED in tags:
        return tags[names.TAG_PRUNED] or "pruned"
    return "pruned (no reason recorded)" if tags.get(names.TAG_TRIAL_STATE) == "PRUNED" else None


def _config_rank(config: Configuration) -> tuple[float, float]:
    losses = config.final(names.VAL_LOSS)
    return (-config.mean_val_accuracy, sum(losses) / len(losses) if losses else math.inf)


def _job_order(run: RunSummary) -> int:
    return int(run.job_num)


def varying_keys(runs: Sequence[RunSummary]) -> tuple[str, ...]:
    """Returns the params with at least two different values among the runs, preferred keys first.

    A key missing from some runs but equal in all others does not vary (`optimizer.momentum` exists only for sgd).
    """
    keys = {key for run in runs for key in run.params}
    varying = [key for key in keys if len({run.params[key] for run in runs if key in run.params}) > 1]
    return tuple(sorted(varying, key=key_order))


def _followers(runs: Sequence[RunSummary], keys: Sequence[str]) -> dict[str, str]:
    """Maps each key that splits the runs exactly like another key to that key (it adds no comparison).

    Of keys that change together, the one the jobs' overrides name leads (`optimizer=sgd` names `optimizer.name`,
    so the learning rate that changes with it follows), else the first in report order.
    """
    named = {token.split("=", 1)[0].lstrip("+~") for run in runs for token in run.overrides.split()}
    groups: dict[tuple[int, ...], list[str]] = {}
    for key in keys:
        groups.setdefault(_partition(runs, key), []).append(key)
    followers = {}
    for group in groups.values():
        leader = next((key for key in group if key in named or key.removesuffix(".name") in named), group[0])
        followers |= {key: leader for key in group if key != leader}
    return followers


def _partition(runs: Sequence[RunSummary], key: str) -> tuple[int, ...]:
    """Numbers each run by the order its value of `key` first appears: equal tuples, the same split of runs."""
    first_seen: dict[str | None, int] = {}
    return tuple(first_seen.setdefault(run.params.get(key), len(first_seen)) for run in runs)


def sort_values(values: set[str] | Sequence[str]) -> list[str]:
    """Sorts param values numerically when all are numbers (`1e-4` < `0.001`, `5` < `10`), else as text."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def matching(runs: Sequence[RunSummary], params: Mapping[str | None, str | None]) -> list[RunSummary]:
    """Returns the runs whose params equal all of `params`; a None key or value matches anything."""
    return [run for run in runs if all(k is None or v is None or run.params.get(k) == v for k, v in params.items())]


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of a non-empty sequence."""
    return sum(values) / len(values)
