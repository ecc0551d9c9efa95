"""What the bench's numbers were measured on: CPU, GPUs, versions, and how long the process has existed."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from alexnet_sweep.precision import cpu_flags, gpu_capabilities, resolve_precision

_IMPORTED_AT = time.perf_counter()  # where /proc is missing, the bench's clock starts here


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
    """Describes what the numbers were measured on.

    Returns:
        `cpu`, `cpu_cores`, `cpu_cores_usable`, `cpu_bf16` (the CPU's bfloat16 flags), `gpus` (name and compute
        capability of each), `precision_auto` (what `precision=auto` resolves to here), and the versions of
        Python, TensorFlow and Keras, and the platform.
    """
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
