"""Matplotlib figures of one run. Built on `matplotlib.figure.Figure`, so no pyplot state or GUI backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def curves_figure(history: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Draws the reference's two panels: loss and accuracy per epoch, train and validation.

    Args:
        history: Keras history (`loss`, `accuracy`, `val_loss`, `val_accuracy`), one value per epoch.
        title: Figure title, e.g. the run name.

    Returns:
        The figure.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = history.get(key, [])
            ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def predictions_figure(
    images: np.ndarray,
    true_labels: Sequence[int],
    predicted_labels: Sequence[int],
    class_names: Sequence[str],
    columns: int = 8,
) -> Figure:
    """Draws test images titled with predicted vs true class, green when right and red when wrong.

    Args:
        images: uint8 images, shape (n, height, width, 3) (RGB) or (n, height, width, 1) (grayscale).
        true_labels: True class index per image.
        predicted_labels: Predicted class index per image.
        class_names: Name of each class index.
        columns: Images per row.

    Returns:
        The figure.
    """
    rows = max(1, -(-len(images) // columns))
    fig = Figure(figsize=(1.6 * columns, 1.9 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, true, predicted in zip(axes, images, true_labels, predicted_labels, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)  # the colour map is for 1 channel; RGB ignores it
        ax.set_title(
            f"pred: {class_names[predicted]}\ntrue: {class_names[true]}",
            fontsize=8,
            color="green" if predicted == true else "red",
        )
    fig.suptitle("test images: predicted vs true")
    return fig
