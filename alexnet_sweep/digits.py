"""The offline `digits` dataset: scikit-learn's 1,797 real 8x8 handwritten digits as a TFDS builder.

The images are `sklearn.datasets.load_digits()` (UCI's optical recognition of handwritten digits, shipped inside the
scikit-learn wheel: nothing is downloaded), 8x8 grayscale with values 0-16, stored as uint8 (8, 8, 1) images scaled
to 0-255 (`round(v * 255 / 16)`), with the labels "0".."9". The splits are fixed, stratified (each split keeps the
class proportions of the whole set) and deterministic (`train_test_split` with `RANDOM_STATE`):

- `train`: 1,077 images (about 60%)
- `validation`: 360 images (20%)
- `test`: 360 images (20%)

Importing this module registers the builder with TFDS under the name `digits` (`dataset=digits` names it in
`dataset.builder_module`). A classical baseline on the same splits: `python -m alexnet_sweep.bench.digits_baseline`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 8
CLASS_NAMES = tuple(str(digit) for digit in range(10))
SPLIT_SIZES = {"train": 1077, "validation": 360, "test": 360}  # 1,797 in all
RANDOM_STATE = 0  # seeds both stratified cuts: the splits never change


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """Returns scikit-learn's digits as stored here: uint8 images (1797, 8, 8, 1) in 0-255 and int64 labels."""
    from sklearn.datasets import load_digits  # imported on use: the builder is registered without scikit-learn

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Cuts the example indices into the three splits, stratified by label and the same on every call.

    Args:
        labels: The label of every example (from `load_images`).

    Returns:
        Sorted index arrays per split name, of the sizes in `SPLIT_SIZES`, disjoint and covering every index.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    rest, test = train_test_split(indices, test_size=SPLIT_SIZES["test"], stratify=labels, random_state=RANDOM_STATE)
    train, validation = train_test_split(
        rest, test_size=SPLIT_SIZES["validation"], stratify=labels[rest], random_state=RANDOM_STATE
    )
    return {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}


class Digits(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of the `digits` dataset (registered as `digits` when this module is imported)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: scikit-learn's 1,797 8x8 digits; stratified splits train 1,077, validation 360, "
        "test 360 (train_test_split, random_state 0)."
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        del dl_manager  # the data ships inside scikit-learn; nothing is downloaded
        images, labels = load_images()
        return {
            split: self._generate_examples(images, labels, indices) for split, indices in split_indices(labels).items()
        }

    def _generate_examples(
        self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
    ) -> Iterator[tuple[int, dict]]:
        for index in indices:  # the key is the example's index in load_digits()
            yield int(index), {"image": images[index], "label": int(labels[index])}
