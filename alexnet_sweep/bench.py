"""`python -m alexnet_sweep.bench`: our training path against the reference notebook's, measured in one run.

Every variant trains the same AlexNet on the same data (the offline `shapes` dataset, prepared on the fly) with the
same batch size, learning rate and training budget:

- `reference`: the notebook's recipe, re-implemented here on purpose (not from our modules): per-example
  `tf.image.resize(image / 255, ...)` in the tf.data map on the host, one-hot labels, `shuffle(256)`, `batch`,
  a float32 Keras model fed float32 images, Adam, categorical cross-entropy.
- `ours`: `alexnet_sweep.data.load_splits` + `alexnet_sweep.model.build_model` exactly as a job uses them (uint8
  images cached in memory; scaling and resizing are the model's first layers), once per precision policy the
  machine can run, the `precision=auto` choice first.

Each variant trains `--steps` steps at `--input-size` and is evaluated on the test split (so a speedup is never
bought with accuracy), and trains `--size227-steps` steps at 227x227 (the reference size) for throughput only.
Throughput is steady state: the first `--warmup-steps` steps (tracing, compilation, caches) are left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import mlflow
import tensorflow as tf
import tensorflow_datasets as tfds
from hydra import compose, initialize_config_module
from keras import layers
from omegaconf import DictConfig

from alexnet_sweep import tracking
from alexnet_sweep.callbacks import EpochMetricsLogger
from alexnet_sweep.config import register_configs, validate
from alexnet_sweep.data import load_splits
from alexnet_sweep.model import compiled_model
from alexnet_sweep.optimizer import build_optimizer
from alexnet_sweep.precision import POLICIES, cpu_flags, gpu_capabilities, resolve_precision

log = logging.getLogger(__name__)
_IMPORTED_AT = time.perf_counter()  # where /proc is missing, the bench's clock starts here

REFERENCE_SIZE = 227
REFERENCE_SHUFFLE_BUFFER = 256
PIPELINE_SECONDS = 1.0  # how long the input pipeline alone is timed, after one warm-up epoch
MLFLOW_EPOCHS = 5  # epochs of metric logging timed against the tracking store
ENDLESS_EPOCHS = 1_000_000  # our train stream, epoch after epoch; tf.data builds epochs lazily
# The bench composes the `demo` preset: shapes, BatchNorm momentum 0.9 (a short budget, see experiment/demo.yaml).
BASE_OVERRIDES = ("experiment=demo",)


@dataclass(frozen=True)
class Pipelines:
    """What a variant trains and tests on."""

    train: tf.data.Dataset  # endless stream of training batches (input, label), epoch after epoch
    test: tf.data.Dataset
    train_examples: int
    num_classes: int
    image_shape: tuple[int | None, int | None, int]


@dataclass(frozen=True)
class Recipe:
    """How one variant gets its data and its compiled model from a job config."""

    name: str
    precision: str
    pipelines: Callable[[DictConfig], Pipelines]
    model: Callable[[DictConfig, Pipelines], keras.Model]


# ---- the reference notebook's recipe --------------------------------------------------------------------------


def reference_preprocess(size: int, num_classes: int) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Returns the reference notebook's per-example map: scale to [0, 1], bilinear resize, one-hot label."""

    def preprocess(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.image.resize(image / 255, [size, size], method="bilinear")
        return image, tf.one_hot(label, num_classes)

    return preprocess


def reference_pipelines(cfg: DictConfig) -> Pipelines:
    """The reference input pipeline on the job's splits: resize on the host, float32 images, no cache/prefetch."""
    builder = tfds.builder(cfg.dataset.name, data_dir=cfg.dataset.data_dir)
    num_classes = builder.info.features["label"].num_classes
    preprocess = reference_preprocess(cfg.model.input_size, num_classes)

    def load(split: str) -> tf.data.Dataset:
        return tfds.load(cfg.dataset.name, split=split, data_dir=cfg.dataset.data_dir, as_supervised=True)

    train = load(cfg.dataset.train_split)
    return Pipelines(
        train=train.map(preprocess).shuffle(REFERENCE_SHUFFLE_BUFFER, seed=cfg.seed).batch(cfg.batch_size).repeat(),
        test=load(cfg.dataset.test_split).map(preprocess).batch(cfg.batch_size),
        train_examples=int(train.cardinality()),
        num_classes=num_classes,
        image_shape=(cfg.model.input_size, cfg.model.input_size, 3),
    )


def reference_model(cfg: DictConfig, pipelines: Pipelines) -> keras.Model:
    """The reference notebook's AlexNet in float32, compiled with Adam and categorical cross-entropy.

    Dropout and BatchNorm momentum come from the config, like ours: the bench's `demo` preset sets momentum 0.9
    (the notebook's Keras default 0.99 leaves a 100-step run at chance accuracy, see experiment/demo.yaml).
    """
    keras.mixed_precision.set_global_policy("float32")
    bn_momentum, dropout = cfg.model.bn_momentum, cfg.model.dropout
    model = keras.Sequential(
        [
            layers.Input(shape=pipelines.image_shape),
            layers.Conv2D(96, 11, strides=4, activation="relu"),  # padding "valid", as in the notebook
            layers.BatchNormalization(momentum=bn_momentum),
            layers.MaxPooling2D(3, 2),
            layers.Conv2D(256, 5, padding="same", activation="relu"),
            layers.BatchNormalization(momentum=bn_momentum),
            layers.MaxPooling2D(3, 2),
            layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(256, 3, padding="same", activation="relu"),
            layers.BatchNormalization(momentum=bn_momentum),
            layers.MaxPooling2D(3, 2),
            layers.Flatten(),
            layers.Dense(4096, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(4096, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(pipelines.num_classes, activation="softmax"),
        ],
        name="reference",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=cfg.optimizer.lr),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


# ---- our training path ------------------------------------------------------------------------------------------


def our_pipelines(cfg: DictConfig) -> Pipelines:
    """The job's own pipelines (`alexnet_sweep.data.load_splits`): uint8 images, cached, shuffled per epoch."""
    splits = load_splits(cfg.dataset, batch_size=cfg.batch_size, seed=cfg.seed, image_size=cfg.model.input_size)
    return Pipelines(
        train=splits.train_epochs(0, ENDLESS_EPOCHS),
        test=splits.test,
        train_examples=splits.sizes["train_split"],
        num_classes=len(splits.class_names),
        image_shape=splits.image_shape,
    )


def our_model(cfg: DictConfig, pipelines: Pipelines) -> keras.Model:
    """The job's model under `cfg.precision`, compiled as `alexnet_sweep.train.run` compiles it."""
    return compiled_model(
        cfg, build_optimizer(cfg.optimizer), image_shape=pipelines.image_shape, num_classes=pipelines.num_classes
    )


# ---- measuring --------------------------------------------------------------------------------------------------


class StepTimes(keras.callbacks.Callback):
    """Records when each training step has finished (Keras hands non-async callbacks materialized logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())


def images_in_steps(first: int, last: int, *, examples: int, batch_size: int) -> int:
    """Returns the number of images in steps first..last-1 of a stream of epochs of `examples` in batches."""
    steps_per_epoch = math.ceil(examples / batch_size)
    last_batch = examples - (steps_per_epoch - 1) * batch_size
    return sum(
        last_batch if step % steps_per_epoch == steps_per_epoch - 1 else batch_size for step in range(first, last)
    )


def steady_rate(times: Sequence[float], warmup: int, *, examples: int, batch_size: int) -> float:
    """Returns images/s over the steps after the first `warmup` ones, from each step's finishing time."""
    if not 1 <= warmup < len(times):
        raise ValueError(f"need more steps ({len(times)}) than warm-up steps ({warmup}), and at least one warm-up")
    images = images_in_steps(warmup, len(times), examples=examples, batch_size=batch_size)
    return images / (times[-1] - times[warmup - 1])


def pipeline_rate(dataset: tf.data.Dataset, *, warmup_batches: int, seconds: float) -> float:
    """Returns images/s of iterating `dataset` alone (no model) for `seconds`, after `warmup_batches` batches."""
    batches = iter(dataset)
    for _ in range(warmup_batches):
        next(batches)
    images, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or images == 0:
        images += int(next(batches)[0].shape[0])
    return images / elapsed


def bytes_per_image(dataset: tf.data.Dataset) -> float:
    """Returns the bytes of one batch's input images divided by its size: what the host ships per image."""
    images, _ = next(iter(dataset))
    return images.numpy().nbytes / images.shape[0]


def measure(recipe: Recipe, cfg: DictConfig, *, steps: int, warmup: int, evaluate: bool) -> dict[str, Any]:
    """Builds a variant's data and model from scratch, trains `steps` steps and measures it.

    Returns:
        `train_img_per_s`, `pipeline_img_per_s`, `bytes_per_image`, `first_step_s` (from building the pipeline to
        the end of the first step: data loading, model, tracing) and, with `evaluate`, `test_accuracy`.
    """
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(cfg.seed)
    start = time.perf_counter()
    pipelines = recipe.pipelines(cfg)
    model = recipe.model(cfg, pipelines)
    timer = StepTimes()
    model.fit(pipelines.train, epochs=1, steps_per_epoch=steps, callbacks=[timer], shuffle=False, verbose=0)
    result = {
        "policy": model.dtype_policy.name,
        "jit_compile": bool(model.jit_compile),
        "first_step_s": timer.times[0] - start,
        "train_examples": pipelines.train_examples,
        "train_img_per_s": steady_rate(
            timer.times, warmup, examples=pipelines.train_examples, batch_size=cfg.batch_size
        ),
    }
    if evaluate:
        result["test_accuracy"] = float(model.evaluate(pipelines.test, return_dict=True, verbose=0)["accuracy"])
    warmup_batches = math.ceil(pipelines.train_examples / cfg.batch_size)  # one epoch: fills our cache
    result["pipeline_img_per_s"] = pipeline_rate(
        pipelines.train, warmup_batches=warmup_batches, seconds=PIPELINE_SECONDS
    )
    result["bytes_per_image"] = bytes_per_image(pipelines.train)
    result["_process_s_at_first_step"] = seconds_since_process_start() - (time.perf_counter() - timer.times[0])
    return result


def measure_variant(recipe: Recipe, make_cfg: Callable[..., DictConfig], args: argparse.Namespace) -> dict[str, Any]:
    """Measures one variant at `--input-size` (with test accuracy) and at 227x227 (throughput only)."""
    log.info("Measuring %s at %dx%d, %d steps", recipe.name, args.input_size, args.input_size, args.steps)
    cfg = make_cfg(f"model.input_size={args.input_size}", f"precision={recipe.precision}")
    small = measure(recipe, cfg, steps=args.steps, warmup=args.warmup_steps, evaluate=True)
    result = {"name": recipe.name, "precision": recipe.precision, **small}
    if args.size227_steps:
        log.info("Measuring %s at %dx%d, %d steps", recipe.name, REFERENCE_SIZE, REFERENCE_SIZE, args.size227_steps)
        cfg = make_cfg(f"model.input_size={REFERENCE_SIZE}", f"precision={recipe.precision}")
        big = measure(recipe, cfg, steps=args.size227_steps, warmup=args.warmup_steps, evaluate=False)
        for key in ("train_img_per_s", "pipeline_img_per_s", "bytes_per_image", "first_step_s"):
            result[f"{key}_227"] = big[key]
    return result


def mlflow_overhead(cfg: DictConfig, epoch_s: float) -> dict[str, float]:
    """Times what a job logs to MLflow, into a throwaway SQLite store, against one epoch's training time.

    Returns:
        `store_create_s` (a new store's tables: once per store), `run_setup_s` (`tracking.job_run`: run, tags and
        params, once per job), `log_s_per_epoch` (what `callbacks.EpochMetricsLogger` logs each epoch), `epoch_s`
        and `overhead_pct` = 100 * log_s_per_epoch / epoch_s.
    """
    previous_uri = mlflow.get_tracking_uri()
    logs = {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}
    logger = EpochMetricsLogger()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as store:
        try:
            start = time.perf_counter()
            client = tracking.connect(f"sqlite:///{store}/mlflow.db")
            experiment_id = tracking.get_or_create_experiment(client, "bench")
            store_create_s, start = time.perf_counter() - start, time.perf_counter()
            with tracking.job_run(cfg, experiment_id):
                run_setup_s, start = time.perf_counter() - start, time.perf_counter()
                for epoch in range(MLFLOW_EPOCHS):
                    logger.on_epoch_end(epoch, logs)
                per_epoch = (time.perf_counter() - start) / MLFLOW_EPOCHS
        finally:
            mlflow.set_tracking_uri(previous_uri)
    return {
        "store_create_s": store_create_s,
        "run_setup_s": run_setup_s,
        "log_s_per_epoch": per_epoch,
        "epoch_s": epoch_s,
        "overhead_pct": 100 * per_epoch / epoch_s,
    }


# ---- the machine ------------------------------------------------------------------------------------------------


def seconds_since_process_start() -> float:
    """Returns how long this process has existed (Linux /proc); elsewhere, since this module was imported."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks after boot
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED_AT


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """Returns the CPU's model name, or what `platform` knows where /proc/cpuinfo does not exist."""
    try:
        for line in Path(cpuinfo_path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Describes what the numbers were measured on."""
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = gpu_capabilities()
    flags = cpu_flags()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "gpus": [
            {"name": tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name), "capability": cap}
            for gpu, cap in zip(gpus, capabilities, strict=True)
        ],
        "precision_auto": resolve_precision("auto", flags, capabilities),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "platform": platform.platform(),
    }


# ---- the run ----------------------------------------------------------------------------------------------------


def recipes(auto_policy: str, has_gpu: bool) -> tuple[list[Recipe], list[dict[str, str]]]:
    """Returns the variants of our path to measure (`auto` first) and the precisions skipped, with why."""
    ours = [Recipe(f"ours auto ({auto_policy})", "auto", our_pipelines, our_model)]
    skipped = []
    for policy in POLICIES:
        if policy == auto_policy:
            skipped.append({"precision": policy, "reason": "measured as auto"})
        elif policy == "mixed_float16" and not has_gpu:
            skipped.append({"precision": policy, "reason": "no GPU: CPUs emulate float16, slowly"})
        else:
            ours.append(Recipe(f"ours {policy}", policy, our_pipelines, our_model))
    return ours, skipped


def prepare_shapes(data_dir: str) -> None:
    """Generates the offline `shapes` dataset into `data_dir` (seconds; nothing is downloaded)."""
    tfds.builder("shapes", data_dir=data_dir).download_and_prepare()


def config_factory(data_dir: str, batch_size: int, seed: int) -> Callable[..., DictConfig]:
    """Returns `make(*overrides)`: the validated job config of the bench (the `demo` preset + these settings)."""
    register_configs()
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
    """Measures the reference and every variant of ours; returns the report (see `main`)."""
    started = time.perf_counter()
    machine = machine_info()
    prepare_shapes(data_dir)
    make_cfg = config_factory(data_dir, args.batch_size, args.seed)
    ours, skipped = recipes(machine["precision_auto"], bool(machine["gpus"]))
    try:
        variants = [measure_variant(recipe, make_cfg, args) for recipe in ours]  # ours first: pays cold starts
        reference = measure_variant(
            Recipe("reference", "float32", reference_pipelines, reference_model), make_cfg, args
        )
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


COLUMNS = (
    ("variant", "name", "{}"),
    ("policy", "policy", "{}"),
    ("XLA", "jit_compile", "{}"),
    ("train img/s", "train_img_per_s", "{:.1f}"),
    ("speedup", "speedup", "{:.2f}x"),
    ("train img/s 227", "train_img_per_s_227", "{:.1f}"),
    ("speedup 227", "speedup_227", "{:.2f}x"),
    ("pipeline img/s", "pipeline_img_per_s", "{:,.0f}"),
    ("pipeline img/s 227", "pipeline_img_per_s_227", "{:,.0f}"),
    ("bytes/image", "bytes_per_image", "{:,.0f}"),
    ("bytes/image 227", "bytes_per_image_227", "{:,.0f}"),
    ("first step s", "first_step_s", "{:.1f}"),
    ("test accuracy", "test_accuracy", "{:.3f}"),
)


def markdown(report: dict[str, Any]) -> str:
    """Renders the report as a Markdown table with the machine, settings and overheads below it."""
    settings, machine, startup, overhead = report["settings"], report["machine"], report["startup"], report["mlflow"]
    rows = [report["reference"], *report["variants"]]
    columns = [column for column in COLUMNS if any(column[1] in row for row in rows)]
    lines = [
        f"## Training: ours vs the reference notebook ({settings['dataset']}, batch {settings['batch_size']})",
        "",
        "| " + " | ".join(title for title, _, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) if key in row else "" for _, key, fmt in columns) + " |")
    gpus = ", ".join(
        f"{gpu['name']} (compute {gpu['capability'][0]}.{gpu['capability'][1]})" for gpu in machine["gpus"]
    )
    lines += [
        "",
        f"Columns without 227: {settings['input_size']}x{settings['input_size']}, {settings['steps']} steps, then test "
        f"accuracy on `{settings['test_split']}`; with 227: {settings['size227_steps']} steps at 227x227. Steady state "
        f"leaves out the first {settings['warmup_steps']} steps. {settings['optimizer']}, BatchNorm momentum "
        f"{settings['bn_momentum']}, seed {settings['seed']}.",
        f"Machine: {machine['cpu']}, {machine['cpu_cores_usable']} of {machine['cpu_cores']} cores usable, "
        f"bf16 flags: {', '.join(machine['cpu_bf16']) or 'none'}; GPU: {gpus or 'none'}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, Python {machine['python']}; "
        f"precision=auto -> {machine['precision_auto']}.",
        f"Process start to first train step ({startup['variant']}): {startup['process_start_to_first_step_s']:.1f} s.",
        f"MLflow per epoch (metrics into SQLite): {1000 * overhead['log_s_per_epoch']:.1f} ms = "
        f"{overhead['overhead_pct']:.3f}% of a {overhead['epoch_s']:.1f} s epoch; once per job (run, tags, "
        f"params): {overhead['run_setup_s']:.2f} s; creating a new store: {overhead['store_create_s']:.1f} s.",
    ]
    lines += [f"Not measured: {entry['precision']} ({entry['reason']})." for entry in report["skipped"]]
    lines.append(f"Bench wall time: {report['wall_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line of `python -m alexnet_sweep.bench`."""
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


def save_report(report: dict[str, Any], table: str, out: Path | None) -> None:
    """Prints a bench's Markdown table and, given `out`, writes the report there (JSON) and the table beside it."""
    print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(table)
        print(f"Wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("absl").setLevel(logging.WARNING)
    main()
