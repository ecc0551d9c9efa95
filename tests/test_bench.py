"""The training bench (`python -m alexnet_sweep.bench`): one tiny run of every variant, and its parts on their own.

The tests that read the bench's report train models (marked slow); the others build models or data but train none.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from alexnet_sweep import names, shapes
from alexnet_sweep.bench import measure
from alexnet_sweep.bench.cli import main, parse_args
from alexnet_sweep.bench.measure import images_in_steps, steady_rate
from alexnet_sweep.bench.recipes import Pipelines, recipes
from alexnet_sweep.bench.reference import reference_model, reference_preprocess
from alexnet_sweep.model import build_model

RATES = ("train_img_per_s", "pipeline_img_per_s", "first_step_s")


@pytest.fixture(scope="module")
def report(tfds_dir, tmp_path_factory):
    """One very small bench run through its command-line entry point (every variant, both sizes): it trains."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = ["--input-size", "67", "--steps", "3", "--warmup-steps", "1", "--size227-steps", "2", "--batch-size", "4"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(measure, "PIPELINE_SECONDS", 0.05)
        returned = main([*argv, "--data-dir", str(tfds_dir), "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned)), "the JSON file is the returned report"
    written["_markdown"] = out.with_suffix(".md").read_text()
    return written


def positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_report_has_every_section_and_variant(report):
    assert set(report) >= {"settings", "machine", "reference", "variants", "skipped", "startup", "mlflow", "wall_s"}
    auto = report["machine"]["precision_auto"]
    names = [variant["name"] for variant in report["variants"]]
    assert names[0] == f"ours auto ({auto})"
    measured = {variant["policy"] for variant in report["variants"]}
    skipped = {entry["precision"] for entry in report["skipped"]}
    assert measured | skipped == {"float32", "mixed_bfloat16", "mixed_float16"}
    assert report["reference"]["policy"] == "float32"
    for variant in report["variants"]:
        assert variant["policy"] == (auto if variant["precision"] == "auto" else variant["precision"])


@pytest.mark.slow
def test_every_number_is_measured_positive_and_finite(report):
    reference = report["reference"]
    assert report["settings"]["test_split"] == "test"
    test_examples = shapes.SPLIT_SIZES["test"]
    for entry in [reference, *report["variants"]]:
        for key in RATES:
            assert positive(entry[key]), (entry["name"], key)
            assert positive(entry[f"{key}_227"]), (entry["name"], f"{key}_227")
        for suffix in ("", "_227"):
            speedup = entry[f"train_img_per_s{suffix}"] / reference[f"train_img_per_s{suffix}"]
            assert entry[f"speedup{suffix}"] == pytest.approx(speedup), "throughput relative to the reference's"
        # Evaluated on the whole test split (a whole number of its images right), and only at the accuracy size.
        right = entry[names.TEST_ACCURACY] * test_examples
        assert abs(right - round(right)) < 1e-3, (entry["name"], entry[names.TEST_ACCURACY])
        assert f"{names.TEST_ACCURACY}_227" not in entry
    for key in ("store_create_s", "run_setup_s", "log_s_per_epoch", "epoch_s", "overhead_pct"):
        assert positive(report["mlflow"][key]), key
    overhead = report["mlflow"]
    assert overhead["overhead_pct"] == pytest.approx(100 * overhead["log_s_per_epoch"] / overhead["epoch_s"])
    assert positive(report["startup"]["process_start_to_first_step_s"])


@pytest.mark.slow
def test_host_to_device_bytes_per_image(report):
    reference = report["reference"]
    assert reference["bytes_per_image"] == 67 * 67 * 3 * 4, "float32 images resized on the host"
    assert reference["bytes_per_image_227"] == 227 * 227 * 3 * 4
    for variant in report["variants"]:
        assert variant["bytes_per_image"] == variant["bytes_per_image_227"] == 32 * 32 * 3, "uint8 as stored"


@pytest.mark.slow
def test_markdown_table_has_a_row_per_variant(report):
    table = report["_markdown"]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| variant | policy | XLA | train img/s | speedup |")
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]] == [
        "reference",
        *(variant["name"] for variant in report["variants"]),
    ]
    assert report["machine"]["cpu"] in table and "MLflow per epoch" in table


def test_reference_preprocessing_equals_our_device_side_layers():
    keras.mixed_precision.set_global_policy("float32")
    ours = build_model(
        name="alexnet8",
        input_size=99,
        dense_units=[8],
        dropout=0.5,
        bn_momentum=0.99,
        image_shape=(32, 32, 3),
        num_classes=10,
    )
    images = np.random.default_rng(2).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    preprocess = reference_preprocess(99, 10)
    reference = [preprocess(tf.constant(image), tf.constant(3, tf.int64)) for image in images]
    assert all(
        image.dtype == tf.float32 and label.numpy().tolist() == [0] * 3 + [1] + [0] * 6 for image, label in reference
    )
    on_device = ours.get_layer("resize")(ours.get_layer("scale")(images)).numpy()
    np.testing.assert_allclose(on_device, np.stack([image.numpy() for image, _ in reference]), atol=1e-6)


def test_reference_model_is_our_architecture_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # the reference sets float32 itself
    cfg = {"model": {"bn_momentum": 0.99, "dropout": 0.5}, "optimizer": {"lr": 1e-4}}
    pipelines = Pipelines(None, None, 1, num_classes=10, image_shape=(227, 227, 3))
    reference = reference_model(OmegaConf.create(cfg), pipelines)
    assert reference.count_params() == 58_324_746, "the reference AlexNet's parameter count"
    assert reference.get_layer(index=0).padding == "valid"
    assert {layer.compute_dtype for layer in reference.layers} == {"float32"}


def test_images_in_steps_counts_the_short_last_batch_of_each_epoch():
    # 10 examples in batches of 4: epochs are 4, 4, 2
    assert images_in_steps(0, 3, examples=10, batch_size=4) == 10
    assert images_in_steps(1, 7, examples=10, batch_size=4) == 4 + 2 + 4 + 4 + 2 + 4
    # step k ends at times[k]; leaving out steps 0 and 1, steps 2 and 3 (2 + 4 images) take 7 - 5 seconds
    assert steady_rate([0.0, 5.0, 6.0, 7.0], 2, examples=10, batch_size=4) == pytest.approx(6 / 2)
    with pytest.raises(ValueError):
        steady_rate([0.0, 1.0], 2, examples=10, batch_size=4)


@pytest.mark.parametrize(
    ("auto", "has_gpu", "measured", "skipped"),
    [
        ("float32", False, ["auto", "mixed_bfloat16"], {"float32", "mixed_float16"}),
        ("mixed_bfloat16", False, ["auto", "float32"], {"mixed_bfloat16", "mixed_float16"}),
        ("mixed_bfloat16", True, ["auto", "float32", "mixed_float16"], {"mixed_bfloat16"}),
        ("mixed_float16", True, ["auto", "float32", "mixed_bfloat16"], {"mixed_float16"}),
    ],
)
def test_each_precision_is_measured_once_and_float16_only_with_a_gpu(auto, has_gpu, measured, skipped):
    ours, skips = recipes(auto, has_gpu)
    assert [recipe.precision for recipe in ours] == measured
    assert {entry["precision"] for entry in skips} == skipped


@pytest.mark.parametrize(
    "argv", [["--steps", "2"], ["--size227-steps", "1", "--warmup-steps", "1"], ["--warmup-steps", "0"]]
)
def test_too_few_steps_is_a_usage_error(argv):
    with pytest.raises(SystemExit):
        parse_args(argv)
