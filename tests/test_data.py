import hashlib

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from omegaconf import OmegaConf

from alexnet_sweep import data, preparing, shapes
from alexnet_sweep.data import load_splits
from alexnet_sweep.errors import UserInputError

# A user's own dataset: a TFDS builder in a module outside the package, registered when data.py imports it.
USER_BUILDER = """
import numpy as np
import tensorflow_datasets as tfds


class {class_name}(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {{"image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.ClassLabel(names=["a", "b"])}}
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {{"train": self._generate_examples(0, 24), "test": self._generate_examples(1, 8)}}

    def _generate_examples(self, seed, count):
        rng = np.random.default_rng(seed)
        for index in range(count):
            yield index, {{"image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "label": index % 2}}
"""


def dataset_cfg(name="shapes", data_dir=None, **overrides):
    cfg = {
        "name": name,
        "builder_module": "alexnet_sweep.shapes" if name == "shapes" else None,
        "train_split": "train[:80%]",
        "val_split": "train[80%:]",
        "test_split": "test",
        "data_dir": str(data_dir) if data_dir else None,
        "download": True,
        "cache": True,
        "shuffle_buffer": 1000,
    }
    return OmegaConf.create({**cfg, **overrides})


def digests(ds):
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image, _ in ds]


def test_shape_drawing_is_deterministic_and_class_dependent():
    first = [shapes.draw_shape(label, np.random.default_rng(7)) for label in range(10)]
    again = [shapes.draw_shape(label, np.random.default_rng(7)) for label in range(10)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    # Same random draws, different class: the drawn shape is what differs.
    assert len({image.tobytes() for image in first}) == 10


def test_shapes_builds_offline_like_cifar10(tfds_dir):
    builder = tfds.builder("shapes", data_dir=str(tfds_dir))
    assert builder.is_prepared()
    cifar_features = tfds.builder("cifar10").info.features
    assert builder.info.features["image"].shape == cifar_features["image"].shape
    assert builder.info.features["label"].num_classes == cifar_features["label"].num_classes
    assert set(builder.info.splits) == {"train", "test"}
    labels = [int(y) for _, y in tfds.load("shapes", split="train", data_dir=str(tfds_dir), as_supervised=True)]
    assert np.bincount(labels).tolist() == [200] * 10


def test_shapes_split_slicing_is_exact_and_disjoint(tfds_dir):
    load = lambda split: tfds.load("shapes", split=split, data_dir=str(tfds_dir), as_supervised=True)  # noqa: E731
    train, val, whole = digests(load("train[:80%]")), digests(load("train[80%:]")), digests(load("train"))
    assert (len(train), len(val)) == (1600, 400)
    assert not set(train) & set(val)
    assert train + val == whole


def test_shapes_pipeline_batches_uint8_and_shuffles_by_seed(tfds_dir):
    cfg = dataset_cfg(data_dir=tfds_dir)
    splits = load_splits(cfg, batch_size=64, seed=1, image_size=67)
    assert splits.sizes == {"train_split": 1600, "val_split": 400, "test_split": 500}
    assert splits.image_shape == (32, 32, 3)
    assert splits.class_names == list(shapes.CLASS_NAMES)
    images, labels = next(iter(splits.train))
    assert images.shape == (64, 32, 32, 3) and images.dtype.name == "uint8"
    assert labels.dtype.name == "int64"
    assert sum(1 for _ in splits.val) == 7  # 400 / 64, last batch partial

    def first_batch(seed):
        return next(iter(load_splits(cfg, batch_size=64, seed=seed, image_size=67).train))[1].numpy()

    assert np.array_equal(first_batch(1), first_batch(1))
    assert not np.array_equal(first_batch(1), first_batch(2))
    assert splits.steps_per_epoch == 25


def test_the_order_of_an_epoch_depends_only_on_seed_and_epoch(tfds_dir):
    splits = load_splits(dataset_cfg(data_dir=tfds_dir), batch_size=64, seed=1, image_size=67)

    def labels(first, last):
        return np.concatenate([y.numpy() for _, y in splits.train_epochs(first, last)])

    whole = labels(0, 3).reshape(3, -1)
    assert not np.array_equal(whole[0], whole[1]), "reshuffled every epoch"
    assert sorted(whole[0]) == sorted(whole[1])
    assert np.array_equal(labels(2, 3), whole[2]), "epoch 2 on its own is epoch 2 of an uninterrupted run"
    assert np.array_equal(labels(1, 3).reshape(2, -1), whole[1:])
    assert np.array_equal(labels(0, 3).reshape(3, -1), whole), "iterating again repeats the same orders"


def test_seed_0_gives_a_training_stream_too(tfds_dir):
    keras.utils.set_random_seed(0)  # what train.run does first: TensorFlow's global seed 0 made tracing fail
    splits = load_splits(dataset_cfg(data_dir=tfds_dir), batch_size=64, seed=0, image_size=67)
    labels = np.concatenate([y.numpy() for _, y in splits.train_epochs(0, 2)]).reshape(2, -1)
    assert sorted(labels[0]) == sorted(labels[1]) and not np.array_equal(labels[0], labels[1])
    again = np.concatenate([y.numpy() for _, y in splits.train_epochs(1, 2)])
    assert np.array_equal(again, labels[1]), "epoch 1 on its own is epoch 1 of an uninterrupted run"
    assert list(splits.train_epochs(3, 3)) == [], "no epoch left: an empty stream"


def test_cifar10_pipeline_on_mock_data():
    with tfds.testing.mock_data(num_examples=20):
        splits = load_splits(dataset_cfg("cifar10"), batch_size=8, seed=0, image_size=227)
        images, labels = next(iter(splits.train))
    assert splits.image_shape == (32, 32, 3)  # kept at 32x32: the model resizes on the device
    assert len(splits.class_names) == 10
    assert images.shape == (8, 32, 32, 3) and images.dtype.name == "uint8"
    assert splits.sizes == {"train_split": 20, "val_split": 20, "test_split": 20}


def test_imagenette_variable_sizes_are_resized_once_on_mock_data():
    cfg = dataset_cfg("imagenette/320px-v2", train_split="train", val_split="validation[:50%]",
                      test_split="validation[50%:]")  # fmt: skip
    with tfds.testing.mock_data(num_examples=12):
        splits = load_splits(cfg, batch_size=4, seed=0, image_size=67)
        batches = [images for images, _ in splits.test]
    assert splits.image_shape == (67, 67, 3)
    assert [tuple(b.shape) for b in batches] == [(4, 67, 67, 3)] * 3
    assert batches[0].dtype.name == "uint8"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train_split", "train[:abc]", "dataset.train_split='train[:abc]': TFDS rejects this split"),
        ("val_split", "validation", "dataset.val_split='validation': TFDS rejects this split"),
        ("test_split", "tset[:10]", "dataset.test_split='tset[:10]': TFDS rejects this split: Unknown split"),
    ],
)
def test_bad_split_is_a_one_line_error(tfds_dir, key, value, message):
    with pytest.raises(UserInputError) as caught:
        load_splits(dataset_cfg(data_dir=tfds_dir, **{key: value}), batch_size=8, seed=0, image_size=67)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # TFDS accepts a reversed slice and counts -1600 examples; training then failed inside TensorFlow.
        ("train_split", "train[90%:10%]", "selects no example of shapes's train split (2,000 examples)"),
        ("train_split", "train[5:3]", "selects no example of shapes's train split (2,000 examples)"),
        ("val_split", "train[2000:]", "selects no example of shapes's train split (2,000 examples)"),
        ("test_split", "test[:0]", "selects no example of shapes's test split (500 examples)"),
        ("test_split", "test[:0%]", "selects no example of shapes's test split (500 examples)"),
        ("train_split", "train[:10]+test[90%:10%]",
         "test[90%:10%] selects no example of shapes's test split (500 examples)"),
    ],
)  # fmt: skip
def test_a_split_that_selects_no_example_is_one_line_naming_key_and_value(tfds_dir, key, value, message):
    with pytest.raises(UserInputError) as caught:
        load_splits(dataset_cfg(data_dir=tfds_dir, **{key: value}), batch_size=8, seed=0, image_size=67)
    assert str(caught.value) == f"dataset.{key}={value!r}: {message}"


