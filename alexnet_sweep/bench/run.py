"""The whole training bench: the job config, every variant of ours and the reference, measured in one run."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import keras
import tensorflow_datasets as tfds
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from alexnet_sweep.bench.machine import machine_info
from alexnet_sweep.bench.measure import measure_variant, mlflow_overhead
from alexnet_sweep.bench.recipes import recipes
from alexnet_sweep.bench.reference import REFERENCE
from alexnet_sweep.config import validate
from alexnet_sweep.plugins import register

# The bench composes the `demo` preset on `shapes` (RGB, like the reference notebook's CIFAR-10), with BatchNorm
# momentum 0.9 and Keras' moving statistics (no precise BatchNorm: the reference notebook had none).
BASE_OVERRIDES = ("experiment=demo", "dataset=shapes", "model.bn_momentum=0.9", "precise_bn_images=0")


def prepare_shapes(data_dir: str) -> None:
    """Generates the offline `shapes` dataset into `data_dir` (seconds; nothing is downloaded)."""
    from alexnet_sweep import shapes  # noqa: F401  (defining the builder registers it with TFDS)

    tfds.builder("shapes", data_dir=data_dir).download_and_prepare()


def config_factory(data_dir: str, batch_size: int, seed: int) -> Callable[..., DictConfig]:
    """Returns `make(*overrides)`: the validated job config of the bench (the `demo` preset + these settings)."""
    register()
    base = [*BASE_OVERRIDES, f"dataset.data_dir={data_dir}", f"batch_size={batch_size}", f"seed={seed}"]

    def make(*overrides: str) -> DictConfig:
        with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*base, *overrides])
        validate(cfg)
        return cfg

    return make


def add_speedups(reference: dict[str, Any], variants: list[dict[str, Any]]) -> None:
    """Adds each variant's train-throughput ratio to the reference, at both sizes."""
    for entry in [reference, *variants]:
        entry["speedup"] = entry["train_img_per_s"] / reference["train_img_per_s"]
        if "train_img_per_s_227" in reference:
            entry["speedup_227"] = entry["train_img_per_s_227"] / reference["train_img_per_s_227"]


def run_bench(args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    """Measures the reference and every variant of ours.

    Args:
        args: The bench's options (`cli.parse_args`).
        data_dir: The TFDS data_dir to prepare `shapes` in.

    Returns:
        The report (see `cli.main`).
    """
    started = time.perf_counter()
    machine = machine_info()
    prepare_shapes(data_dir)
    make_cfg = config_factory(data_dir, args.batch_size, args.seed)
    ours, skipped = recipes(machine["precision_auto"], bool(machine["gpus"]))
    try:
        variants = [measure_variant(recipe, make_cfg, args) for recipe in ours]  # ours first: pays cold starts
        reference = measure_variant(REFERENCE, make_cfg, args)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    add_speedups(reference, variants)
    default = variants[0]
    cfg = make_cfg(f"model.input_size={args.input_size}")
    return {
        "settings": {
            "dataset": cfg.dataset.name,
            "train_split": cfg.dataset.train_split,
            "test_split": cfg.dataset.test_split,
            "input_size": args.input_size,
            "steps": args.steps,
            "size227_steps": args.size227_steps,
            "warmup_steps": args.warmup_steps,
            "batch_size": args.batch_size,
            "optimizer": f"{cfg.optimizer.name} lr={cfg.optimizer.lr}",
            "bn_momentum": cfg.model.bn_momentum,
            "seed": args.seed,
        },
        "machine": machine,
        "reference": _public(reference),
        "variants": [_public(variant) for variant in variants],
        "skipped": skipped,
        "startup": {"process_start_to_first_step_s": default["_process_s_at_first_step"], "variant": default["name"]},
        # One epoch of the default variant: its train split at its steady training rate (validation left out).
        "mlflow": mlflow_overhead(cfg, epoch_s=default["train_examples"] / default["train_img_per_s"]),
        "wall_s": time.perf_counter() - started,
    }


def _public(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if not key.startswith("_")}
