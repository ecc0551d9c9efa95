"""`shapes`: an offline, deterministic, learnable 10-class image dataset built through TFDS.

It has cifar10's feature spec (`image` uint8 32x32x3, `label` with 10 classes) and its split names (`train`,
`test`), so every code path that loads cifar10 loads `shapes` the same way, with no network. Each image is one
filled geometric shape of random position, size and colours on a random background with pixel noise; the class is
the shape, so a model has to learn form, not colour.

`conf/dataset/shapes.yaml` names this module as its `builder_module`, which the data module imports before asking
TFDS for the builder: the same way a user's own dataset is plugged in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 32
CLASS_NAMES = (
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "cross",
    "h_stripes",
    "v_stripes",
    "diamond",
    "checker",
)
SPLIT_SIZES = {"train": 2000, "test": 500}
_SPLIT_SEEDS = {"train": 0, "test": 1}

# Masks over centred coordinates (dx, dy) for a shape of radius r; True where the shape is drawn.
_Mask = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def _bars(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    return ((np.abs(u) <= 0.3 * r) & (np.abs(v) <= r)) | ((np.abs(v) <= 0.3 * r) & (np.abs(u) <= r))


def _in_square(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    return np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r


_MASKS: tuple[_Mask, ...] = (
    lambda dx, dy, r: dx**2 + dy**2 <= r**2,
    _in_square,
    lambda dx, dy, r: (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) / 2),
    lambda dx, dy, r: (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.55 * r) ** 2),
    _bars,
    lambda dx, dy, r: _bars((dx + dy) / np.sqrt(2), (dx - dy) / np.sqrt(2), r),
    lambda dx, dy, r: _in_square(dx, dy, r) & (np.floor(dy / (0.4 * r)) % 2 == 0),
    lambda dx, dy, r: _in_square(dx, dy, r) & (np.floor(dx / (0.4 * r)) % 2 == 0),
    lambda dx, dy, r: np.abs(dx) + np.abs(dy) <= r,
    lambda dx, dy, r: _in_square(dx, dy, r) & ((np.floor(dx / (0.4 * r)) + np.floor(dy / (0.4 * r))) % 2 == 0),
)


def draw_shape(label: int, rng: np.random.Generator) -> np.ndarray:
    """Draws one image of class `label`.

    Args:
        label: Class index into `CLASS_NAMES`.
        rng: Source of the random position, size, colours and noise.

    Returns:
        A uint8 array of shape (32, 32, 3).
    """
    grid = np.arange(IMAGE_SIZE) + 0.5
    xx, yy = np.meshgrid(grid, grid)
    cx, cy = rng.uniform(11, 21, size=2)
    radius = rng.uniform(6, 10)
    background = rng.uniform(0, 1, size=3)
    foreground = rng.uniform(0, 1, size=3)
    while np.linalg.norm(foreground - background) < 0.5:  # keep the shape visible
        foreground = rng.uniform(0, 1, size=3)
    mask = _MASKS[label](xx - cx, yy - cy, radius)
    image = np.where(mask[..., None], foreground, background) + rng.normal(0, 0.05, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


class Shapes(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of the `shapes` dataset (registered as `shapes` when this module is imported)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 2,000 train and 500 test images, 10 balanced classes."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        del dl_manager  # everything is generated locally
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        rng = np.random.default_rng(_SPLIT_SEEDS[split])
        for index in range(SPLIT_SIZES[split]):
            label = index % len(CLASS_NAMES)
            yield index, {"image": draw_shape(label, rng), "label": label}
