"""The gpu_memory key: its checks, the cap it computes, and what a job on this machine sees."""

import pytest
import tensorflow as tf

from alexnet_sweep import gpu


@pytest.mark.parametrize("setting", ["growth", 0.5, 1, 1.0, 0.01])
def test_growth_or_a_fraction_is_accepted(setting):
    assert gpu.check_setting(setting) is None


@pytest.mark.parametrize("setting", [0, 1.5, -0.5, True, "all", None])
def test_anything_else_is_refused(setting):
    assert gpu.check_setting(setting) == "must be growth or a fraction of the GPU's memory in (0, 1]"


def test_a_fraction_caps_the_job_at_that_share_of_the_gpu():
    assert gpu.memory_limit_mib(0.5, 143771) == 71885  # an H200 as nvidia-smi reports it, in MiB
    assert gpu.memory_limit_mib(0.25, 81559) == 20389


def test_tensorflow_gpu_index_maps_to_the_visible_device():
    assert gpu._nvidia_smi_id(0, "3,5") == "3"
    assert gpu._nvidia_smi_id(1, "3, 5") == "5"
    assert gpu._nvidia_smi_id(1, None) == "1"


def test_configure_reports_the_gpus_the_job_sees(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    seen = gpu.configure_gpus("growth")
    assert seen == f"{len(tf.config.list_physical_devices('GPU'))} (CUDA_VISIBLE_DEVICES=)"
