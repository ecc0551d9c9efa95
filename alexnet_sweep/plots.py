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
    # One image of all tiles on one axes: a subplot per image costs several times as much to draw (every job
    # draws this figure, so its time counts in a sweep of many short jobs).
    count, height, width = len(images), images.shape[1], images.shape[2]
    rows = max(1, -(-count // columns))
    gap, label_gap = max(1, width // 8), max(2, height // 2)  # between tiles; above each row, for its labels
    step_down, step_right = height + label_gap, width + gap
    sheet = np.full((rows * step_down, columns * step_right, images.shape[3]), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        top, left = (index // columns) * step_down + label_gap, (index % columns) * step_right
        sheet[top : top + height, left : left + width] = image
    fig = Figure(figsize=(1.6 * columns, 1.9 * rows), layout="constrained")
    ax = fig.subplots()
    ax.imshow(sheet if sheet.shape[2] == 3 else sheet[..., 0], cmap="gray", vmin=0, vmax=255)  # RGB ignores cmap
    ax.axis("off")
    for index, (true, predicted) in enumerate(zip(true_labels, predicted_labels, strict=False)):
        top, left = (index // columns) * step_down + label_gap, (index % columns) * step_right
        ax.text(left + width / 2, top - 0.5, f"pred: {class_names[predicted]}\ntrue: {class_names[true]}",
                fontsize=8, ha="center", va="bottom", color="green" if predicted == true else "red")  # fmt: skip
    fig.suptitle("test images: predicted vs true")
    return fig
