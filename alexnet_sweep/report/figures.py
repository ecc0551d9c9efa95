"""The report's figures of a sweep, on `matplotlib.figure.Figure` (no pyplot state, no GUI backend)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep, display, matching
from alexnet_sweep.report.runs import RunSummary

_PANEL_COLUMNS = 3
_CURVES = (names.VAL_ACCURACY, names.VAL_LOSS)  # left and right panel of the validation curves


def heatmap_axes(swept_keys: Sequence[str]) -> tuple[str | None, str | None, list[str]]:
    """Chooses the heatmap's row key, column key and panel keys among the swept keys.

    `optimizer.lr` (rows) x `epochs` (columns) when both are swept, else the first two swept keys; one swept key
    gives a single row; every other swept key gets one panel per combination of its values.
    """
    keys = list(swept_keys)
    if "optimizer.lr" in keys and "epochs" in keys:
        rows, columns = "optimizer.lr", "epochs"
    elif len(keys) >= 2:
        rows, columns = keys[0], keys[1]
    else:
        rows, columns = None, keys[0] if keys else None
    return rows, columns, [key for key in keys if key not in (rows, columns)]


def test_accuracy_heatmap(sweep: Sweep) -> Figure:
    """Draws test_accuracy over the two main swept keys, one panel per combination of the other swept keys.

    Each cell shows the test_accuracy (colour and number) and the val_accuracy of its finished run; a cell
    whose run did not finish says so (`failed`, `diverged`, `killed`, ...); the best run by val_accuracy has a red
    frame.

    Args:
        sweep: The sweep.

    Returns:
        The figure.
    """
    rows_key, columns_key, panel_keys = heatmap_axes(sweep.swept_keys)
    row_values = sweep.values(rows_key) if rows_key else [None]
    column_values = sweep.values(columns_key) if columns_key else [None]
    panels = [
        dict(zip(panel_keys, combo, strict=True))
        for combo in itertools.product(*(sweep.values(key) for key in panel_keys))
        if matching(sweep.runs, dict(zip(panel_keys, combo, strict=True)))
    ] or [{}]
    scores = [run.metrics[names.TEST_ACCURACY] for run in sweep.finished if names.TEST_ACCURACY in run.metrics]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    if math.isclose(low, high):
        low, high = low - 0.05, high + 0.05
    columns = min(len(panels), _PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    width = max(4.0, 1.3 * len(column_values) + 2.2)
    height = max(2.6, 0.75 * len(row_values) + 1.6)
    fig = Figure(figsize=(width * columns + 1.2, height * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee")
    image = None
    for ax, panel in zip(axes, panels, strict=False):
        grid = np.full((len(row_values), len(column_values)), np.nan)
        for (i, row), (j, column) in itertools.product(enumerate(row_values), enumerate(column_values)):
            cell = matching(sweep.runs, {**panel, rows_key: row, columns_key: column})
            text, grid[i, j] = _cell(sweep, cell)
            shade = None if math.isnan(grid[i, j]) else (grid[i, j] - low) / (high - low)
            color = "dimgrey" if shade is None else "white" if shade < 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
            if sweep.best is not None and sweep.best.run_id in {run.run_id for run in cell}:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=low, vmax=high, aspect="auto")
        ax.set_xticks(
            range(len(column_values)), [display(columns_key, v) if columns_key else "" for v in column_values]
        )
        ax.set_yticks(range(len(row_values)), [display(rows_key, v) if rows_key else "" for v in row_values])
        ax.set_xlabel(columns_key or "")
        ax.set_ylabel(rows_key or "")
        ax.set_title(" ".join(f"{sweep.short(k)}={display(k, v)}" for k, v in panel.items()))
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.colorbar(image, ax=list(axes[: len(panels)]), label=names.TEST_ACCURACY, shrink=0.9)
    fig.suptitle("test_accuracy per grid point (reported, not used to choose)\nred frame: the best run by val_accuracy")
    return fig


def _cell(sweep: Sweep, runs: Sequence[RunSummary]) -> tuple[str, float]:
    ids = {run.run_id for run in runs}
    scored = [run for run in sweep.ranked if run.run_id in ids and names.TEST_ACCURACY in run.metrics]
    if scored:
        test_accuracy = scored[0].metrics[names.TEST_ACCURACY]
        return f"{test_accuracy:.3f}\nval {scored[0].val_accuracy:.3f}", test_accuracy
    if runs:
        return "\n".join(sorted({"diverged" if run.diverged else run.status.lower() for run in runs})), np.nan
    return "no run", np.nan


def validation_curves(sweep: Sweep) -> Figure:
    """Overlays val_accuracy and val_loss per epoch of every finished run, labelled by its swept params.

    Args:
        sweep: The sweep.

    Returns:
        The figure: val_accuracy on the left, val_loss on the right; the best run drawn thicker.
    """
    fig = Figure(figsize=(13, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    runs = sweep.finished
    colors = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"]
    for index, run in enumerate(runs):
        best = sweep.best is not None and run.run_id == sweep.best.run_id
        label = f"{sweep.label(run)}{' (best)' if best else ''}"
        for ax, metric in zip(axes, _CURVES, strict=True):
            points = run.history.get(metric, {})
            epochs = sorted(points)
            values = [points[epoch] for epoch in epochs]
            width, color = 2.8 if best else 1.3, colors(index % colors.N)
            ax.plot(epochs, values, marker="o", markersize=3, linewidth=width, color=color, label=label)
    for ax, metric in zip(axes, _CURVES, strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if not runs:
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)
    if runs:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    fig.suptitle("validation curves of the finished runs")
    return fig


def overfitting_view(sweep: Sweep) -> Figure:
    """Draws, per finished run, the epoch of minimum val_loss (vs its last epoch) and the train-val accuracy gap.

    Args:
        sweep: The sweep.

    Returns:
        The figure: runs whose val_loss was lowest before the last epoch are drawn in orange.
    """
    runs = [run for run in sweep.finished if run.best_epoch is not None]
    fig = Figure(figsize=(12, 1.9 + 0.4 * max(len(runs), 2)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(runs))
    early = ["tab:orange" if run.best_epoch < run.last_epoch else "tab:blue" for run in runs]
    left.barh(y, [run.best_epoch for run in runs], color=early, label="epoch of minimum val_loss")
    left.scatter([run.last_epoch for run in runs], y, marker="|", s=300, color="black", label="last epoch", zorder=3)
    left.set_xlabel("epoch")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_yticks(y, [sweep.label(run) for run in runs])
    final = [_nan(run.gap()) for run in runs]
    at_best = [_nan(run.gap(run.best_epoch)) for run in runs]
    right.barh(y, final, color=early, label="train-val gap at the last epoch")
    right.scatter(at_best, y, color="black", zorder=3, label="gap at the epoch of minimum val_loss")
    right.axvline(0, color="grey", linewidth=0.8)
    right.set_xlabel("train accuracy - val_accuracy")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    left.invert_yaxis()
    if not runs:
        left.text(0.5, 0.5, "no finished run with val_loss per epoch", ha="center", transform=left.transAxes)
    fig.suptitle("overfitting: val_loss lowest before the last epoch (orange)\nand the train-val accuracy gap")
    return fig


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


FIGURES: dict[str, tuple[str, Callable[[Sweep], Figure]]] = {
    "test_accuracy_heatmap.png": ("test_accuracy per grid point", test_accuracy_heatmap),
    "validation_curves.png": ("val_accuracy and val_loss per epoch", validation_curves),
    "overfitting.png": ("epoch of minimum val_loss and train-val accuracy gap", overfitting_view),
}
