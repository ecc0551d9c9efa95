"""An Optuna study as the report sees it, read from its sweep's MLflow runs: trials, best so far, importances.

A study (`hydra/sweeper=optuna`) is a sweep whose parent run has the tag `study.name`; each trial is a job run with
the tags `trial.number` and `trial.state`. The trial's value is the final value of the objective's metric
(`study.objective`, e.g. `maximize val_accuracy`); a pruned trial's value is its last one, as Optuna records it,
and it is never compared with complete ones. Optuna is imported only for a study's parameter importances.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep
from alexnet_sweep.report.runs import RunSummary

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)

COMPLETE, PRUNED, FAIL, RUNNING = "COMPLETE", "PRUNED", "FAIL", "RUNNING"
IMPORTANCE_SEED = 0  # fANOVA's random forest: the same trials give the same importances


@dataclass(frozen=True)
class Trial:
    """One trial of a study and the run that stands for it.

    Attributes:
        number: Its number in the study.
        run: Its job run (a repeated configuration's trials share one run).
        state: COMPLETE, PRUNED, FAIL or RUNNING (a run still running has no `trial.state` yet).
        values: {searched key: its value as the run logged it} (missing keys are left out).
        value: The final value of the objective's metric (a pruned trial's last one), None without one.
        epochs: The epochs it trained itself (`epochs_trained`; 0 for a trial that reused an earlier trial's run).
    """

    number: int
    run: RunSummary
    state: str
    values: Mapping[str, str]
    value: float | None
    epochs: float

    @property
    def reason(self) -> str:
        """Why it did not complete: the `pruned` tag, the run's error, or ''."""
        return self.run.pruned or self.run.error or ""


class Importances(NamedTuple):
    """Optuna's parameter importances of a study, or why there are none."""

    values: dict[str, float]  # {searched key: importance}, most important first; {} when `note` says why
    note: str | None = None  # one line when they cannot be computed
    trials: int = 0  # the complete trials they were computed from


class Progress(NamedTuple):
    """The best value so far after each trial, in trial order."""

    numbers: list[int]
    epochs: list[float]  # epochs spent by all trials so far (pruned and failed ones too)
    best: list[float | None]  # best complete value so far (None before the first complete trial)


@dataclass(frozen=True)
class Study:
    """A study's settings (its parent run's `study.*` tags) and its trials in trial order."""

    name: str
    storage: str
    sampler: str
    pruner: str
    direction: str  # maximize or minimize
    metric: str  # the objective's metric, e.g. val_accuracy
    space: Mapping[str, BaseDistribution]  # {searched key: its distribution}, as the parent run records it
    trials: tuple[Trial, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The searched keys, in the order of the study's space."""
        return tuple(self.space)

    def by_state(self, state: str) -> tuple[Trial, ...]:
        """Its trials in `state` (COMPLETE, PRUNED, FAIL, RUNNING), in trial order."""
        return tuple(trial for trial in self.trials if trial.state == state)

    @property
    def complete(self) -> tuple[Trial, ...]:
        """The complete trials with a value: the only ones ranked."""
        return tuple(trial for trial in self.by_state(COMPLETE) if trial.value is not None)

    @property
    def best(self) -> Trial | None:
        """The complete trial with the best value (the earliest on a tie), None before one completed."""
        sign = -1 if self.direction == "maximize" else 1
        return min(self.complete, key=lambda trial: (sign * trial.value, trial.number), default=None)

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` beats `b` in the study's direction."""
        return a > b if self.direction == "maximize" else a < b

    def progress(self) -> Progress:
        """The best complete value so far and the epochs spent so far, after each trial in trial order."""
        best: float | None = None
        spent = 0.0
        result = Progress([], [], [])
        for trial in self.trials:
            spent += trial.epochs
            if trial.state == COMPLETE and trial.value is not None and (best is None or self.better(trial.value, best)):
                best = trial.value
            result.numbers.append(trial.number)
            result.epochs.append(spent)
            result.best.append(best)
        return result

    @cached_property
    def importances(self) -> Importances:
        """Optuna's parameter importances (fANOVA, seeded) over the complete trials, or a line saying why not."""
        try:
            return param_importances(self)
        except Exception as err:  # the report goes on without them
            log.warning("Parameter importances failed: %s: %s", type(err).__name__, err)
            return Importances({}, f"Parameter importances failed ({type(err).__name__}); see the log.")


def load_study(sweep: Sweep) -> Study | None:
    """Returns the study a sweep ran, or None for a sweep that is no study (no `study.name` on its parent).

    Args:
        sweep: The sweep (`data.load_sweep`), with its parent run's tags.

    Returns:
        The study; runs without a `trial.number` are left out of its trials.
    """
    tags = sweep.parent_tags
    if names.TAG_STUDY not in tags:
        return None
    direction, metric = _objective(tags.get(names.TAG_STUDY_OBJECTIVE, ""))
    space = _space(tags.get(names.TAG_STUDY_SPACE, "{}"))
    numbered: dict[int, Trial] = {}
    for run in sweep.runs:
        for index, number in enumerate(run.trial_numbers):
            numbered[number] = _trial(run, number, space, metric, reused=index > 0)  # a rerun's newer run wins
    return Study(
        name=tags[names.TAG_STUDY],
        storage=tags.get(names.TAG_STUDY_STORAGE, ""),
        sampler=tags.get(names.TAG_STUDY_SAMPLER, ""),
        pruner=tags.get(names.TAG_STUDY_PRUNER, ""),
        direction=direction,
        metric=metric,
        space=space,
        trials=tuple(numbered[number] for number in sorted(numbered)),
    )


def param_key(key: str, params: Mapping[str, str]) -> str:
    """The run param of a searched key: itself, or `<key>.name` for a config group (`model` -> `model.name`)."""
    key = key.lstrip("+~")
    return key if key in params or f"{key}.name" not in params else f"{key}.name"


def parse_value(distribution: BaseDistribution, logged: str | None) -> Any:
    """Parses a value as a run logged it into the distribution's type; None where it does not fit.

    A categorical's choice is matched by its string form (`64` logs as "64", True as "True").
    """
    if logged is None:
        return None
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    try:
        if isinstance(distribution, FloatDistribution):
            return float(logged)
        if isinstance(distribution, IntDistribution):
            return int(float(logged))
    except ValueError:
        return None
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if str(choice) == logged or str(choice).lower() == logged.lower():
                return choice
    return None


def is_interval(distribution: BaseDistribution) -> bool:
    """Whether a distribution is a float interval without a step: every trial gets a value of its own."""
    from optuna.distributions import FloatDistribution

    return isinstance(distribution, FloatDistribution) and distribution.step is None


def param_importances(study: Study, seed: int = IMPORTANCE_SEED) -> Importances:
    """Computes Optuna's parameter importances on an in-memory study rebuilt from the complete trials.

    Args:
        study: The study.
        seed: fANOVA's seed.

    Returns:
        The importances of the searched keys that vary among the complete trials, most important first; or none,
        with a one-line note, when fewer than two complete trials have every searched value, no key varies, or the
        objective does not vary.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" in every report
    try:
        rebuilt = optuna.create_study(direction=study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial in study.complete:
        params = {key: parse_value(study.space[key], trial.values.get(key)) for key in study.keys}
        if any(value is None for value in params.values()):
            log.info("Trial %d left out of the importances: a searched value is missing or outside the space",
                     trial.number)  # fmt: skip
            continue
        try:
            rebuilt.add_trial(optuna.trial.create_trial(params=params, distributions=dict(study.space),
                                                        value=trial.value))  # fmt: skip
        except ValueError as err:  # a value outside its distribution: the space changed under the study
            log.info("Trial %d left out of the importances: %s", trial.number, err)
    trials = rebuilt.get_trials(deepcopy=False)
    if len(trials) < 2:
        return Importances({}, f"Not enough trials for parameter importances: {len(trials)} complete, 2 needed.")
    varying = [key for key in study.keys if len({repr(trial.params[key]) for trial in trials}) > 1]
    if not varying:
        return Importances({}, "No parameter importances: every complete trial has the same searched values.", 0)
    try:
        found = get_param_importances(rebuilt, evaluator=FanovaImportanceEvaluator(seed=seed), params=varying)
    except RuntimeError as err:  # fANOVA: "Encountered zero total variance in all trees."
        log.info("No parameter importances: %s", err)
        return Importances({}, f"No parameter importances: the {study.metric} of the complete trials does not vary.")
    return Importances({key: float(value) for key, value in found.items()}, None, len(trials))


def _trial(run: RunSummary, number: int, space: Mapping[str, BaseDistribution], metric: str, reused: bool) -> Trial:
    state = run.trial_state or _state(run)
    values = {key: run.params[param_key(key, run.params)] for key in space if param_key(key, run.params) in run.params}
    value = run.metrics.get(metric) if state in (COMPLETE, PRUNED) else None
    value = value if value is not None and math.isfinite(value) else None
    epochs = 0.0 if reused else run.metrics.get(names.EPOCHS_TRAINED, float(run.last_epoch or 0))
    return Trial(number, run, state, values, value, epochs)


def _state(run: RunSummary) -> str:
    """A trial's state where its run has no `trial.state` tag."""
    if run.pruned is not None:
        return PRUNED
    return {"FINISHED": COMPLETE, "RUNNING": RUNNING}.get(run.status, FAIL)


def _objective(text: str) -> tuple[str, str]:
    """Parses `study.objective` (`maximize val_accuracy`); the report's own default where it is missing."""
    match = re.fullmatch(r"\s*(maximize|minimize)\s+(\S+)\s*", text)
    if match is None:
        log.warning("Study objective %r not understood: reading it as maximize %s", text, names.SELECTION_METRIC)
        return "maximize", names.SELECTION_METRIC
    return match.group(1), match.group(2)


def _space(text: str) -> dict[str, BaseDistribution]:
    """Parses `study.space`: {key: Optuna's JSON of its distribution}; keys it cannot read are left out (logged)."""
    from optuna.distributions import json_to_distribution

    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        log.warning("Study space not readable (%s): no searched keys", err)
        return {}
    space = {}
    for key, dist in raw.items() if isinstance(raw, dict) else ():
        try:
            space[key] = json_to_distribution(json.dumps(dist) if not isinstance(dist, str) else dist)
        except (ValueError, KeyError, TypeError) as err:
            log.warning("Study space: %s left out, its distribution is not readable (%s)", key, err)
    return space


def state_counts(trials: Sequence[Trial]) -> dict[str, int]:
    """Counts trials by state: complete, pruned, failed first, then any other state in trial order."""
    counts = {state: 0 for state in (COMPLETE, PRUNED, FAIL)}
    for trial in trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts
