"""Extending from outside: a user's own config directory adds an optimizer, a model variant and a dataset with its
own TFDS builder, and a real sweep uses all three without a file of the package changing."""

import hashlib
import os
from importlib.resources import files
from pathlib import Path

import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tests.conftest import all_runs, run_cli

pytestmark = pytest.mark.slow

USER_FILES = {
    "conf/optimizer/rmsprop.yaml": """\
# RMSprop: built by hydra.utils.instantiate; name and lr are the app's keys, the rest go to the class.
_target_: keras.optimizers.RMSprop
name: rmsprop
lr: 1e-3
rho: 0.8
""",
    "conf/model/alexnet8_narrow.yaml": """\
# alexnet8 with a narrow head: one Dense(16)+Dropout.
defaults:
  - alexnet8
  - _self_

name: alexnet8_narrow
dense_units: [16]
""",
    "conf/dataset/user_dots.yaml": """\
# My own dataset, built by the TFDS builder in my_datasets (on PYTHONPATH).
defaults:
  - /schema/dataset@_here_: base
  - _self_

name: user_dots
builder_module: my_datasets
train_split: train[:75%]
val_split: train[75%:]
test_split: test
download: true
cache: true
shuffle_buffer: 48
""",
    # TFDS finds a builder's files through its top-level package, so the builder lives in a package.
    "my_datasets/__init__.py": '''\
"""3 classes of 32x32 images: the class sets the brightness."""

import numpy as np
import tensorflow_datasets as tfds


class UserDots(tfds.core.GeneratorBasedBuilder):
    """Registered as `user_dots` when this module is imported."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(32, 32, 3)), "label": tfds.features.ClassLabel(num_classes=3)}
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(seed=0, count=48), "test": self._generate_examples(seed=1, count=16)}

    def _generate_examples(self, seed, count):
        rng = np.random.default_rng(seed)
        for index in range(count):
            image = rng.integers(0, 64, (32, 32, 3)) + 80 * (index % 3)
            yield index, {"image": image.astype(np.uint8), "label": index % 3}
''',
}


def package_digests() -> dict[str, str]:
    """A digest of every file of the installed package and its configs (bytecode caches aside)."""
    digests = {}
    for root in (Path(str(files("alexnet_sweep"))), Path(str(files("alexnet_sweep.conf")))):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def test_a_user_config_dir_adds_an_optimizer_a_model_and_a_dataset_with_its_own_builder(tmp_path):
    user, workdir = tmp_path / "user", tmp_path / "work"
    for relative, text in USER_FILES.items():
        (user / relative).parent.mkdir(parents=True, exist_ok=True)
        (user / relative).write_text(text)
    workdir.mkdir()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = package_digests()

    result = run_cli(
        "-m", f"hydra.searchpath=['file://{user / 'conf'}']",
        "optimizer=rmsprop", "model=alexnet8_narrow", "dataset=user_dots", "optimizer.lr=1e-3,1e-4",
        f"dataset.data_dir={tmp_path / 'tfds'}", f"mlflow.tracking_uri={store}", "mlflow.experiment_name=extending",
        "model.input_size=67", "model.bn_momentum=0.9", "epochs=1", "batch_size=16", "save_model=false",
        cwd=workdir,
        env={"PYTHONPATH": os.pathsep.join(filter(None, [str(user), os.environ.get("PYTHONPATH")]))},
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    jobs = [run for run in all_runs(store) if MLFLOW_PARENT_RUN_ID in run.data.tags]
    assert sorted(run.data.params["optimizer.lr"] for run in jobs) == ["0.0001", "0.001"]
    for run in jobs:
        assert run.info.status == "FINISHED"
        assert "test_accuracy" in run.data.metrics
        params = run.data.params
        assert (params["optimizer.name"], params["optimizer._target_"], params["optimizer.rho"]) == (
            "rmsprop", "keras.optimizers.RMSprop", "0.8",
        )  # fmt: skip
        assert (params["model.name"], params["model.dense_units"]) == ("alexnet8_narrow", "[16]")
        assert (params["dataset.name"], params["dataset.builder_module"]) == ("user_dots", "my_datasets")
    assert (tmp_path / "tfds" / "user_dots" / "1.0.0").is_dir(), "TFDS prepared the user's dataset in data_dir"
    assert package_digests() == before, "the package and its configs are untouched"