def test_the_empty_split_check_reads_metadata_and_passes_what_selects_something(tfds_dir):
    splits = tfds.builder("shapes", data_dir=str(tfds_dir)).info.splits
    for split in ("train", "train[:1]", "train[-32:]", "train[:80%]+test", "test[99%:]", "unknown", "train[:x]"):
        data.check_selects_examples("dataset.train_split", split, "shapes", splits)  # nothing to say
    with pytest.raises(UserInputError, match=r"^dataset\.val_split='train\[50%:50%\]': selects no example"):
        data.check_selects_examples("dataset.val_split", "train[50%:50%]", "shapes", splits)


def test_unknown_dataset_name_is_a_one_line_error():
    with pytest.raises(UserInputError, match=r"^dataset.name='cifar11': not a TFDS dataset") as caught:
        load_splits(dataset_cfg("cifar11"), batch_size=8, seed=0, image_size=67)
    assert "\n" not in str(caught.value)


def test_unprepared_dataset_without_download_says_how_to_fix(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")  # TFDS would retry an unreachable host for minutes

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    monkeypatch.setattr(preparing, "unreachable_hosts", no_download)
    with pytest.raises(UserInputError) as caught:
        load_splits(dataset_cfg("cifar10", data_dir=tmp_path, download=False), batch_size=8, seed=0, image_size=67)
    message = str(caught.value)
    assert message.startswith(f"dataset.name='cifar10' is not prepared in {tmp_path}")
    for fix in ("download_and_prepare()", "dataset.data_dir=", "downloads/manual", "dataset=shapes"):
        assert fix in message
    assert "\n" not in message


def test_unreachable_download_host_fails_in_seconds(tmp_path, monkeypatch):
    probed = []

    def unreachable(urls):
        probed.extend(urls)
        return ["www.cs.toronto.edu"]

    monkeypatch.setattr(preparing, "unreachable_hosts", unreachable)
    with pytest.raises(UserInputError, match=r"cannot be downloaded \(www.cs.toronto.edu unreachable\)"):
        load_splits(dataset_cfg("cifar10", data_dir=tmp_path), batch_size=8, seed=0, image_size=67)
    assert probed == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    assert not (tmp_path / "downloads").exists(), "nothing was downloaded"


def test_the_builder_module_is_imported_before_tfds_is_asked(tmp_path, monkeypatch):
    (tmp_path / "user_datasets_for_test_data").mkdir()
    (tmp_path / "user_datasets_for_test_data" / "__init__.py").write_text(USER_BUILDER.format(class_name="UserPairs"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "user_pairs" not in tfds.list_builders(with_community_datasets=False), "registered only once imported"
    cfg = dataset_cfg("user_pairs", data_dir=tmp_path / "tfds", builder_module="user_datasets_for_test_data")
    splits = load_splits(cfg, batch_size=8, seed=0, image_size=67)
    assert splits.sizes == {"train_split": 19, "val_split": 5, "test_split": 8}
    assert (splits.class_names, splits.image_shape) == (["a", "b"], (8, 8, 3))


@pytest.mark.parametrize(
    ("source", "module", "message"),
    [
        (None, "no_such_datasets_module",
         "dataset.builder_module='no_such_datasets_module': no such module; put the folder that holds it on "
         "PYTHONPATH or install its package"),
        ("import no_such_dependency\n", "needs_a_missing_dependency",
         "dataset.builder_module='needs_a_missing_dependency': importing it failed: ModuleNotFoundError: No module "
         "named 'no_such_dependency'"),
        ("raise RuntimeError('bad builder\\nsecond line')\n", "raises_on_import",
         "dataset.builder_module='raises_on_import': importing it failed: RuntimeError: bad builder"),
        ("", "plain_module_not_a_package",
         "dataset.builder_module='plain_module_not_a_package': a plain module, but TFDS needs a builder inside a "
         "package; move plain_module_not_a_package.py to plain_module_not_a_package/__init__.py"),
    ],
)  # fmt: skip
def test_a_builder_module_that_cannot_be_imported_is_one_line(tmp_path, monkeypatch, source, module, message):
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserInputError) as caught:
        load_splits(dataset_cfg("user_pairs", builder_module=module), batch_size=8, seed=0, image_size=67)
    assert str(caught.value) == message


def test_a_builder_module_without_the_named_builder_says_so():
    cfg = dataset_cfg("shapez", builder_module="alexnet_sweep.shapes")
    with pytest.raises(UserInputError) as caught:
        load_splits(cfg, batch_size=8, seed=0, image_size=67)
    assert str(caught.value).startswith(
        "dataset.name='shapez': not a TFDS dataset, and dataset.builder_module='alexnet_sweep.shapes' registers no "
        "builder of that name"
    )
    assert "\n" not in str(caught.value)


def test_host_probe_reports_a_closed_port_and_waits_seconds_at_most(monkeypatch):
    timeouts = []
    connect = preparing.socket.create_connection

    def recording(address, timeout=None, **kwargs):
        timeouts.append(timeout)
        return connect(address, timeout=timeout, **kwargs)

    monkeypatch.setattr(preparing.socket, "create_connection", recording)
    assert preparing.unreachable_hosts(["https://127.0.0.1:9/archive.tgz"]) == ["127.0.0.1"]
    assert timeouts == [preparing.PROBE_TIMEOUT_S] and preparing.PROBE_TIMEOUT_S <= 5, "TFDS itself retries for minutes"
