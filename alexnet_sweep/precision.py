"""The `precision` key: pick the Keras dtype policy the hardware computes fastest, and apply it.

The choice itself (`resolve_precision`) is a pure function of the setting, the CPU's flags and the GPUs' compute
capabilities, so every branch is testable without the hardware. TensorFlow is imported only by the functions that
read this machine or set the policy: `config.py` imports this module to check values before TensorFlow loads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
SETTINGS = ("auto", *POLICIES)
# CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic: AVX512_BF16 and Intel AMX.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
BF16_MIN_GPU = (8, 0)  # Ampere and newer: bfloat16 tensor cores
FP16_MIN_GPU = (7, 0)  # Volta and Turing: float16 tensor cores


def resolve_precision(setting: str, cpu_flags: Iterable[str], gpu_capabilities: Iterable[tuple[int, int]]) -> str:
    """Returns the Keras dtype policy name for a `precision` setting on the given hardware.

    An explicit setting is returned as is. `auto` decides by the device that trains: with GPUs, the weakest GPU's
    compute capability (bfloat16 from 8.0, float16 from 7.0, else float32); without, bfloat16 if the CPU computes
    it natively (AVX512_BF16 or AMX), else float32.

    Args:
        setting: `auto` or one of `POLICIES`.
        cpu_flags: The CPU's feature flags, e.g. `{"avx512f", "avx512_bf16"}`.
        gpu_capabilities: (major, minor) compute capability of each GPU; empty on a CPU-only machine.

    Returns:
        One of `POLICIES`.

    Raises:
        ValueError: If `setting` is not one of `SETTINGS`.
    """
    if setting not in SETTINGS:
        raise ValueError(f"precision={setting!r}: must be one of {' | '.join(SETTINGS)}")
    if setting != "auto":
        return setting
    capabilities = list(gpu_capabilities)
    if capabilities:
        weakest = min(capabilities)  # the policy is global: every GPU has to compute it
        if weakest >= BF16_MIN_GPU:
            return "mixed_bfloat16"
        return "mixed_float16" if weakest >= FP16_MIN_GPU else "float32"
    return "mixed_bfloat16" if BF16_CPU_FLAGS & set(cpu_flags) else "float32"


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """Returns the feature flags of the first CPU listed in the text of /proc/cpuinfo (empty if none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 | ARM
            return frozenset(value.split())
    return frozenset()


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> frozenset[str]:
    """Returns this machine's CPU feature flags; empty where /proc/cpuinfo does not exist (macOS, Windows)."""
    try:
        return parse_cpu_flags(Path(cpuinfo_path).read_text())
    except OSError:
        return frozenset()


def gpu_capabilities() -> list[tuple[int, int]]:
    """Returns the compute capability of each GPU TensorFlow sees; (0, 0) for a GPU that reports none."""
    import tensorflow as tf

    return [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def apply_precision(setting: str) -> str:
    """Resolves `setting` on this machine and makes it the Keras global dtype policy.

    The policy is set every time, also to `float32`: Hydra's default launcher runs many jobs in one process.

    Args:
        setting: The `precision` config value.

    Returns:
        The policy name now in force, e.g. `mixed_bfloat16`.
    """
    import keras

    policy = resolve_precision(setting, cpu_flags(), gpu_capabilities())
    keras.mixed_precision.set_global_policy(policy)
    log.info("Precision %s: Keras dtype policy %s", setting, policy)
    return policy
