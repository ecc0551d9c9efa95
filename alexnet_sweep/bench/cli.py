"""The command line of `python -m alexnet_sweep.bench`: options, the run, the printed table and written files."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from alexnet_sweep.bench.markdown import markdown, save_report
from alexnet_sweep.bench.run import run_bench


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line of `python -m alexnet_sweep.bench`; exits with a usage error on too few steps."""
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_sweep.bench",
        description="Measure our training path against the reference notebook's (throughput, input pipeline, "
        "host-to-device bytes, startup, MLflow overhead, test accuracy) in one run.",
    )
    parser.add_argument("--input-size", type=int, default=67, help="image side of the accuracy runs (default 67)")
    parser.add_argument("--steps", type=int, default=100, help="training steps of each accuracy run (default 100)")
    parser.add_argument(
        "--size227-steps", type=int, default=5, help="training steps at 227x227, throughput only; 0 skips (default 5)"
    )
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps left out of throughput (default 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per batch (default 64, the reference)")
    parser.add_argument("--seed", type=int, default=42, help="seeds weights and data order (default 42)")
    parser.add_argument("--data-dir", help="TFDS data_dir for `shapes` (default: a temporary directory)")
    parser.add_argument("--out", type=Path, help="write the report to this JSON file and a Markdown table beside it")
    args = parser.parse_args(argv)
    for name in ("steps", "size227_steps"):
        steps = getattr(args, name)
        if steps and steps <= args.warmup_steps:
            parser.error(f"--{name.replace('_', '-')}={steps}: must exceed --warmup-steps={args.warmup_steps}")
    if args.warmup_steps < 1:
        parser.error(f"--warmup-steps={args.warmup_steps}: must be at least 1 (the first step traces the model)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the bench; prints the table, writes `--out` (JSON) and its `.md` twin, and returns the report.

    Args:
        argv: The command line without the program name (default: `sys.argv[1:]`).

    Returns:
        The report: `settings`, `machine`, `reference` and `variants` (each with `name`, `precision`, `policy`,
        `train_img_per_s`, `speedup`, `pipeline_img_per_s`, `bytes_per_image`, `first_step_s`, `test_accuracy`,
        and the same at 227x227 with a `_227` suffix), `skipped`, `startup`, `mlflow`, `wall_s`.
    """
    args = parse_args(argv)
    tfds.display_progress_bar(False)
    if args.data_dir:
        report = run_bench(args, args.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_tfds_") as data_dir:
            report = run_bench(args, data_dir)
    save_report(report, markdown(report), args.out)
    return report
