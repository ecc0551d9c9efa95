"""`python -m alexnet_sweep.bench.overhead`: each job's time around its training, without and with model reuse.

The same sweep of tiny jobs runs twice as a user would run it, `python -m alexnet_sweep -m ...` with Hydra's default
launcher (every job in the sweep's process), once with `reuse_model=false` and once with `reuse_model=true`, each in
a fresh directory with a fresh SQLite store. The jobs differ only in `optimizer.lr` and `seed`, so with reuse every
job after the first trains the first job's traced model (`alexnet_sweep/reuse.py`). Each job trains 2 steps of 32
images at 67x67 (the smoke preset, full-width AlexNet) and logs (`train._log_overhead`, DEBUG) its:

- `setup s`: from the job's start (`train.run` called) to the end of its first training step, that step included;
- `wrap-up s`: from the end of its last epoch (trained and validated) to its run's end: saving and logging that
  epoch (`epoch save s`, a cost of every epoch, not of the job), the test, the figures, closing the run.

The report gives them per job, side by side, with each sweep's wall time.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alexnet_sweep.bench.markdown import save_report, workdir

log = logging.getLogger(__name__)

GRID = ("-m", "optimizer.lr=1e-3,3e-4,1e-4", "seed=0,1")
TINY_JOBS = (
    "experiment=smoke", "batch_size=32", "dataset.train_split='train[:64]'", "dataset.val_split='train[-32:]'",
    "dataset.test_split='test[:32]'", "hydra.verbose=alexnet_sweep.train",
)  # fmt: skip
JOB_LINE = re.compile(r"\[(\d+)/(\d+)\]")
OVERHEAD_LINE = re.compile(
    r"Overhead: ([\d.]+) s from the job's start to its first step's end, ([\d.]+) s from its last epoch's end to "
    r"its run's end \(([\d.]+) s of which saving and logging that epoch\)"
)


def parse_jobs(output: str) -> list[dict[str, float]]:
    """Reads each job's overhead from a sweep's log, in job order.

    `[k/N]` starts job k: the basic launcher runs one job at a time, so the next overhead line is job k's.

    Raises:
        RuntimeError: If a job logged no overhead line.
    """
    jobs: dict[int, dict[str, float]] = {}
    current, total = None, 0
    for line in output.splitlines():
        started = JOB_LINE.search(line)
        if started and "alexnet_sweep.job" in line:
            current, total = int(started[1]), int(started[2])
        measured = OVERHEAD_LINE.search(line)
        if measured and current is not None:
            setup, wrap_up, epoch_save = (float(value) for value in measured.groups())
            jobs[current] = {"setup_s": setup, "wrap_up_s": wrap_up, "epoch_save_s": epoch_save}
    missing = [k for k in range(1, total + 1) if k not in jobs]
    if not jobs or missing:
        raise RuntimeError(f"no overhead logged by jobs {missing or 'any'}")
    return [jobs[k] for k in sorted(jobs)]


def run_sweep(reuse: bool, workdir: Path, data_dir: str) -> dict[str, Any]:
    """Runs the grid with `reuse_model=<reuse>` in `workdir`; returns its wall time and each job's overhead.

    Raises:
        RuntimeError: If the sweep fails or a job logged no overhead.
    """
    workdir.mkdir(parents=True)
    command = [sys.executable, "-m", "alexnet_sweep", *GRID, *TINY_JOBS, f"reuse_model={str(reuse).lower()}",
               f"dataset.data_dir={data_dir}", f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
               f"hydra.sweep.dir={workdir / 'sweep'}"]  # fmt: skip
    log.info("reuse_model=%s: %s", reuse, " ".join(command[2:]))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    output = result.stdout + result.stderr
    (workdir / "sweep.log").write_text(output)
    if result.returncode != 0:
        raise RuntimeError(f"reuse_model={reuse}: exit {result.returncode}; see {workdir}/sweep.log")
    return {"reuse_model": reuse, "wall_s": wall, "jobs": parse_jobs(output)}


def run_bench(workdir: Path) -> dict[str, Any]:
    """Prepares `shapes` once, then runs the grid without and with model reuse; returns the report."""
    import tensorflow_datasets as tfds

    from alexnet_sweep import shapes  # noqa: F401  (registers the builder)

    tfds.display_progress_bar(False)
    data_dir = str(workdir / "tfds")
    tfds.builder("shapes", data_dir=data_dir).download_and_prepare()
    sweeps = [run_sweep(reuse, workdir / f"reuse_{str(reuse).lower()}", data_dir) for reuse in (False, True)]
    for sweep in sweeps:
        later = sweep["jobs"][1:]  # the first job builds and traces in both sweeps
        for key in ("setup_s", "wrap_up_s", "epoch_save_s"):
            sweep[f"later_median_{key}"] = statistics.median(job[key] for job in later) if later else None
    return {"grid": " ".join((*GRID, *TINY_JOBS)), "sweeps": sweeps}


def markdown(report: dict[str, Any]) -> str:
    """Renders the report as a Markdown table: a row per job, reuse off and on side by side."""
    off, on = report["sweeps"]
    lines = [
        "## Each job's time around its training, without and with model reuse (seconds)",
        "",
        "| job | setup, reuse off | setup, reuse on | wrap-up, reuse off | wrap-up, reuse on | epoch save, off | "
        "epoch save, on |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, (plain, reused) in enumerate(zip(off["jobs"], on["jobs"], strict=True), start=1):
        lines.append(
            f"| {number} | {plain['setup_s']:.2f} | {reused['setup_s']:.2f} | {plain['wrap_up_s']:.2f} | "
            f"{reused['wrap_up_s']:.2f} | {plain['epoch_save_s']:.2f} | {reused['epoch_save_s']:.2f} |"
        )
    if off["later_median_setup_s"] is not None:
        lines.append(
            f"| median of jobs 2+ | {off['later_median_setup_s']:.2f} | {on['later_median_setup_s']:.2f} | "
            f"{off['later_median_wrap_up_s']:.2f} | {on['later_median_wrap_up_s']:.2f} | "
            f"{off['later_median_epoch_save_s']:.2f} | {on['later_median_epoch_save_s']:.2f} |"
        )
    lines += [
        "",
        f"Whole sweep: {off['wall_s']:.1f} s with `reuse_model=false`, {on['wall_s']:.1f} s with `reuse_model=true` "
        f"({len(off['jobs'])} jobs, Hydra's default launcher).",
        "",
        "setup: from the job's start to the end of its first training step (the step included). wrap-up: from the end "
        "of its last epoch (validated) to its run's end, with saving and logging that epoch (epoch save), the test, "
        "the figures and closing the run.",
        f"Grid: `{report['grid']}`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the bench; prints the table, writes `--out` (JSON) and its `.md` twin, and returns the report."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_sweep.bench.overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the report to this JSON file and a Markdown table beside it")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    with workdir(args.keep, prefix="bench_overhead_") as folder:
        report = run_bench(folder)
    save_report(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
