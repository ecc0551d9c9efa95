"""`python -m alexnet_sweep.bench.search`: random search, TPE and TPE with ASHA on one search space, side by side.

Each method searches the same space on the offline `digits` dataset at 67x67 (learning rate log-uniform, the AlexNet
variant, batch size, dropout; every trial's budget is `--epochs` epochs) with the same number of trials, once per
sampler seed. Every study is what a user would run, `python -m alexnet_sweep -m hydra/sweeper=optuna ...` in a
fresh directory with its own `mlflow.db` and `optuna.db`; the bench then reads each trial back (its state and
objective from Optuna, the epochs it trained from its MLflow run) and reports per method:

- the best val_accuracy found (over completed trials: a pruned trial is never ranked), mean ± sd over seeds;
- the epochs spent: every trial's `epochs_trained`, pruned and failed trials included;
- how many epochs it took, on the curve "best so far against cumulative epochs", to reach random search's best
  within its seed spread (random's mean best minus one sd), per seed (`never` where it did not);
- a verdict on the goal: TPE + ASHA reaches that mark in every seed with at most half of random search's epochs.

The two variants keep their depth (alexnet8: two hidden Dense layers, alexnet9: three) with narrower layers
(`--dense` units each, 4096 in the shipped configs): the bench writes them as model configs of its own
(`alexnet8_h512`, `alexnet9_h512`) into a config directory it adds to Hydra's search path, so `model` is searched
as the config group choice it is and nothing of the package changes.

Sizing, so that the nine studies (3 methods x 3 seeds) take under 30 minutes on 2 CPU cores, measured there:
512-unit heads (the convolutions then dominate a step), the first 512 of digits' 1,077 train images (validation
keeps all 360), precise BatchNorm on those 512: a 10-epoch trial takes 18-25 s with one core busy elsewhere,
about 4 s of it tracing and testing; 8 trials per study, TPE's first 4 random (Optuna's default of 10 would leave
TPE nothing to do). With the same seed, TPE's start-up trials are random search's first trials, so the methods
differ only where TPE takes over. Random search and TPE spend 80 epochs per study; ASHA (rungs at epochs 1, 3, 9)
about 40 in a simulation with made-up curves.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alexnet_sweep.bench.markdown import save_report, workdir

log = logging.getLogger(__name__)

RANDOM, TPE, ASHA = "random", "tpe", "tpe+asha"
# name, the sweeper's overrides: sampler and pruner (ASHA = Optuna's SuccessiveHalvingPruner, asynchronous;
# reduction factor 3: rungs at epochs 1, 3 and 9, each keeping the best third, as `experiment=search` does)
ASHA_ARGS = ("hydra.sweeper.pruner=successive_halving", "+hydra.sweeper.pruner_args.reduction_factor=3")
METHODS: dict[str, tuple[str, ...]] = {
    RANDOM: ("hydra.sweeper.sampler=random",),
    TPE: ("hydra.sweeper.sampler=tpe",),
    ASHA: ("hydra.sweeper.sampler=tpe", *ASHA_ARGS),
}
SPACE = (
    "optimizer.lr=tag(log, interval(1e-5, 1e-2))",
    "batch_size=64,128",
    "model.dropout=interval(0.2, 0.6)",
)  # and `model`: the two variants, see `write_variants`
EXPERIMENT = "search_bench"
VARIANT = """\
# {base} with narrower hidden Dense layers (the search bench's, to fit its studies in half an hour on 2 cores)
defaults:
  - {base}
  - _self_

