"""`python -m alexnet_sweep.bench.precise_bn`: the demo's grid with and without precise BatchNorm, side by side.

One sweep, as a user would run it: the demo preset (its lr x epochs grid and its seeds) crossed with
`model.bn_momentum=0.99,0.9` (the reference's momentum and the short-run one) and `precise_bn_images=0,N`. For each
of the four settings it reports, from the runs in MLflow:

- `seed sd`: the standard deviation of final val_accuracy across the seeds of one configuration (lr, epochs),
  averaged over the configurations (and the largest);
- `largest drop`: the largest fall of val_accuracy from one epoch to the next in any run;
- mean final val_accuracy and test_accuracy over all its runs, and its best configuration's mean val_accuracy;
- `s/epoch`: the median time between consecutive epochs' metrics in runs that trained from scratch, its first
  epoch (tracing) left out; the difference between settings is what recomputing the statistics costs.

Beside them, what "good" is on the same splits: the classical baselines of `bench.digits_baseline` (an RBF SVC and
a logistic regression on the pixels, chosen on validation).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from alexnet_sweep import names
from alexnet_sweep.bench.digits_baseline import markdown as baseline_markdown
from alexnet_sweep.bench.digits_baseline import run_baseline
from alexnet_sweep.bench.markdown import save_report
from alexnet_sweep.report.data import Sweep, latest_sweep_parent, load_sweep
from alexnet_sweep.report.runs import RunSummary

log = logging.getLogger(__name__)

EXPERIMENT = "precise_bn_bench"
MOMENTA = ("0.99", "0.9")


def run_sweep(workdir: Path, images: int, extra: Sequence[str]) -> Sweep:
    """Runs the demo grid x momentum x precise BN in `workdir` and reads the sweep back from its store."""
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    command = [sys.executable, "-m", "alexnet_sweep", "-m", "experiment=demo", f"model.bn_momentum={','.join(MOMENTA)}",
               f"precise_bn_images=0,{images}", f"mlflow.tracking_uri={store}", f"mlflow.experiment_name={EXPERIMENT}",
               f"hydra.sweep.dir={workdir / 'sweep'}", f"checkpoint_dir={workdir / 'checkpoints'}", *extra]  # fmt: skip
    log.info("Running: %s", " ".join(command[2:]))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    (workdir / "sweep.log").write_text(result.stdout + result.stderr)
    log.info("The sweep took %.0f s (exit %d)", time.perf_counter() - started, result.returncode)
    if result.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {result.returncode}); see {workdir / 'sweep.log'}")
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return load_sweep(client, latest_sweep_parent(client, experiment.experiment_id).info.run_id)


def largest_drop(run: RunSummary) -> float:
    """The largest fall of val_accuracy between consecutive epochs of a run (0 if it never falls)."""
    curve = run.history.get(names.VAL_ACCURACY, {})
    epochs = sorted(curve)
    return max([curve[a] - curve[b] for a, b in zip(epochs, epochs[1:], strict=False)] + [0.0])


def epoch_seconds(client: MlflowClient, run: RunSummary) -> list[float]:
    """Seconds between consecutive epochs' val_accuracy, after the first epoch, of a run that trained from scratch."""
    points = sorted(client.get_metric_history(run.run_id, names.VAL_ACCURACY), key=lambda m: m.step)
    return [(b.timestamp - a.timestamp) / 1000 for a, b in zip(points[1:], points[2:], strict=False)]


def settings_table(sweep: Sweep, client: MlflowClient) -> list[dict[str, Any]]:
    """One row per (bn_momentum, precise_bn_images): seed noise, drops, accuracies and time per epoch."""
    rows = []
    for momentum in MOMENTA:
        for images in sweep.values("precise_bn_images"):
            setting = {"model.bn_momentum": momentum, "precise_bn_images": images}
            configs = [c for c in sweep.configurations if all(c.values.get(k) == v for k, v in setting.items())]
            runs = [run for config in configs for run in config.finished]
            sds = [statistics.stdev(config.final(names.VAL_ACCURACY)) for config in configs if config.n > 1]
            seconds = [s for run in runs if run.metrics.get(names.EPOCHS_TRAINED) == float(run.params["epochs"])
                       for s in epoch_seconds(client, run)]  # fmt: skip
            best = max(configs, key=lambda c: c.mean_val_accuracy or 0.0)
            rows.append({
                "bn_momentum": momentum, "precise_bn_images": int(images), "runs": len(runs),
                "configurations": len(configs), "seed_sd_mean": statistics.fmean(sds) if sds else None,
                "seed_sd_max": max(sds, default=None), "largest_drop": max(map(largest_drop, runs), default=None),
                "val_accuracy_mean": statistics.fmean(r.metrics[names.VAL_ACCURACY] for r in runs),
                "test_accuracy_mean": statistics.fmean(r.metrics[names.TEST_ACCURACY] for r in runs),
                "best": sweep.config_label(best), "best_val_accuracy": best.mean_val_accuracy,
                "seconds_per_epoch": statistics.median(seconds) if seconds else None,
            })  # fmt: skip
    return rows


def markdown(report: dict[str, Any]) -> str:
    """Renders the settings side by side as a Markdown table."""
    lines = [
        f"## Precise BatchNorm on the demo ({report['seeds']} seeds per configuration, {report['cpu']})",
        "",
        "| bn_momentum | precise_bn_images | seed sd of val_accuracy (mean / max) | largest epoch-to-epoch drop | "
        "mean val_accuracy | mean test_accuracy | best configuration (mean val) | s/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['bn_momentum']} | {row['precise_bn_images']} | {_f(row['seed_sd_mean'])} / "
            f"{_f(row['seed_sd_max'])} | {_f(row['largest_drop'])} | {_f(row['val_accuracy_mean'])} | "
            f"{_f(row['test_accuracy_mean'])} | {row['best']} ({_f(row['best_val_accuracy'])}) | "
            f"{_f(row['seconds_per_epoch'], '{:.2f}')} |"
        )
    if report.get("baseline"):
        lines += [
            "",
            "Classical baselines on the same splits (chosen on validation):",
            "",
            baseline_markdown(report["baseline"]),
        ]
    lines += ["", f"Command: `{report['command']}`; the sweep took {report['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def _f(value: float | None, spec: str = "{:.3f}") -> str:
    return "" if value is None else spec.format(value)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the bench; prints the table, writes `--out` (JSON) and its `.md` twin, and returns the report."""
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_sweep.bench.precise_bn", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--images", type=int, default=1024, help="precise_bn_images of the 'on' setting")
    parser.add_argument("--out", type=Path, help="write the report to this JSON file and a Markdown table beside it")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="more overrides for the sweep, e.g. seed=0,1")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_precise_bn_") as temporary:
        workdir = args.keep or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        sweep = run_sweep(workdir, args.images, args.overrides)
        client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
        rows = settings_table(sweep, client)
    data_dirs = [o.split("=", 1)[1] for o in args.overrides if o.startswith("dataset.data_dir=")]
    baseline = run_baseline(data_dirs[-1] if data_dirs else None) if sweep.values("dataset.name") == ["digits"] else []
    seeds = len(sweep.values("seed")) or 1
    command = " ".join(["python -m alexnet_sweep.bench.precise_bn", f"--images {args.images}", *args.overrides])
    report = {"rows": rows, "baseline": baseline, "seeds": seeds, "command": command,
              "cpu": f"{len(os.sched_getaffinity(0))} CPU cores", "wall_s": time.perf_counter() - started}  # fmt: skip
    save_report(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
