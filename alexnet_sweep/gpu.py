"""The `gpu_memory` key: how much GPU memory each job's TensorFlow takes, so jobs packed onto one GPU can share it.

TensorFlow maps nearly all of a GPU's memory at start-up; a second job on that GPU (Ray `num_gpus: 0.5`, or two
joblib workers) would then fail for lack of memory. `growth` takes memory as the job needs it; a fraction in
(0, 1] caps the job at that share of the GPU. TensorFlow is imported only when a job configures its GPUs.
"""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any

log = logging.getLogger(__name__)

GROWTH = "growth"


def check_setting(setting: Any) -> str | None:
    """Returns what is wrong with a `gpu_memory` value, or None if it is `growth` or a fraction in (0, 1]."""
    if setting == GROWTH:
        return None
    if isinstance(setting, (int, float)) and not isinstance(setting, bool) and 0 < setting <= 1:
        return None
    return "must be growth or a fraction of the GPU's memory in (0, 1]"


def memory_limit_mib(fraction: float, total_mib: int) -> int:
    """The memory cap, in MiB, of a job allowed `fraction` of a GPU with `total_mib`."""
    return max(1, int(fraction * total_mib))


def configure_gpus(setting: Any) -> str:
    """Applies `gpu_memory` to every GPU TensorFlow sees; call it before the job's first TensorFlow op.

    Args:
        setting: `growth` or a fraction in (0, 1] (see `check_setting`).

    Returns:
        What the job sees, for the run's `gpus` tag: e.g. `1 (CUDA_VISIBLE_DEVICES=3)` or `0`.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    for index, gpu in enumerate(gpus):
        try:
            if setting == GROWTH:
                tf.config.experimental.set_memory_growth(gpu, True)
            else:
                limit = memory_limit_mib(float(setting), _total_memory_mib(_nvidia_smi_id(index, visible)))
                tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(limit)])
        except RuntimeError:  # initialized by an earlier job of this process, which configured it the same way
            log.debug("GPU %s already initialized", gpu.name)
    return f"{len(gpus)}" + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")


def _nvidia_smi_id(index: int, visible: str | None) -> str:
    """The id nvidia-smi knows TensorFlow's GPU `index` by: the index-th entry of CUDA_VISIBLE_DEVICES, if set."""
    if visible:
        return visible.split(",")[index].strip()
    return str(index)


def _total_memory_mib(device: str) -> int:
    output = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", device],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return int(output.split()[0])
