"""The offline `digits` dataset (scikit-learn's 8x8 digits as a TFDS builder) and its classical baseline.

Nothing here trains a network: the builder, the splits, the job's data path and model input, the baseline.
"""

import hashlib
import io

import numpy as np
import pytest
import tensorflow_datasets as tfds

from alexnet_sweep import digits, plots
from alexnet_sweep.bench import digits_baseline
from alexnet_sweep.config import validate
from alexnet_sweep.data import load_splits
from alexnet_sweep.model import build_model

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """A TFDS data_dir with `digits` prepared once for this module (through the real builder, offline)."""
    data_dir = tmp_path_factory.mktemp("tfds_digits")
    tfds.builder("digits", data_dir=str(data_dir)).download_and_prepare()
    return data_dir


@pytest.fixture(scope="module")
def stored(digits_dir):
    """Per split: the uint8 images and labels as TFDS returns them."""
    arrays = {}
    for split in SPLITS:
        ds = tfds.load("digits", split=split, data_dir=str(digits_dir), as_supervised=True, batch_size=-1)
        images, labels = tfds.as_numpy(ds)
        arrays[split] = (images, labels)
    return arrays


def digests(images):
    return {hashlib.sha1(image.tobytes()).hexdigest() for image in images}


def test_builder_prepares_offline_with_the_documented_splits(digits_dir):
    builder = tfds.builder("digits", data_dir=str(digits_dir))
    assert builder.is_prepared()
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == digits.SPLIT_SIZES
    assert digits.SPLIT_SIZES == {"train": 1077, "validation": 360, "test": 360}
    assert sum(digits.SPLIT_SIZES.values()) == 1797
    assert builder.info.features["image"].shape == (8, 8, 1)
    assert builder.info.features["label"].names == [str(d) for d in range(10)]
    assert builder.info.supervised_keys == ("image", "label")


def test_splits_are_disjoint_stratified_and_fixed(stored):
    hashes = {split: digests(stored[split][0]) for split in SPLITS}
    assert {split: len(h) for split, h in hashes.items()} == digits.SPLIT_SIZES  # no image twice within a split
    assert len(hashes["train"] | hashes["validation"] | hashes["test"]) == 1797  # nor across splits
    _, all_labels = digits.load_images()
    whole = np.bincount(all_labels, minlength=10) / len(all_labels)
    for split in SPLITS:
        counts = np.bincount(stored[split][1], minlength=10)
        assert counts.min() > 0, f"{split} lacks a class"
        # Stratified: each class's count is its share of the whole set, up to rounding.
        assert np.all(np.abs(counts - whole * len(stored[split][1])) <= 1), (split, counts.tolist())
    # The cut is deterministic: computed again, the same indices.
    first, again = digits.split_indices(all_labels), digits.split_indices(all_labels)
    assert all(np.array_equal(first[split], again[split]) for split in SPLITS)
    assert sorted(np.concatenate(list(first.values())).tolist()) == list(range(1797))


def test_images_are_scikit_learns_digits_scaled_to_uint8(stored):
    images, labels = digits.load_images()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    indices = digits.split_indices(labels)
    for split in SPLITS:
        split_images, split_labels = stored[split]
        assert split_images.dtype == np.uint8 and split_images.shape[1:] == (8, 8, 1)
        # The very images and labels of load_digits() at the split's indices (TFDS stores them in its own order).
        expected = {hashlib.sha1(images[i].tobytes()).hexdigest(): labels[i] for i in indices[split]}
        got = {hashlib.sha1(image.tobytes()).hexdigest(): label for image, label in zip(*stored[split], strict=True)}
        assert got == expected
        # Real strokes, not constant or noise: dark background, bright centre columns, every image has ink.
        assert 0.15 < split_images.mean() / 255 < 0.45
        assert (split_images.reshape(len(split_images), -1).max(axis=1) >= 200).all()
        assert split_images[:, :, 0].mean() < split_images[:, :, 3:5].mean()


def test_load_splits_through_the_dataset_config(make_cfg, digits_dir):
    cfg = make_cfg("dataset=digits", f"dataset.data_dir={digits_dir}", "model.input_size=67")
    validate(cfg)
    assert (cfg.dataset.train_split, cfg.dataset.val_split, cfg.dataset.test_split) == SPLITS
    assert cfg.dataset.shuffle_buffer == digits.SPLIT_SIZES["train"]
    splits = load_splits(cfg.dataset, batch_size=32, seed=1, image_size=cfg.model.input_size)
    assert splits.sizes == {"train_split": 1077, "val_split": 360, "test_split": 360}
    assert splits.steps_per_epoch == 34
    assert splits.image_shape == (8, 8, 1)
    assert splits.class_names == list(digits.CLASS_NAMES)
    images, labels = next(iter(splits.train))
    assert images.shape == (32, 8, 8, 1) and images.dtype.name == "uint8"
    assert labels.dtype.name == "int64"
    # The model takes the 1-channel images as they come and resizes them itself (no training here).
    model = build_model(
        name="alexnet8",
        input_size=67,
        dense_units=[16, 16],
        dropout=0.5,
        bn_momentum=0.9,
        image_shape=splits.image_shape,
        num_classes=len(splits.class_names),
    )
    assert model.get_layer("resize").output.shape[1:] == (67, 67, 1)
    assert model(images, training=False).shape == (32, 10)


def test_predictions_figure_draws_grayscale_images(stored):
    images, labels = stored["test"]
    wrong = (labels[:8] + 1) % 10
    figure = plots.predictions_figure(images[:8], labels[:8], wrong, digits.CLASS_NAMES, columns=4)
    figure.savefig(io.BytesIO(), format="png")
    [ax] = figure.axes  # one sheet of tiles, not a subplot per image
    assert ax.images[0].get_array().shape == (2 * (8 + 4), 4 * (8 + 1)), "2 rows x 4 columns of 8x8 tiles, gray"
    assert [text.get_text() for text in ax.texts][:1] == [f"pred: {wrong[0]}\ntrue: {labels[0]}"]
    assert {text.get_color() for text in ax.texts} == {"red"}


def test_baseline_scores_the_documented_accuracy(make_cfg, digits_dir, capsys):
    dataset = make_cfg("dataset=digits", f"dataset.data_dir={digits_dir}").dataset
    rows = digits_baseline.run_baseline(dataset=dataset)
    by_model = {row["model"]: row for row in rows}
    assert list(by_model) == ["SVC (RBF)", "LogisticRegression"]
    svc = by_model["SVC (RBF)"]
    assert svc["val_accuracy"] >= 0.9 and svc["test_accuracy"] >= 0.9
    assert svc["C"] in digits_baseline.SVC_C
    assert by_model["LogisticRegression"]["test_accuracy"] >= 0.9
    assert all(row["fit_s"] > 0 for row in rows)
    # The command line: the same numbers as a Markdown table, and nothing else on stdout.
    printed = digits_baseline.main(["--data-dir", str(digits_dir)])
    without_time = lambda rows: [{k: v for k, v in row.items() if k != "fit_s"} for row in rows]  # noqa: E731
    assert without_time(printed) == without_time(rows)  # deterministic
    out = capsys.readouterr().out
    assert out == digits_baseline.markdown(printed) + "\n"
    assert out.startswith("| model |") and "| SVC (RBF) |" in out
