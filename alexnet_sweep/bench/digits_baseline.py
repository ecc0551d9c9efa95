"""`python -m alexnet_sweep.bench.digits_baseline`: classical baselines on the `digits` dataset's splits.

What an AlexNet run with `dataset=digits` should be compared against. The three splits come through the same path a
job uses (the `dataset=digits` config, its builder module and data_dir, `alexnet_sweep.data.load_splits`): train
1,077, validation 360, test 360 images. Each model sees the flattened 64 pixels scaled to [0, 1]:

- `SVC`: scikit-learn's RBF support vector classifier (`gamma="scale"`), C chosen from `SVC_C`;
- `LogisticRegression`: multinomial logistic regression (lbfgs), C chosen from `LOGREG_C`.

Every candidate is fitted on train; the one with the best validation accuracy (the smallest C on a tie) is chosen,
and only the chosen one is scored on test: test never chooses. The table gives each model's chosen C, validation
and test accuracy, and the seconds its fit on train took. `run_baseline` returns the same numbers.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from alexnet_sweep.bench.markdown import save_report

log = logging.getLogger(__name__)

SVC_C = (1.0, 10.0, 100.0)
LOGREG_C = (0.1, 1.0, 10.0)
SPLITS = ("train", "val", "test")


def dataset_config(data_dir: str | None = None) -> DictConfig:
    """Composes the `dataset=digits` config group as a job gets it, with `data_dir` (None: the config's default)."""
    from hydra import compose, initialize_config_module

    from alexnet_sweep.plugins import register

    register()
    overrides = ["dataset=digits"] + ([f"dataset.data_dir={data_dir}"] if data_dir else [])
    with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides).dataset


def load_arrays(dataset: DictConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loads the configured splits through `load_splits` (preparing the dataset if needed) as numpy arrays.

    Args:
        dataset: The `dataset` config group (`dataset_config`).

    Returns:
        Per split (`train`, `val`, `test`): float32 features (n, 64) in [0, 1] and int64 labels (n,).
    """
    from alexnet_sweep.data import load_splits

    splits = load_splits(dataset, batch_size=512, seed=0, image_size=8)  # image_size: only for variable sizes
    arrays = {}
    for name, batches in zip(SPLITS, (splits.train, splits.val, splits.test), strict=True):
        images, labels = zip(*((x.numpy(), y.numpy()) for x, y in batches), strict=True)
        features = np.concatenate(images).reshape(-1, int(np.prod(splits.image_shape))).astype(np.float32) / 255
        arrays[name] = (features, np.concatenate(labels))
        log.info("%s: %d images of shape %s", name, len(features), splits.image_shape)
    return arrays


def _svc(c: float) -> Any:
    from sklearn.svm import SVC

    return SVC(kernel="rbf", gamma="scale", C=c)


def _logistic_regression(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000)


MODELS: tuple[tuple[str, Callable[[float], Any], Sequence[float]], ...] = (
    ("SVC (RBF)", _svc, SVC_C),
    ("LogisticRegression", _logistic_regression, LOGREG_C),
)


def fit_and_choose(
    name: str, make: Callable[[float], Any], grid: Sequence[float], arrays: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """Fits `make(C)` on train for each C of `grid`, keeps the best on validation and scores only that one on test.

    Returns:
        `model`, `C`, `val_accuracy`, `test_accuracy` and `fit_s` (seconds of the chosen model's fit on train).
    """
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (arrays[split] for split in SPLITS)
    best: dict[str, Any] | None = None
    for c in grid:
        model = make(c)
        start = time.perf_counter()
        model.fit(x_train, y_train)
        fit_s = time.perf_counter() - start
        val_accuracy = float(model.score(x_val, y_val))
        log.info("%s C=%g: val accuracy %.4f (fit %.2f s)", name, c, val_accuracy, fit_s)
        if best is None or val_accuracy > best["val_accuracy"]:
            best = {"model": name, "C": c, "val_accuracy": val_accuracy, "fit_s": fit_s, "fitted": model}
    assert best is not None, "an empty grid"
    best["test_accuracy"] = float(best.pop("fitted").score(x_test, y_test))
    return best


def run_baseline(data_dir: str | None = None, dataset: DictConfig | None = None) -> list[dict[str, Any]]:
    """Fits every baseline on the `digits` splits and returns one row per model.

    Args:
        data_dir: TFDS data_dir (None: the `dataset=digits` config's, i.e. TFDS's default); ignored with `dataset`.
        dataset: A `dataset` config group to use instead of composing `dataset=digits`.

    Returns:
        Per model, in `MODELS` order: `model`, `C` (chosen on validation), `val_accuracy`, `test_accuracy`,
        `fit_s`.
    """
    arrays = load_arrays(dataset if dataset is not None else dataset_config(data_dir))
    return [fit_and_choose(name, make, grid, arrays) for name, make, grid in MODELS]


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Renders the rows of `run_baseline` as a Markdown table."""
    lines = [
        "| model | C (chosen on val) | val accuracy | test accuracy | fit s |",
        "|---|---|---|---|---|",
        *(
            f"| {r['model']} | {r['C']:g} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['fit_s']:.3f} |"
            for r in rows
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Runs the baselines, prints the table (and writes `--out` JSON and its `.md` twin); returns the rows."""
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_sweep.bench.digits_baseline", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data-dir", help="TFDS data_dir (default: dataset=digits's, i.e. ~/tensorflow_datasets)")
    parser.add_argument("--out", type=Path, help="write the rows to this JSON file and the table beside it")
    args = parser.parse_args(argv)
    import tensorflow_datasets as tfds

    tfds.display_progress_bar(False)
    rows = run_baseline(args.data_dir)
    save_report({"rows": rows}, markdown(rows), args.out)
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("absl").setLevel(logging.WARNING)
    main()
