"""`python -m alexnet_sweep.bench.launchers`: the same sweep under each launcher, measured in one run.

Every launcher runs the smoke grid (`optimizer.lr=1e-3,1e-4,5e-5 epochs=1,2 experiment=smoke`, 6 jobs) as a user
would, `python -m alexnet_sweep -m ...` in a fresh directory with a fresh SQLite store, with `share_epochs=false`
so that every launcher trains the same epochs. It reports, side by side:

- the sweep's wall time, and its speedup over Hydra's default launcher (one job at a time, in the sweep process);
- `job s`: the jobs' own time, summed: each job run's time in MLflow, from its start (data and model built) to
  its end; it excludes importing TensorFlow, composing the config and building the model;
- `start-up s/job`, with one job at a time: what the launcher costs per job beyond that, `(wall - job s) / jobs`:
  a new process and its TensorFlow import (4-7 s here) where the launcher starts one, Hydra's job set-up, and
  the sweep's own start and end (about 8 s) shared out.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep.bench.markdown import save_report, workdir
from alexnet_sweep.tracking import search_all_runs

log = logging.getLogger(__name__)

GRID = ("-m", "optimizer.lr=1e-3,1e-4,5e-5", "epochs=1,2", "experiment=smoke", "share_epochs=false")
# name, jobs at once, launcher overrides
LAUNCHERS = (
    ("basic (default)", 1, ()),
    ("joblib", 1, ("hydra/launcher=joblib", "hydra.launcher.n_jobs=1")),
    ("joblib", 2, ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")),
    ("ray_local", 1, ("hydra/launcher=ray_local", "hydra.launcher.ray.init.num_cpus=1")),
    ("ray_local", 2, ("hydra/launcher=ray_local", "hydra.launcher.ray.init.num_cpus=2")),
    ("submitit_local", 1, ("hydra/launcher=submitit_local", "hydra.sweeper.max_batch_size=1")),
)


def run_sweep(name: str, launcher: Sequence[str], workdir: Path, data_dir: str) -> dict[str, Any]:
    """Runs the grid under one launcher in `workdir`; returns its wall time and the jobs' summed time.

    Raises:
        RuntimeError: If the sweep fails or leaves fewer job records than jobs.
    """
    workdir.mkdir(parents=True)
    store = f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}"
    command = [sys.executable, "-m", "alexnet_sweep", *GRID, *launcher, f"dataset.data_dir={data_dir}", store,
               f"hydra.sweep.dir={workdir / 'sweep'}"]  # fmt: skip
    log.info("%s: %s", name, " ".join(command[2:]))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    (workdir / "sweep.log").write_text(result.stdout + result.stderr)
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    runs = [run for run in search_all_runs(client, experiments) if MLFLOW_PARENT_RUN_ID in run.data.tags]
    finished = [run for run in runs if run.info.status == "FINISHED"]
    if result.returncode != 0 or len(finished) != 6:
        raise RuntimeError(f"{name}: exit {result.returncode}, {len(finished)} finished jobs; see {workdir}/sweep.log")
    job_s = sum((run.info.end_time - run.info.start_time) / 1000 for run in finished)
    return {"wall_s": wall, "job_s": job_s, "jobs": len(finished)}


def run_bench(workdir: Path) -> dict[str, Any]:
    """Prepares `shapes` once, then runs the grid under every launcher; returns the rows of the report."""
    import tensorflow_datasets as tfds

    from alexnet_sweep import shapes  # noqa: F401  (registers the builder)

    data_dir = str(workdir / "tfds")
    tfds.builder("shapes", data_dir=data_dir).download_and_prepare()
    rows = []
    for index, (name, at_once, launcher) in enumerate(LAUNCHERS):
        row = {"launcher": name, "at_once": at_once, **run_sweep(name, launcher, workdir / str(index), data_dir)}
        if at_once == 1:  # with jobs side by side, wall time no longer splits into jobs and start-up
            row["startup_s_per_job"] = (row["wall_s"] - row["job_s"]) / row["jobs"]
        row["speedup"] = rows[0]["wall_s"] / row["wall_s"] if rows else 1.0
        log.info("%s: %.1f s", name, row["wall_s"])
        rows.append(row)
    return {"grid": " ".join(GRID), "cpu_cores": os.cpu_count(), "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    """Renders the report as a Markdown table."""
    lines = [
        f"## The smoke grid under each launcher ({report['cpu_cores']} CPU cores)",
        "",
        "| launcher | jobs at once | wall s | speedup | job s (sum) | start-up s/job |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['launcher']} | {row['at_once']} | {row['wall_s']:.1f} | {row['speedup']:.2f}x | "
            f"{row['job_s']:.1f} | {_format(row.get('startup_s_per_job'))} |"
        )
    lines += ["", f"Grid: `{report['grid']}`, 6 jobs, each in a fresh directory and SQLite store."]
    return "\n".join(lines) + "\n"


def _format(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the bench; prints the table, writes `--out` (JSON) and its `.md` twin, and returns the report."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_sweep.bench.launchers", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the report to this JSON file and a Markdown table beside it")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    with workdir(args.keep, prefix="bench_launchers_") as folder:
        report = run_bench(folder)
    save_report(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
