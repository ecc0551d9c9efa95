"""One Optuna study as a sweep: ask for trials, run them as jobs with any launcher, tell Optuna how they ended.

Everything else is the grid's (`sweep.runner.SweepRunner`): one parent run per study, each trial a child run, the
claim that keeps a second process off the same study, resume and epoch sharing through the jobs' plans, failure
isolation, Ctrl-C, the report and the summary. What a study adds:
- the study lives in its storage (`optuna.db` beside `mlflow.db` by default) under a name made from the experiment,
  the sampler and the space: the same command continues it. `n_trials` is the study's total; a trial left RUNNING
  by a process that died or was stopped is run again first and continues its run from its saved epoch; a trial
  whose config already has a FINISHED run is told that run's result without training;
- job number = trial number, so a trial keeps its job folder across reruns;
- a trial that raises, diverges, returns a NaN or infinite objective, or whose process dies is told FAIL with its
  cause, and the study goes on until more than `max_failure_rate` of its trials (at least `MIN_FAILURES`) failed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from omegaconf import DictConfig
from optuna.trial import TrialState

from alexnet_sweep import labels, names, tracking_store
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.redact import redact
from alexnet_sweep.study.pruning import TrialRef
from alexnet_sweep.study.settings import StudySettings, open_storage
from alexnet_sweep.study.space import parse_space
from alexnet_sweep.sweep import grid, parent
from alexnet_sweep.sweep.grid import Job
from alexnet_sweep.sweep.planning import plan_jobs
from alexnet_sweep.sweep.runner import SweepRunner
from alexnet_sweep.sweep.state import JobEntry, SweepFile

log = logging.getLogger(__name__)

MIN_FAILURES = 3  # a study is never stopped for its failure rate before this many trials failed
ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what each trial did


class StudyRunner(SweepRunner):
    """Runs one Optuna study with a Hydra launcher.

    Args:
        config: The sweep's config (with its `hydra` node).
        hydra_context: Hydra's context: its config loader composes the trials' configs.
        launcher: The launcher that runs the trials.
        params: `hydra.sweeper.params`, the search space, overridden key by key by the command line.
        settings: The study's sampler, pruner, objective and size.
        max_batch_size: Trials asked and launched at once (`n_jobs`; 1 with Hydra's default launcher).
    """

    def __init__(
        self,
        config: DictConfig,
        hydra_context: HydraContext,
        launcher: Launcher,
        params: dict[str, str] | None,
        settings: StudySettings,
        max_batch_size: int,
    ) -> None:
        super().__init__(config, hydra_context, launcher, params, max_batch_size)
        self.settings = settings
        self.jobs: list[Job] = []
        self.trials: dict[int, optuna.trial.Trial] = {}
        self.told: dict[int, TrialState] = {}
        self.trial_params: dict[int, dict[str, Any]] = {}
        self.stopped_by: str | None = None

    def _prepare(self, arguments: Sequence[str]) -> str:
        """Checks the settings and the space (composing its corner points), opens the study; returns its identity."""
        self.settings.check()
        self.space = parse_space(self.params, arguments, self.loader)
        self._check_corners()
        tracking_uri = tracking_store.absolute_uri(self.config.mlflow.tracking_uri, Path.cwd())
        self.storage_url = self.settings.storage_url(tracking_uri)
        self.study_name = self.settings.name(self.config.mlflow.experiment_name, self.space)
        if not self.config.resume:  # resume=false: a new study, as a grid runs every job again
            self.study_name += f" {time.strftime('%Y-%m-%d %H:%M:%S')}"
        storage = open_storage(self.storage_url)
        try:
            self.study = optuna.create_study(
                storage=storage, study_name=self.study_name, direction=self.settings.direction,
                pruner=self.settings.make_pruner(), load_if_exists=True,
            )  # fmt: skip
        except ValueError as err:  # e.g. a named study stored with the other direction
            raise UserInputError(f"hydra.sweeper.study_name={self.study_name}: {err}") from None
        self.study.sampler = self.settings.make_sampler(self.space, len(self.study.trials))
        self.wanted = self.settings.trials_wanted(self.space)
        return hashlib.sha256(f"{self.storage_url} {self.study_name}".encode()).hexdigest()[:16]

    def _check_corners(self) -> None:
        """Composes the space's corners (each choice, each bound) now: a bad value is one line before any trial."""
        first = {key: _corner(dist, 0) for key, dist in self.space.distributions.items()}
        points = [first]
        for key, dist in self.space.distributions.items():
            count = len(dist.choices) if isinstance(dist, optuna.distributions.CategoricalDistribution) else 2
            points += [{**first, key: _corner(dist, index)} for index in range(1, count)]
        for job in grid.compose(self.config, [self.space.overrides(point) for point in points], self.loader):
            if job.refused is not None:
                raise UserInputError(f"search space ({' '.join(job.overrides)}): {job.refused}")

    def _parent_tags(self) -> dict[str, str]:
        objective = f"{self.settings.direction} {self.settings.metric}"
        return {names.TAG_STUDY: self.study_name, names.TAG_STUDY_STORAGE: redact(self.storage_url),
                names.TAG_STUDY_SAMPLER: self.settings.described_sampler(),
                names.TAG_STUDY_PRUNER: self.settings.described_pruner(),
                names.TAG_STUDY_SPACE: self.space.to_json(), names.TAG_STUDY_OBJECTIVE: objective}  # fmt: skip

    def _launch_all(self) -> list[JobReturn]:
        self.plans = {}
        self.file = SweepFile(self.tracking_uri, self.experiment_id, self.config.mlflow.experiment_name,
                              self.parent_run_id, num_jobs=self.wanted)  # fmt: skip
        earlier = self.study.get_trials(deepcopy=False)
        for trial in earlier:
            self._add_job(trial.number, trial.params)
        self.swept = [key if key in self.jobs[0].params else f"{key}.name" for key in self.space.distributions] \
            if self.jobs else []  # fmt: skip
        done = sum(trial.state in ENDED for trial in earlier)
        log.info("Study %r (%s, pruner %s, %s %s): %d of %d trials done; storage %s; MLflow parent run %s",
                 self.study_name, self.settings.described_sampler(), self.settings.described_pruner(),
                 self.settings.direction, self.settings.metric, done, self.wanted, redact(self.storage_url),
                 self.parent_run_id)  # fmt: skip
        returns: list[JobReturn] = []
        stale = [optuna.trial.Trial(self.study, t._trial_id) for t in earlier if t.state == TrialState.RUNNING]
        if stale:
            log.info("Continuing %d trials left RUNNING: %s", len(stale), ", ".join(str(t.number) for t in stale))
            returns += self._run_trials(stale)
        while not self.stopped_by and (left := self.wanted - len(self.study.trials)) > 0:
            batch = [self.study.ask(self.space.distributions) for _ in range(min(self.max_batch_size, left))]
            returns += self._run_trials(batch)
            self._check_failure_rate()
        self._tell_best()
        return returns

    def _add_job(self, number: int, params: dict[str, Any]) -> Job:
        self.trial_params[number] = params
        overrides = self.space.overrides(params)
        try:
            job = grid.compose(self.config, [overrides], self.loader)[0]
        except UserInputError as err:
            job = Job(tuple(overrides), {}, str(err))
        self.jobs += [job] * (number + 1 - len(self.jobs))  # trial numbers count from 0 without gaps
        self.jobs[number] = job
        return job

    def _run_trials(self, trials: Sequence[optuna.trial.Trial]) -> list[JobReturn]:
        for trial in trials:
            self.trials[trial.number] = trial
            job = self._add_job(trial.number, trial.params)
            if not self.swept:
                self.swept = [key if key in job.params else f"{key}.name" for key in self.space.distributions]
            if job.refused is not None:
                self.causes[trial.number] = job.refused
                log.error("%s %s: not started: %s", self._label(trial.number), self._overrides(trial.number),
                          job.refused)  # fmt: skip
                self._tell(trial.number, TrialState.FAIL, cause=job.refused)
        numbers = [trial.number for trial in trials if self.jobs[trial.number].refused is None]
        made = plan_jobs(self.client, self.experiment_id, [self.jobs[num].params for num in numbers],
                         parent_run_id=self.parent_run_id, resume=self.config.resume,
                         checkpoint_root=Path(self.config.checkpoint_dir).resolve())  # fmt: skip
        self.plans.update(zip(numbers, made, strict=True))
        returns: list[JobReturn] = []
        launch = []
        for num in numbers:
            if self.plans[num].action == "skip":
                log.info("%s %s: %s", self._label(num), self._overrides(num), self.plans[num].describe())
                self._tell_from_run(num, self.plans[num].run_id)
            else:
                launch.append(num)
        for chunk in _consecutive(launch):  # a launcher numbers the jobs of one call consecutively
            returns += self._launch(chunk)
            for num in chunk:
                if num not in self.told:  # its launcher lost it
                    self._tell(num, TrialState.FAIL, cause=self.causes.get(num, "its launcher returned no result"))
        self._tag_trial_runs([trial.number for trial in trials])
        self._release_checkpoints()
        return returns

    def _entry(self, num: int, progress: str) -> JobEntry:
        entry = super()._entry(num, progress)
        trial = self.trials[num]
        ref = TrialRef(self.storage_url, self.study_name, trial._trial_id, num, self.settings.metric,
                       self.settings.pruner, dict(self.settings.pruner_args))  # fmt: skip
        tags = {**entry.tags, names.TAG_TRIAL: str(num), names.TAG_STUDY: self.study_name}
        return JobEntry(entry.plan, entry.progress, entry.run_name, tags, asdict(ref))

    def _record(self, num: int, job_return: JobReturn) -> None:
        super()._record(num, job_return)
        outcome = job_return.return_value if job_return.status == JobStatus.COMPLETED else None
        status = (outcome or {}).get("status")
        if status == "PRUNED":
            self.causes.pop(num, None)
            self.finished.add(num)  # its saved state is freed as a finished run's is
            self._tell(num, TrialState.PRUNED)
        elif status == "FINISHED":
            self._tell_value(num, (outcome or {}).get("metrics", {}).get(self.settings.metric))
        else:
            self._tell(num, TrialState.FAIL, cause=self.causes.get(num, "see its run in MLflow"))

    def _tell_from_run(self, num: int, run_id: str | None) -> None:
        """Tells a trial the result of the FINISHED (or diverged) run its config already has."""
        run = self.client.get_run(run_id)
        if names.TAG_PRUNED in run.data.tags:
            self._tell(num, TrialState.PRUNED)
        elif run.info.status != "FINISHED":
            self._tell(num, TrialState.FAIL, cause=run.data.tags.get(names.TAG_ERROR, run.info.status))
        else:
            self._tell_value(num, run.data.metrics.get(self.settings.metric))

    def _tell_value(self, num: int, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            cause = f"the objective {self.settings.metric} is {value}"
            self.causes[num] = cause
            self._tell(num, TrialState.FAIL, cause=cause)
        else:
            self._tell(num, TrialState.COMPLETE, value=value)

    def _tell(self, num: int, state: TrialState, value: float | None = None, cause: str | None = None) -> None:
        trial = self.trials[num]
        if cause:
            trial.set_user_attr("cause", cause)
        try:
            self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
        except RuntimeError as err:  # GridSampler stops the study once its grid is done, which only ask/tell refuses
            if "Study.stop" not in str(err):
                raise
        self.told[num] = state
        shown = f"{self.settings.metric}={value:.4f}" if value is not None else (cause or "")
        log.info("Trial %d %s %s", num, state.name, shown)

    def _tag_trial_runs(self, numbers: Sequence[int]) -> None:
        """Sets `trial.state` on the trials' own runs (a run reused from another sweep is left as it is)."""
        runs = parent.runs_by_config(self.client, self.parent_run_id)
        for num in numbers:
            run = runs.get(self.jobs[num].identity) if self.jobs[num].refused is None else None
            if run is not None and run.data.tags.get(names.TAG_TRIAL) == str(num) and num in self.told:
                self.client.set_tag(run.info.run_id, names.TAG_TRIAL_STATE, self.told[num].name)

    def _check_failure_rate(self) -> None:
        ended = [trial for trial in self.study.get_trials(deepcopy=False) if trial.state in ENDED]
        failed = sum(trial.state == TrialState.FAIL for trial in ended)
        if failed >= MIN_FAILURES and failed / len(ended) > self.settings.max_failure_rate:
            self.stopped_by = (f"{failed} of {len(ended)} trials failed, more than "
                               f"hydra.sweeper.max_failure_rate={self.settings.max_failure_rate}")  # fmt: skip
            log.error("The study stops: %s (see the causes below)", self.stopped_by)

    def _tell_best(self) -> None:
        """Records the study's best trial on the parent: tag `best.trial`, metric `best.value`."""
        try:
            best = self.study.best_trial
        except ValueError:  # no complete trial yet
            return
        self.client.set_tag(self.parent_run_id, names.TAG_BEST_TRIAL, str(best.number))
        self.client.log_metric(self.parent_run_id, names.BEST_PREFIX + "value", float(best.value))
        log.info("Best trial %d: %s=%.4f with %s", best.number, self.settings.metric, best.value,
                 self._overrides(best.number))  # fmt: skip

    def _end(self, status: str | None = None, cause: str | None = None) -> str:
        # failed trials are part of a search's answer; only the failure rate or an interruption fails a study
        return super()._end(status or ("FAILED" if self.stopped_by else "FINISHED"), cause or self.stopped_by)

    def _overrides(self, num: int) -> str:
        """A trial's searched values as people read them: `optimizer.lr=3.16e-4 model.dropout=0.4236`."""
        params = self.trial_params.get(num)
        if not params:
            return super()._overrides(num)
        return " ".join(f"{key}={_shown(key, params[key])}" for key in self.space.distributions if key in params)

    def _label(self, num: int) -> str:
        return f"[trial {num}, {num + 1}/{getattr(self, 'wanted', len(self.jobs))}]"


def _shown(key: str, value: Any) -> str:
    if not isinstance(value, float):
        return str(value)
    return labels.display(key, str(value)) if key.endswith(".lr") else f"{value:.4g}"


def _corner(dist: optuna.distributions.BaseDistribution, index: int) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[index]
    return dist.low if index == 0 else dist.high


def _consecutive(numbers: Sequence[int]) -> list[list[int]]:
    chunks: list[list[int]] = []
    for num in numbers:
        if chunks and chunks[-1][-1] == num - 1:
            chunks[-1].append(num)
        else:
            chunks.append([num])
    return chunks
