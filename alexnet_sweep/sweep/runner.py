"""One sweep from start to end: compose the grid, open the parent run, plan and launch the jobs, summarize.

`hydra_plugins.alexnet_sweep_plugins.sweeper.GridSweeper` (a thin class on Hydra's public `Sweeper`) hands the
command line to `SweepRunner.run`. Everything a sweep promises lives here, whatever launcher runs the jobs:
- every grid point is composed and checked before the first job starts (a bad point stops the sweep, exit 2);
- a job is launched with its plan already made: FINISHED configs are skipped without being launched, unfinished
  runs continue, longer jobs start from a shorter sibling's saved epochs (jobs run in waves by `epochs` so the
  siblings have finished, under parallel launchers too);
- a failing or lost job costs only itself; Ctrl-C or SIGTERM ends the runs KILLED, prints the summary, exit 130;
- at the end the parent run gets the report and its final status, and the terminal the summary (exit 1 if a job
  did not finish).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep import names, signals, tracking, tracking_store
from alexnet_sweep.errors import JobLost, UserInputError, first_line
from alexnet_sweep.plan import Plan, grid_identity
from alexnet_sweep.redact import redact
from alexnet_sweep.sweep import grid, naming, ownership, parent, planning, summary
from alexnet_sweep.sweep.state import JobEntry, SweepFile

log = logging.getLogger(__name__)

STOPPING = "Stopping: the sweep first records how its runs ended and prints its summary (seconds)"


class SweepRunner:
    """Runs one sweep with a Hydra launcher.

    Args:
        config: The sweep's config (with its `hydra` node).
        hydra_context: Hydra's context: its config loader composes the jobs.
        launcher: The launcher that runs the jobs.
        params: `hydra.sweeper.params`, overridden key by key by the command line.
        max_batch_size: Jobs handed to the launcher at once (None: a whole wave; 1 for Hydra's default launcher,
            which runs them one after the other anyway, so each job's plan sees every job before it).
    """

    def __init__(
        self,
        config: DictConfig,
        hydra_context: HydraContext,
        launcher: Launcher,
        params: dict[str, str] | None,
        max_batch_size: int | None,
    ) -> None:
        self.config = config
        self.loader = hydra_context.config_loader
        self.launcher = launcher
        self.params = params
        self.max_batch_size = max_batch_size
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.started_at = time.time()
        self.seconds_per_job: list[float] = []
        self.causes: dict[int, str] = {}  # job number -> why it failed or was lost
        self.finished: set[int] = set()

    def run(self, arguments: Sequence[str]) -> list[JobReturn]:
        """Runs the sweep of `arguments` (the command line's overrides); exits 1 if a job failed, 2 on bad input."""
        try:
            preflight = getattr(self.launcher, "preflight", None)
            if preflight is not None:
                preflight()  # e.g. Ray: GPUs no node has fail now, not never
            sweep_id = self._prepare(arguments)
            self.tracking_uri = tracking_store.absolute_uri(self.config.mlflow.tracking_uri, Path.cwd())
            self.client = tracking_store.connect(self.tracking_uri)
            name = self.config.mlflow.experiment_name
            self.experiment_id = tracking_store.get_or_create_experiment(self.client, name)
        except UserInputError as err:
            log.error("%s", err)
            sys.exit(2)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        with signals.held(STOPPING) as interrupted:
            try:
                self.claim = ownership.GridClaim(self.client, self.experiment_id, sweep_id)
            except ownership.SweepBusy as err:
                log.error("%s", err)
                sys.exit(1)
            self.parent_run_id = parent.open_parent(
                self.client, self.experiment_id, grid=sweep_id, resume=self.config.resume,
                overrides=list(self.config.hydra.overrides.task), sweep_dir=self.sweep_dir, tags=self._parent_tags(),
            )  # fmt: skip
        try:
            if interrupted:
                raise KeyboardInterrupt
            returns = self._launch_all()
        except KeyboardInterrupt:
            self._finish(status="KILLED")
            print("Run the same command again to resume: finished jobs are skipped, the interrupted one continues.")
            sys.exit(130)
        except Exception as err:
            log.error("The sweep stopped: %s", redact(tracking.one_line(err)))
            log.debug("Traceback", exc_info=True)
            self._finish(status="FAILED", cause=f"the sweep stopped: {tracking.one_line(err)}")
            sys.exit(1)
        if self._finish() != "FINISHED":
            sys.exit(1)
        return returns

    def _prepare(self, arguments: Sequence[str]) -> str:
        """Composes and checks every job of the grid, in waves; returns the grid's identity (`plan.grid_identity`).

        Raises:
            UserInputError: If an override or a grid point is unusable.
        """
        points = grid.expand(self.params, arguments, self.loader)
        waves = grid.in_waves(grid.without_repeats(grid.compose(self.config, points, self.loader)))
        self.jobs = [job for wave in waves for job in wave]
        self.wave_of = [index for index, wave in enumerate(waves) for _ in wave]
        return grid_identity([job.params for job in self.jobs if job.refused is None])

    def _parent_tags(self) -> dict[str, str]:
        """Extra tags of a new parent run (a study names its sampler and space)."""
        return {}

    def _finish(self, status: str | None = None, cause: str | None = None) -> str:
        """Ends the sweep with Ctrl-C and SIGTERM held; exits 130 if one arrived meanwhile. Returns the status."""
        with signals.held(STOPPING) as interrupted:
            try:
                status = self._end(status, cause)
            finally:
                self.claim.release()
        if interrupted and status != "KILLED":
            sys.exit(130)
        return status

    def _launch_all(self) -> list[JobReturn]:
        self.plans = self._plan()
        self.swept = naming.swept_keys(self.jobs)
        self.file = SweepFile(self.tracking_uri, self.experiment_id, self.config.mlflow.experiment_name,
                              self.parent_run_id, num_jobs=len(self.jobs))  # fmt: skip
        log.info("Sweep of %d jobs into MLflow experiment %r, parent run %s; outputs in %s", len(self.jobs),
                 self.file.experiment_name, self.parent_run_id, _shown(self.sweep_dir))  # fmt: skip
        returns: list[JobReturn] = []
        for batch in self._batches():
            returns += self._launch(batch)
            self._release_checkpoints()
        return returns

    def _plan(self) -> dict[int, Plan]:
        """Plans every job once: skipped (FINISHED before), continued (unfinished in this sweep), or started."""
        numbered = [(num, job) for num, job in enumerate(self.jobs) if job.refused is None]
        checkpoint_root = Path(self.config.checkpoint_dir).resolve()
        made = planning.plan_jobs(
            self.client, self.experiment_id, [job.params for _, job in numbered], parent_run_id=self.parent_run_id,
            resume=self.config.resume, checkpoint_root=checkpoint_root,
        )  # fmt: skip
        plans = {num: plan for (num, _), plan in zip(numbered, made, strict=True)}
        if resumed := planning.describe_resume(list(plans.values())):
            log.info("%s", resumed)
        skipped = [num for num, plan in plans.items() if plan.action == "skip"]
        for num in skipped:
            log.info("%s %s: %s", self._label(num), self._overrides(num), plans[num].describe())
            if plans[num].supersedes:
                self.client.set_tag(plans[num].supersedes, names.TAG_SUPERSEDED_BY, plans[num].run_id)
                self.client.set_terminated(plans[num].supersedes, "KILLED")
        for num, job in enumerate(self.jobs):
            if job.refused is not None:
                self.causes[num] = job.refused
                log.error("%s %s: not started: %s", self._label(num), self._overrides(num), job.refused)
        return plans

    def _batches(self) -> list[list[int]]:
        """The job numbers to launch: consecutive jobs of one wave (a launcher numbers a batch consecutively)."""
        batches: list[list[int]] = []
        for num in range(len(self.jobs)):
            if num not in self.plans or self.plans[num].action == "skip":
                continue
            last = batches[-1] if batches else None
            if (
                last is not None
                and last[-1] == num - 1
                and self.wave_of[num] == self.wave_of[last[-1]]
                and (self.max_batch_size is None or len(last) < self.max_batch_size)
            ):
                last.append(num)
            else:
                batches.append([num])
        return batches

    def _launch(self, batch: list[int]) -> list[JobReturn]:
        for num in batch:
            if self.jobs[num].params.get("share_epochs") == "True":
                self.plans[num] = planning.share_from_sibling(self.client, self.experiment_id, self.jobs[num].params,
                                                     self.plans[num])  # fmt: skip
            left = sum(1 for n, plan in self.plans.items() if plan.action != "skip" and n >= num)
            progress = summary.progress(time.time() - self.started_at, self.seconds_per_job, left)
            self.file.jobs[str(num)] = self._entry(num, progress)
        self.file.save(self.sweep_dir)
        started = time.monotonic()
        lost = None
        try:
            returns = list(self.launcher.launch([list(self.jobs[num].overrides) for num in batch], batch[0]))
        except Exception as err:  # the launcher itself failed, e.g. joblib when a worker process died
            lost = f"the launcher lost its jobs ({type(err).__name__}: {first_line(err).split('. ')[0]})"
            log.error("%s", lost)
            returns = []
        for num, job_return in zip(batch, returns, strict=False):
            self._record(num, job_return)
        for num in batch[len(returns) :]:
            self.causes.setdefault(num, lost or "its launcher returned no result")
        parent.end_running_children(
            self.client, self.experiment_id, self.parent_run_id, status="FAILED",
            causes={str(num): cause for num, cause in self.causes.items()},
        )  # fmt: skip
        self.seconds_per_job += [(time.monotonic() - started) / len(batch)] * len(batch)
        return returns

    def _entry(self, num: int, progress: str) -> JobEntry:
        """What job `num` is told in the sweep file: its plan, progress line, run name and tags."""
        params = self.jobs[num].params
        return JobEntry(self.plans[num], progress, naming.run_name(params, self.swept),
                        naming.configuration_tag(params, self.swept))  # fmt: skip

    def _record(self, num: int, job_return: JobReturn) -> None:
        if job_return.status == JobStatus.COMPLETED:
            outcome: dict[str, Any] = job_return.return_value or {}
            if outcome.get("status") == "FINISHED":
                self.finished.add(num)
            elif outcome.get("cause"):
                self.causes[num] = outcome["cause"]
            return
        try:
            job_return.return_value  # noqa: B018  (raises the job's exception)
        except JobLost as err:
            self.causes[num] = str(err)
        except Exception as err:
            self.causes[num] = tracking.one_line(err)
        log.error("%s failed: %s", self._label(num), self.causes[num])

    def _release_checkpoints(self) -> None:
        """Deletes the saved states of finished jobs that no job still to run can start from (~700 MB each)."""
        pending = [job for num, job in enumerate(self.jobs) if num in self.plans and str(num) not in self.file.jobs]
        for num in list(self.finished):
            if planning.release_saved_state(self.jobs[num], self.plans[num], pending):
                self.finished.discard(num)

    def _end(self, status: str | None = None, cause: str | None = None) -> str:
        """Ends the sweep: leftover runs, the report, the parent's status, the summary. Returns that status.

        A store that refuses writes (full disk, read-only, server down) never stops this: what it refused is named
        in one line with its root cause, and the summary is printed from what can be read.
        """
        interrupted, refused = status == "KILLED", []

        def attempt(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except Exception as err:
                refused.append(f"{what} ({tracking.one_line(err)})")
                return None

        causes = {str(num): why for num, why in self.causes.items()}
        attempt("ending the runs left RUNNING", parent.end_running_children, self.client, self.experiment_id,
                self.parent_run_id, status="KILLED" if interrupted else "FAILED", causes=causes,
                cause=cause or "its process ended")  # fmt: skip
        reused = [plan.run_id for plan in getattr(self, "plans", {}).values() if plan.action == "skip"]
        attempt("naming the reused runs", parent.record_reused_runs, self.client, self.parent_run_id, reused)
        runs = attempt("reading the runs", parent.runs_by_config, self.client, self.parent_run_id) or {}
        overrides = [self._overrides(num) for num in range(len(self.jobs))]
        rows = summary.rows(self.jobs, overrides, runs, self.causes, interrupted)
        written = None
        if not interrupted:
            written = parent.attach_report(self.client, self.parent_run_id, self.sweep_dir / "report")
            finished = [
                plan for num, plan in getattr(self, "plans", {}).items() if rows[num].status in ("FINISHED", "PRUNED")
            ]
            planning.remove_saved_states(finished, Path(self.config.checkpoint_dir).resolve() / self.parent_run_id)
        status = status or ("FINISHED" if all(row.status == "FINISHED" for row in rows) else "FAILED")
        attempt("ending the parent run", self.client.set_terminated, self.parent_run_id, status)
        ui = tracking_store.ui_hint(self.tracking_uri, self.experiment_id)
        where = [f"MLflow: experiment {self.config.mlflow.experiment_name!r}, parent run {self.parent_run_id}",
                 f"  UI: {ui}", f"Sweep dir: {_shown(self.sweep_dir)}"]  # fmt: skip
        text = summary.format_summary(rows, where=where, interrupted=interrupted)
        print(redact(text) + (f"\nReport: {_shown(written)}" if written else ""))
        if refused:
            log.error("The store refused %s: run the same command again once it accepts writes, and the sweep "
                      "resumes and ends its runs", redact(refused[0]))  # fmt: skip
            return "FAILED"
        return status

    def _label(self, num: int) -> str:
        return f"[{num + 1}/{len(self.jobs)}]"

    def _overrides(self, num: int) -> str:
        return redact(" ".join(self.jobs[num].overrides))


def _shown(path: Path) -> Path:
    """A path as the user should see it: relative to the working directory when it lies below it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
