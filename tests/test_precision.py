"""The `precision` key: what auto picks on which hardware, the Keras policy it sets, what a job records."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_sweep import precision, train
from alexnet_sweep.config import validate
from alexnet_sweep.model import build_model, compiled_model
from alexnet_sweep.precision import apply_precision, cpu_flags, parse_cpu_flags, resolve_precision
from tests.conftest import all_runs

PLAIN_CPU = {"fpu", "sse4_2", "avx2", "avx512f"}


@pytest.mark.parametrize(
    ("flags", "gpus", "expected"),
    [
        (PLAIN_CPU, [], "float32"),
        (PLAIN_CPU | {"avx512_bf16"}, [], "mixed_bfloat16"),
        (PLAIN_CPU | {"amx_bf16", "amx_tile"}, [], "mixed_bfloat16"),
        (set(), [(9, 0)], "mixed_bfloat16"),
        (set(), [(8, 0)], "mixed_bfloat16"),
        (set(), [(7, 5)], "mixed_float16"),
        (set(), [(7, 0)], "mixed_float16"),
        (set(), [(6, 1)], "float32"),
        (PLAIN_CPU | {"avx512_bf16"}, [(6, 1)], "float32"),  # the GPU trains, so the GPU decides
        (PLAIN_CPU | {"avx512_bf16"}, [(7, 5)], "mixed_float16"),
        (set(), [(9, 0), (7, 5)], "mixed_float16"),  # one global policy: the weakest GPU decides
        (set(), [(0, 0)], "float32"),  # a GPU that reports no compute capability
    ],
)
def test_auto_picks_what_the_hardware_computes_fast(flags, gpus, expected):
    assert resolve_precision("auto", flags, gpus) == expected


@pytest.mark.parametrize("setting", ["float32", "mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize(("flags", "gpus"), [(PLAIN_CPU, []), ({"amx_bf16"}, []), (set(), [(9, 0)]), (set(), [(6, 1)])])
def test_an_explicit_setting_is_kept_on_any_hardware(setting, flags, gpus):
    assert resolve_precision(setting, flags, gpus) == setting


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match=r"^precision='fp8': must be one of auto \| float32 \|"):
        resolve_precision("fp8", PLAIN_CPU, [])


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n\nprocessor\t: 1\n"
    assert parse_cpu_flags(cpuinfo) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}
    assert parse_cpu_flags("Features\t: fp asimd bf16\n") == {"fp", "asimd", "bf16"}  # ARM spelling
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert "avx512_bf16" in cpu_flags(str(tmp_path / "cpuinfo"))
    assert cpu_flags(str(tmp_path / "missing")) == frozenset(), "no /proc (macOS, Windows): no flags, float32"


def test_apply_sets_the_global_policy_and_resets_it_for_float32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    assert apply_precision("auto") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert apply_precision("float32") == "float32", "the next job of a multirun gets float32 back"
    assert keras.mixed_precision.global_policy().name == "float32"


def tiny_model():
    return build_model(
        name="alexnet8",
        input_size=67,
        dense_units=[8],
        dropout=0.5,
        bn_momentum=0.9,
        image_shape=(32, 32, 3),
        num_classes=10,
    )


@pytest.mark.parametrize(("policy", "compute"), [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_a_mixed_policy_computes_in_half_precision_with_float32_weights_and_output(policy, compute):
    keras.mixed_precision.set_global_policy(policy)
    model = tiny_model()
    for name in ("conv1", "conv5", "dense1"):
        layer = model.get_layer(name)
        assert (layer.compute_dtype, layer.variable_dtype) == (compute, "float32"), name
    assert model.get_layer("predictions").compute_dtype == "float32"
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    probabilities = model(images, training=False)
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_float16_training_gets_a_loss_scale_optimizer_from_compile():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer), "bfloat16 needs no loss scaling"


CPU = tf.config.PhysicalDevice("/physical_device:CPU:0", "CPU")
GPU = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")


@pytest.mark.parametrize(
    ("override", "devices", "xla"),
    [
        ("jit_compile=auto", [CPU], False),  # XLA is slower than plain TensorFlow on a CPU (FACTS: 18 vs 27 img/s)
        ("jit_compile=auto", [CPU, GPU], True),
        ("jit_compile=true", [CPU], True),
        ("jit_compile=false", [CPU, GPU], False),
    ],
)
def test_jit_compile_auto_means_xla_only_where_a_gpu_is_listed(make_cfg, monkeypatch, override, devices, xla):
    # Keras resolves "auto" from TensorFlow's device list when the model compiles: a fake list, known answers.
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [d for d in devices if kind in (None, d.device_type)]
    )
    cfg = make_cfg("experiment=smoke", "precision=float32", "model.dense_units=[8]", override)
    model = compiled_model(cfg, keras.optimizers.Adam(), image_shape=(32, 32, 3), num_classes=10)
    assert model.jit_compile is xla


@pytest.mark.parametrize("override", ["precision=float32", "precision=mixed_float16", "jit_compile=true"])
def test_explicit_values_validate(make_cfg, override):
    validate(make_cfg(override))


def test_a_job_records_the_policy_auto_chose_and_builds_its_model_under_it(
    make_cfg, tiny_overrides, store, monkeypatch
):
    # A CPU with AMX: auto picks mixed_bfloat16. fit is replaced, so nothing trains: the model handed to it and the
    # params the run recorded before it are what is checked.
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    policies = []

    def fit(model, *args, **kwargs):
        policies.append((model.dtype_policy.name, model.get_layer("conv1").compute_dtype))
        raise RuntimeError("stop before training")

    monkeypatch.setattr(keras.Model, "fit", fit)
    with pytest.raises(RuntimeError, match="stop before training"):
        train.run(make_cfg(*tiny_overrides, "precision=auto"))
    assert policies == [("mixed_bfloat16", "bfloat16")]
    [run] = all_runs(store)
    assert (run.data.params["precision"], run.data.params["precision.policy"]) == ("auto", "mixed_bfloat16")
