"""The gpu_memory key: its checks, the cap it computes, and what configure_gpus does to each GPU TensorFlow lists.

No GPU is needed: TensorFlow's device list and its two configuration calls are replaced by recorders, so the
expected calls and the `gpus` tag are known numbers, not what the same TensorFlow call returns.
"""

import pytest
import tensorflow as tf

from alexnet_sweep import gpu

H200_MIB, A100_MIB = 143771, 81559  # memory.total as nvidia-smi reports it
TWO_GPUS = [tf.config.PhysicalDevice(f"/physical_device:GPU:{index}", "GPU") for index in (0, 1)]


@pytest.mark.parametrize("setting", ["growth", 0.5, 1, 1.0, 0.01])
def test_growth_or_a_fraction_is_accepted(setting):
    assert gpu.check_setting(setting) is None


@pytest.mark.parametrize("setting", [0, 1.5, -0.5, True, "all", None])
def test_anything_else_is_refused(setting):
    assert gpu.check_setting(setting) == "must be growth or a fraction of the GPU's memory in (0, 1]"


def test_a_fraction_caps_the_job_at_that_share_of_the_gpu():
    assert gpu.memory_limit_mib(0.5, H200_MIB) == 71885
    assert gpu.memory_limit_mib(0.25, A100_MIB) == 20389
    assert gpu.memory_limit_mib(1e-9, A100_MIB) == 1, "never a cap of 0 MiB"


def test_tensorflow_gpu_index_maps_to_the_visible_device():
    assert gpu._nvidia_smi_id(0, "3,5") == "3"
    assert gpu._nvidia_smi_id(1, "3, 5") == "5"
    assert gpu._nvidia_smi_id(1, None) == "1"


@pytest.fixture
def recorded(monkeypatch):
    """TensorFlow lists two GPUs, which nvidia-smi knows as 3 (an H200) and 5 (an A100); calls are recorded."""
    calls = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: TWO_GPUS if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda device, on: calls.append((device, on)))
    monkeypatch.setattr(
        tf.config, "set_logical_device_configuration", lambda device, configs: calls.append((device, configs))
    )
    monkeypatch.setattr(gpu, "_total_memory_mib", {"3": H200_MIB, "5": A100_MIB}.__getitem__)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    return calls


def test_growth_is_switched_on_for_every_gpu(recorded):
    assert gpu.configure_gpus("growth") == "2 (CUDA_VISIBLE_DEVICES=3,5)"
    assert recorded == [(TWO_GPUS[0], True), (TWO_GPUS[1], True)]


def test_a_fraction_caps_each_gpu_by_its_own_memory(recorded):
    assert gpu.configure_gpus(0.5) == "2 (CUDA_VISIBLE_DEVICES=3,5)"
    limits = [(device, [config.memory_limit for config in configs]) for device, configs in recorded]
    assert limits == [(TWO_GPUS[0], [71885]), (TWO_GPUS[1], [40779])]


def test_a_gpu_configured_by_an_earlier_job_of_the_process_is_left_as_it_is(monkeypatch, recorded):
    def already_initialized(device, on):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", already_initialized)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu.configure_gpus("growth") == "2", "no CUDA_VISIBLE_DEVICES: nothing to add to the count"


def test_a_machine_without_gpus_reports_zero_and_configures_nothing(monkeypatch, recorded):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu.configure_gpus(0.5) == "0 (CUDA_VISIBLE_DEVICES=)"
    assert recorded == []