name: {name}
dense_units: {units}
"""


@dataclass(frozen=True)
class TrialResult:
    """One trial of a study, as the bench reads it back.

    Attributes:
        number: The trial's number in its study (trials ran one at a time, in this order).
        state: Optuna's state: COMPLETE, PRUNED or FAIL.
        value: The objective (final val_accuracy) of a COMPLETE trial; None otherwise.
        epochs: Epochs it trained itself.
    """

    number: int
    state: str
    value: float | None
    epochs: int


@dataclass(frozen=True)
class StudyResult:
    """One study: a method run with one sampler seed."""

    method: str
    seed: int
    trials: tuple[TrialResult, ...]
    wall_s: float

    @property
    def best(self) -> float | None:
        """The best objective of its completed trials (None if none completed)."""
        return max((t.value for t in self.trials if t.value is not None), default=None)

    @property
    def epochs(self) -> int:
        """Epochs spent by all its trials."""
        return sum(t.epochs for t in self.trials)


def best_so_far(trials: Sequence[TrialResult]) -> list[tuple[int, float | None]]:
    """The curve "best so far against cumulative epochs": one point per trial, in trial order.

    Returns:
        Per trial: (epochs spent up to and including it, best completed objective so far or None).
    """
    points, spent, best = [], 0, None
    for trial in sorted(trials, key=lambda t: t.number):
        spent += trial.epochs
        if trial.value is not None and (best is None or trial.value > best):
            best = trial.value
        points.append((spent, best))
    return points


def epochs_to_reach(trials: Sequence[TrialResult], mark: float) -> int | None:
    """The epochs spent when the best so far first reached `mark` (None if it never did)."""
    return next((spent for spent, best in best_so_far(trials) if best is not None and best >= mark), None)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 with one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def random_mark(studies: Sequence[StudyResult]) -> float:
    """Random search's best within its seed spread: the mean of its seeds' bests minus their sd.

    Raises:
        ValueError: If no random-search study completed a trial.
    """
    bests = [s.best for s in studies if s.method == RANDOM and s.best is not None]
    if not bests:
        raise ValueError("random search completed no trial: nothing to measure against")
    mean, sd = mean_sd(bests)
    return mean - sd


def summarize(studies: Sequence[StudyResult], mark: float) -> list[dict[str, Any]]:
    """One row per method (in `METHODS` order, those present): bests, epochs, time and epochs to reach `mark`."""
    rows = []
    for method in [m for m in METHODS if any(s.method == m for s in studies)]:
        mine = sorted((s for s in studies if s.method == method), key=lambda s: s.seed)
        bests = [s.best for s in mine if s.best is not None]
        best_mean, best_sd = mean_sd(bests) if bests else (None, None)
        reach = [epochs_to_reach(s.trials, mark) for s in mine]
        reached = [r for r in reach if r is not None]
        rows.append({
            "method": method, "seeds": [s.seed for s in mine], "bests": [s.best for s in mine],
            "best_mean": best_mean, "best_sd": best_sd, "epochs": [s.epochs for s in mine],
            "epochs_mean": statistics.fmean(s.epochs for s in mine),
            "trials_mean": statistics.fmean(len(s.trials) for s in mine),
            "pruned_mean": statistics.fmean(sum(t.state == "PRUNED" for t in s.trials) for s in mine),
            "failed_mean": statistics.fmean(sum(t.state == "FAIL" for t in s.trials) for s in mine),
            "minutes_mean": statistics.fmean(s.wall_s for s in mine) / 60,
            "to_reach": reach, "to_reach_mean": statistics.fmean(reached) if reached else None,
        })  # fmt: skip
    return rows


def verdict(rows: Sequence[dict[str, Any]], mark: float) -> dict[str, Any]:
    """Whether TPE + ASHA reached random search's best (within its spread) with at most half its epochs.

    Met when every seed of TPE + ASHA reached `mark` and the mean epochs it took to get there are at most half the
    mean epochs random search spent.

    Returns:
        `met` (bool, or None when a method is missing) and `text`, one line with the numbers.
    """
    by_method = {row["method"]: row for row in rows}
    if RANDOM not in by_method or ASHA not in by_method:
        return {"met": None, "text": "Goal not measured: it needs both random search and TPE + ASHA."}
    random, asha = by_method[RANDOM], by_method[ASHA]
    budget = random["epochs_mean"] / 2
    reached = [r for r in asha["to_reach"] if r is not None]
    seeds = len(asha["to_reach"])
    met = len(reached) == seeds and asha["to_reach_mean"] <= budget
    never = [str(seed) for seed, r in zip(asha["seeds"], asha["to_reach"], strict=True) if r is None]
    when = f"after {asha['to_reach_mean']:.0f} epochs on average" if reached else "never"
    if reached and never:
        when += f" where it did (never with seed {', '.join(never)})"
    text = (
        f"Goal {'met' if met else 'not met'}: TPE + ASHA reached random search's best within its spread "
        f"({mark:.4f} = {random['best_mean']:.4f} - {random['best_sd']:.4f}) in {len(reached)} of {seeds} seeds, "
        f"{when}, against half of random search's {random['epochs_mean']:.0f} epochs ({budget:.0f}); it spent "
        f"{asha['epochs_mean']:.0f} epochs in all ({asha['epochs_mean'] / random['epochs_mean']:.0%} of random's) "
        f"and found {_f(asha['best_mean'])} ± {_f(asha['best_sd'])}. Random search itself reached the mark "
        f"{_reached(random)}."
    )
    return {"met": met, "text": text}


def _reached(row: dict[str, Any]) -> str:
    """`after 13 epochs on average in 3 of 3 seeds`, or `in none of 3 seeds`."""
    count, seeds = sum(r is not None for r in row["to_reach"]), len(row["to_reach"])
    if not count:
        return f"in none of {seeds} seeds"
    return f"after {row['to_reach_mean']:.0f} epochs on average in {count} of {seeds} seeds"


def markdown(report: dict[str, Any]) -> str:
    """Renders the methods side by side as a Markdown table, with the goal's verdict and the settings below."""
    settings = report["settings"]
    lines = [
        f"## Search: random vs TPE vs TPE + ASHA ({settings['trials']} trials of up to {settings['epochs']} epochs, "
        f"seeds {', '.join(map(str, settings['seeds']))}; {report['cpu']})",
        "",
        "| method | best val_accuracy (mean ± sd) | per seed | epochs spent (mean) | trials pruned / failed (mean) | "
        "minutes per study | epochs to reach random's best − sd, per seed (mean where reached) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        reach = ", ".join("never" if r is None else str(r) for r in row["to_reach"])
        lines.append(
            f"| {row['method']} | {_f(row['best_mean'])} ± {_f(row['best_sd'])} | "
            f"{', '.join(_f(b) for b in row['bests'])} | {row['epochs_mean']:.0f} | "
            f"{row['pruned_mean']:.1f} / {row['failed_mean']:.1f} | {row['minutes_mean']:.1f} | "
            f"{reach} ({_f(row['to_reach_mean'], '{:.0f}')}) |"
        )
    lines += [
        "",
        f"Mark: random search's mean best minus one seed sd = {report['mark']:.4f}; epochs counted on the curve "
        "best-so-far against cumulative epochs (pruned and failed trials included, trials in order).",
        report["verdict"]["text"],
        *([report["stopped"]] if report.get("stopped") else []),
        "",
        f"Space: {' '.join(f'`{p}`' for p in settings['space'])}; `{settings['fixed']}`. TPE starts with "
        f"{settings['startup_trials']} random trials; ASHA: `{' '.join(ASHA_ARGS)}`.",
        f"Command: `{report['command']}`; bench wall time {report['wall_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def _f(value: float | None, spec: str = "{:.4f}") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else spec.format(value)


def write_variants(conf_dir: Path, dense: int) -> list[str]:
    """Writes alexnet8 and alexnet9 with `dense` units per hidden layer as model configs; returns their names."""
    (conf_dir / "model").mkdir(parents=True, exist_ok=True)
    variants = []
    for base, layers in (("alexnet8", 2), ("alexnet9", 3)):
        name = f"{base}_h{dense}"
        text = VARIANT.format(base=base, name=name, units=[dense] * layers)
        (conf_dir / "model" / f"{name}.yaml").write_text(text)
        variants.append(name)
    return variants


def fixed_overrides(args: argparse.Namespace) -> list[str]:
    """What every trial of every study shares: dataset, input size, budget and bookkeeping."""
    return [
        "dataset=digits", "model.input_size=67", f"epochs={args.epochs}", "save_model=false",
        f"precise_bn_images={args.precise_bn_images}", f"dataset.train_split='{args.train_split}'",
    ]  # fmt: skip


def space(args: argparse.Namespace, shared: Path) -> list[str]:
    """The search space's overrides, writing the two variants' configs into `shared/conf`."""
    return [*SPACE, f"model={','.join(write_variants(shared / 'conf', args.dense))}"]


def study_command(method: str, seed: int, args: argparse.Namespace, workdir: Path, shared: Path) -> list[str]:
    """The command line of one study, run in `workdir` with the data and model configs in `shared`."""
    return [
        sys.executable, "-m", "alexnet_sweep", "-m", "hydra/sweeper=optuna", *space(args, shared),
        *fixed_overrides(args), *METHODS[method], f"hydra.sweeper.seed={seed}",
        f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.study_name={method}-{seed}",
        f"+hydra.sweeper.sampler_args.n_startup_trials={args.startup_trials}" if method != RANDOM else None,
        f"hydra.searchpath=['file://{shared / 'conf'}']", f"dataset.data_dir={shared / 'tfds'}",
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}", f"mlflow.experiment_name={EXPERIMENT}",
        f"hydra.sweep.dir={workdir / 'sweep'}", f"checkpoint_dir={workdir / 'checkpoints'}",
    ]  # fmt: skip


def run_study(method: str, seed: int, args: argparse.Namespace, workdir: Path, shared: Path) -> StudyResult:
    """Runs one study as a subprocess in `workdir` and reads its trials back.

    Raises:
        RuntimeError: If the study recorded no trial (its log is `workdir/study.log`).
    """
    workdir.mkdir(parents=True)
    command = [part for part in study_command(method, seed, args, workdir, shared) if part is not None]
    log.info("%s seed %d: %s", method, seed, " ".join(command[2:]))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    (workdir / "study.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:  # a failed trial exits 1 and is part of the answer; no trial at all is not
        log.warning("%s seed %d: exit %d; see %s", method, seed, result.returncode, workdir / "study.log")
    trials = read_trials(workdir, f"{method}-{seed}")
    if not trials:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"{method} seed {seed}: no trial recorded (exit {result.returncode}: {last}); see {workdir}")
    study = StudyResult(method, seed, tuple(trials), wall)
    log.info("%s seed %d: best %s, %d epochs, %.0f s", method, seed, _f(study.best), study.epochs, wall)
    return study


def read_trials(workdir: Path, study_name: str) -> list[TrialResult]:
    """Reads a study's trials: state and objective from `optuna.db`, epochs trained from each trial's MLflow run.

    A trial whose run has no `epochs_trained` (a failed run) counts the epochs it reported to Optuna.

    Returns:
        The trials in order; none if the study does not exist.
    """
    import optuna
    from mlflow import MlflowClient

    from alexnet_sweep import names
    from alexnet_sweep.tracking import search_all_runs

    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{workdir / 'optuna.db'}")
    except KeyError:  # the study never started
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = search_all_runs(client, [experiment.experiment_id]) if experiment else []
    trained = {run.data.tags[names.TAG_TRIAL]: run.data.metrics.get(names.EPOCHS_TRAINED)
               for run in runs if names.TAG_TRIAL in run.data.tags}  # fmt: skip
    results = []
    for trial in study.get_trials(deepcopy=False):
        epochs = trained.get(str(trial.number))
        results.append(TrialResult(
            trial.number, trial.state.name, trial.value if trial.state.name == "COMPLETE" else None,
            int(epochs) if epochs is not None else len(trial.intermediate_values),
        ))  # fmt: skip
    return results


def prepare_data(data_dir: Path) -> None:
    """Builds the `digits` dataset once into `data_dir`, which every study then reads."""
    import tensorflow_datasets as tfds

    from alexnet_sweep import digits  # noqa: F401  (registers the builder)

    tfds.display_progress_bar(False)
    tfds.builder("digits", data_dir=str(data_dir)).download_and_prepare()


def run_studies(args: argparse.Namespace, workdir: Path, shared: Path) -> tuple[list[StudyResult], str | None]:
    """Runs every study one after the other, seed by seed (each seed's methods together), until done or Ctrl-C.

    Returns:
        The studies that ended, and None, or a sentence saying where Ctrl-C stopped the bench.
    """
    plan = [(method, seed) for seed in args.seeds for method in args.methods]
    studies: list[StudyResult] = []
    try:
        for method, seed in plan:
            studies.append(run_study(method, seed, args, workdir / f"{method}-{seed}", shared))
    except KeyboardInterrupt:
        if not any(s.method == RANDOM for s in studies):
            raise
        stopped = f"Stopped by Ctrl-C after {len(studies)} of {len(plan)} studies: the table shows those."
        log.warning(stopped)
        return studies, stopped
    return studies, None


def run_bench(args: argparse.Namespace, workdir: Path, command: str) -> dict[str, Any]:
    """Prepares the data, runs the studies (method x seed) and summarizes them into the report."""
    started = time.perf_counter()
    shared = workdir / "shared"
    prepare_data(shared / "tfds")
    studies, stopped = run_studies(args, workdir, shared)
    mark = random_mark(studies)
    rows = summarize(studies, mark)
    settings = {
        "trials": args.trials, "epochs": args.epochs, "seeds": args.seeds, "dense": args.dense,
        "startup_trials": args.startup_trials, "train_split": args.train_split,
        "precise_bn_images": args.precise_bn_images, "space": space(args, shared),
        "fixed": " ".join(fixed_overrides(args)),
    }  # fmt: skip
    return {
        "settings": settings, "rows": rows, "mark": mark, "verdict": verdict(rows, mark), "stopped": stopped,
        "studies": [{**asdict(s), "best": s.best, "epochs": s.epochs, "curve": best_so_far(s.trials)}
                    for s in studies],
        "command": command, "cpu": f"{len(os.sched_getaffinity(0))} CPU cores",
        "wall_s": time.perf_counter() - started,
    }  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line; the defaults are the full benchmark (20-25 minutes on 2 CPU cores)."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_sweep.bench.search", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per study, every method (default 8)")
    parser.add_argument("--epochs", type=int, default=10, help="every trial's budget in epochs (default 10)")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="sampler seeds, e.g. 0,1,2 (the default)")
    parser.add_argument("--methods", type=_methods, default=list(METHODS), help=f"of {','.join(METHODS)} (all)")
    parser.add_argument("--dense", type=int, default=512, help="units of each hidden Dense layer (default 512)")
    parser.add_argument("--startup-trials", type=int, default=4, help="TPE's random trials first (default 4)")
    parser.add_argument("--train-split", default="train[:512]", help="digits' train split (default train[:512])")
    parser.add_argument("--precise-bn-images", type=int, default=512, help="precise BatchNorm images (default 512)")
    parser.add_argument("--out", type=Path, help="write the report to this JSON file and a Markdown table beside it")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    if RANDOM not in args.methods:
        parser.error(f"--methods={','.join(args.methods)}: random is what the others are measured against")
    return args


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def _methods(text: str) -> list[str]:
    chosen = text.split(",")
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method {', '.join(unknown)}; of {', '.join(METHODS)}")
    return [m for m in METHODS if m in chosen]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the bench; prints the table, writes `--out` (JSON) and its `.md` twin, and returns the report."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "alexnet_sweep.bench.search", *argv])
    with workdir(args.keep, prefix="bench_search_") as folder:
        report = run_bench(args, folder, command)
    save_report(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("absl").setLevel(logging.WARNING)
    main()
