"""The typed schema of the configuration (Hydra ConfigStore) and the checks Hydra's typing cannot express.

The schema only types keys; every value, with the reason for it, lives in the YAML files under `conf/`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.nodes import FloatNode, StringNode

from alexnet_sweep.architecture import BYTES_PER_PARAMETER, min_input_size, parameter_count, training_memory
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.gpu import check_setting as check_gpu_memory
from alexnet_sweep.precision import SETTINGS as PRECISION_SETTINGS

_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # a Python import path: package.module.Name
REFERENCE_INPUT_SIZE = 227  # the reference AlexNet's input side
# A container's memory limit as it sees it: cgroup v2, then v1 ("max" or a huge number where there is none).
CGROUP_MEMORY_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


@dataclass
class DatasetConfig:
    """The `dataset` group: which TFDS dataset, its three splits, and how to load it."""

    name: str = MISSING
    train_split: str = MISSING
    val_split: str = MISSING
    test_split: str = MISSING
    data_dir: str | None = None
    builder_module: str | None = None
    download: bool = MISSING
    cache: bool = MISSING
    shuffle_buffer: int = MISSING


@dataclass
class ModelConfig:
    """The `model` group: an AlexNet variant."""

    name: str = MISSING
    input_size: int = MISSING
    dense_units: list[int] = MISSING
    dropout: float = MISSING
    bn_momentum: float = MISSING


def _optimizer_schema() -> dict[str, Any]:
    """The `optimizer` group's typed keys: what every optimizer has. A YAML adds the optimizer's own arguments.

    The group is an open dict (`optimizer: dict[str, Any]` in `Config`) holding typed nodes for these three keys,
    so `optimizer.lr=abc` is refused while composing and `beta_1`, `momentum`, ... need no schema. A dataclass
    cannot be open without subclassing `Dict`, which OmegaConf deprecates (omegaconf#663). Hydra closes the node
    after composing (struct mode), so an unknown key on the command line is refused unless added with `+`.
    """
    return {
        "_target_": StringNode(MISSING),  # the Keras optimizer class, built by hydra.utils.instantiate
        "name": StringNode(MISSING),  # ours: names the optimizer in params and reports
        "lr": FloatNode(MISSING),  # ours: passed as learning_rate
    }


@dataclass
class MlflowConfig:
    """Where runs are recorded."""

    tracking_uri: str = MISSING
    experiment_name: str = MISSING


@dataclass
class Config:
    """The whole job config (conf/config.yaml)."""

    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: dict[str, Any] = field(default_factory=_optimizer_schema)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    seed: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    save_model: bool = MISSING
    resume: bool = MISSING
    share_epochs: bool = MISSING
    checkpoint_dir: str = MISSING
    precision: str = MISSING
    jit_compile: Any = MISSING  # auto | true | false (a Union the schema cannot type; checked in validate)
    gpu_memory: Any = MISSING  # growth | a fraction in (0, 1] (checked in validate)
    precise_bn_images: int = MISSING  # 0: off
    reuse_model: bool = MISSING  # a job of the same graph as the last reuses its traced model (reuse.py)


def register_configs() -> None:
    """Registers the schemas that the YAML files under `conf/` extend.

    They live in their own `schema/...` groups, so `model=...` and friends offer only real options.
    """
    store = ConfigStore.instance()
    store.store(group="schema", name="config", node=Config)
    store.store(group="schema/dataset", name="base", node=DatasetConfig)
    store.store(group="schema/model", name="base", node=ModelConfig)


def _fail(key: str, value: Any, problem: str) -> UserInputError:
    return UserInputError(f"{key}={value!r}: {problem}")


def validate(cfg: DictConfig) -> None:
    """Checks the values whose limits the schema's types cannot express.

    Args:
        cfg: The composed job configuration.

    Raises:
        UserInputError: On the first bad value, naming its key and value.
    """
    for key in sorted(OmegaConf.missing_keys(cfg)):
        raise UserInputError(f"{key}=???: has no value; set it in its YAML file or on the command line")
    for key, value in _keys_outside_schema(cfg):
        raise _fail(key, value, "not a config key (list them with: python -m alexnet_sweep --cfg job)")
    if not 0 <= cfg.seed < 2**32:
        raise _fail("seed", cfg.seed, "must be in [0, 2**32)")
    lr = cfg.optimizer.lr
    if not (math.isfinite(lr) and lr > 0):
        raise _fail("optimizer.lr", lr, "must be a positive number")
    if not _DOTTED_NAME.fullmatch(cfg.optimizer._target_):
        raise _fail("optimizer._target_", cfg.optimizer._target_, "must name a class, e.g. keras.optimizers.Adam")
    if "learning_rate" in cfg.optimizer:
        raise _fail("optimizer.learning_rate", cfg.optimizer.learning_rate, "set optimizer.lr instead")
    module = cfg.dataset.builder_module
    if module is not None and not _DOTTED_NAME.fullmatch(module):
        raise _fail("dataset.builder_module", module, "must be a module name, e.g. my_datasets.builders")
    for key in ("epochs", "batch_size"):
        if cfg[key] < 1:
            raise _fail(key, cfg[key], "must be at least 1")
    smallest = min_input_size()
    if cfg.model.input_size < smallest:
        raise _fail(
            "model.input_size",
            cfg.model.input_size,
            f"too small for {cfg.model.name}: the minimum is {smallest}",
        )
    if not cfg.model.dense_units or min(cfg.model.dense_units) < 1:
        raise _fail("model.dense_units", list(cfg.model.dense_units), "needs at least one layer of >= 1 units")
    for key in ("dropout", "bn_momentum"):
        if not 0 <= cfg.model[key] < 1:
            raise _fail(f"model.{key}", cfg.model[key], "must be in [0, 1)")
    if cfg.precise_bn_images < 0:
        raise _fail("precise_bn_images", cfg.precise_bn_images, "must be 0 (off) or a number of training images")
    if cfg.dataset.shuffle_buffer < 1:
        raise _fail("dataset.shuffle_buffer", cfg.dataset.shuffle_buffer, "must be at least 1")
    if cfg.precision not in PRECISION_SETTINGS:
        raise _fail("precision", cfg.precision, f"must be one of {' | '.join(PRECISION_SETTINGS)}")
    if not (isinstance(cfg.jit_compile, bool) or cfg.jit_compile == "auto"):
        raise _fail("jit_compile", cfg.jit_compile, "must be one of auto | true | false")
    problem = check_gpu_memory(cfg.gpu_memory)
    if problem:
        raise _fail("gpu_memory", cfg.gpu_memory, problem)
    too_big = _memory_problem(cfg, host_memory())
    if too_big:
        raise too_big


def host_memory() -> int | None:
    """Returns the bytes of memory this machine has: physical memory, or a container's limit if lower.

    Returns:
        The bytes, or None where the system reports neither.
    """
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # a system without these sysconf names
        pass
    for path in CGROUP_MEMORY_LIMITS:
        try:
            sizes.append(int(path.read_text().strip()))
        except (OSError, ValueError):  # no such file, or "max": no limit
            pass
    sizes = [size for size in sizes if size > 0]
    return min(sizes) if sizes else None


def _memory_problem(cfg: DictConfig, available: int | None) -> UserInputError | None:
    """Refuses a model whose training cannot fit in `available` bytes (`architecture.training_memory`).

    The error names the key to lower: `model.input_size` if the reference size would fit, else `model.dense_units`
    or `batch_size`, whichever takes more of the estimate (the parameters or the activations).
    """
    if available is None:
        return None
    model = cfg.model
    dense_units = list(model.dense_units)
    # Activations in the compute dtype: float32, or 2 bytes under a mixed policy (`auto` may pick one; the lower
    # count keeps the estimate one that cannot refuse a model that fits).
    activation_bytes = 4 if cfg.precision == "float32" else 2
    needed = training_memory(model.input_size, dense_units, cfg.batch_size, activation_bytes=activation_bytes)
    if needed <= available:
        return None
    parameter_bytes = parameter_count(model.input_size, dense_units) * BYTES_PER_PARAMETER
    smaller = training_memory(
        min(model.input_size, REFERENCE_INPUT_SIZE), dense_units, cfg.batch_size, activation_bytes=activation_bytes
    )
    if model.input_size > REFERENCE_INPUT_SIZE and smaller <= available:
        key, value = "model.input_size", model.input_size
    elif parameter_bytes >= needed - parameter_bytes:  # the parameters take more than the activations
        key, value = "model.dense_units", dense_units
    else:
        key, value = "batch_size", cfg.batch_size
    return _fail(
        key,
        value,
        f"{model.name} at {model.input_size}x{model.input_size} (dense_units {dense_units}, batch_size "
        f"{cfg.batch_size}) needs about {format_bytes(needed)} to train ({parameter_bytes // BYTES_PER_PARAMETER:,} "
        f"parameters x {BYTES_PER_PARAMETER} bytes for weight, gradient and Adam's moments, plus activations), "
        f"more than this machine's {format_bytes(available)} of memory",
    )


def format_bytes(size: float) -> str:
    """Formats a byte count for people: `512 MiB`, `1.2 GiB`, `220.4 TiB`."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    for unit in units:
        if size < 1024 or unit == units[-1]:
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit in units[:3] else f"{size:.1f} {unit}"


def _keys_outside_schema(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yields keys the schema does not define: Hydra's struct mode refuses them, except when added with `+`."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else set(node.keys())
    for key in node.keys():
        value = node[key]
        if key not in known:
            yield f"{prefix}{key}", value
        elif isinstance(value, DictConfig):
            yield from _keys_outside_schema(value, f"{prefix}{key}.")
