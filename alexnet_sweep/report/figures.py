"""The report's figures of a sweep, on `matplotlib.figure.Figure` (no pyplot state, no GUI backend).

Every figure is drawn per configuration (the runs that differ only in `seed`): with several seeds, a mean and its
spread over them; with one seed, that run's numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep, display, mean
from alexnet_sweep.report.runs import Configuration, RunSummary
from alexnet_sweep.report.stats import summarize

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
    """Draws test_accuracy over the two main configuration keys, one panel per combination of the other ones.

    One cell per configuration (the seed is no axis): its test_accuracy mean ± sd over its seeds (colour: the mean)
    and its mean val_accuracy, with `n=` its finished seeds when it ran several; a cell whose runs all did not
    finish says how they ended (`failed`, `diverged`, `killed`, ...); the best configuration (highest mean
    val_accuracy) has a red frame.

    Args:
        sweep: The sweep.

    Returns:
        The figure.
    """
    rows_key, columns_key, panel_keys = heatmap_axes(sweep.config_keys)
    row_values = sweep.values(rows_key) if rows_key else [None]
    column_values = sweep.values(columns_key) if columns_key else [None]
    panels = [
        dict(zip(panel_keys, combo, strict=True))
        for combo in itertools.product(*(sweep.values(key) for key in panel_keys))
        if _configs(sweep, dict(zip(panel_keys, combo, strict=True)))
    ] or [{}]
    scores = [mean(values) for config in sweep.configurations if (values := config.final(names.TEST_ACCURACY))]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    if math.isclose(low, high):
        low, high = low - 0.05, high + 0.05
    columns = min(len(panels), _PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    width = max(4.0, 1.4 * len(column_values) + 2.2)
    height = max(2.6, (0.95 if sweep.replicated else 0.75) * len(row_values) + 1.6)
    fig = Figure(figsize=(width * columns + 1.2, height * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee")
    image = None
    for ax, panel in zip(axes, panels, strict=False):
        grid = np.full((len(row_values), len(column_values)), np.nan)
        for (i, row), (j, column) in itertools.product(enumerate(row_values), enumerate(column_values)):
            cell = _configs(sweep, {**panel, rows_key: row, columns_key: column})
            text, grid[i, j] = _cell(sweep, cell)
            shade = None if math.isnan(grid[i, j]) else (grid[i, j] - low) / (high - low)
            color = "dimgrey" if shade is None else "white" if shade < 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
            if any(config is sweep.best_configuration for config in cell):
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
    fig.colorbar(image, ax=list(axes[: len(panels)]), label=f"mean {names.TEST_ACCURACY}", shrink=0.9)
    over, mean_ = ("mean ± sd over its seeds, ", "mean ") if sweep.replicated else ("", "")
    fig.suptitle(
        f"test_accuracy per configuration ({over}reported, not used to choose); val: {mean_}val_accuracy\n"
        f"red frame: the best configuration by {mean_}val_accuracy"
    )
    return fig


def _configs(sweep: Sweep, params: Mapping[str | None, str | None]) -> list[Configuration]:
    """The configurations whose values equal all of `params`, best first; a None key or value matches anything."""
    matched = [
        config
        for config in sweep.configurations
        if all(k is None or v is None or config.values.get(k) == v for k, v in params.items())
    ]
    ranked = [config for config in sweep.ranked_configurations if config in matched]
    return ranked + [config for config in matched if config.n == 0]


def _cell(sweep: Sweep, configs: Sequence[Configuration]) -> tuple[str, float]:
    scored = [config for config in configs if config.n]
    if scored:
        config = scored[0]
        val = summarize(config.final(names.VAL_ACCURACY))
        lines = [f"val {val.mean:.3f}"]
        test, colour = config.final(names.TEST_ACCURACY), np.nan
        if test:
            summary = summarize(test)
            colour = summary.mean
            lines.insert(0, f"{summary.mean:.3f}" + (f" ± {summary.sd:.3f}" if summary.n > 1 else ""))
        if len(config.runs) > 1:
            lines.append(f"n={config.n}" + (f" of {len(config.runs)}" if config.n < len(config.runs) else ""))
        return "\n".join(lines), colour
    runs = [run for config in configs for run in config.runs]
    if runs:
        return "\n".join(sorted({_ending(run) for run in runs})), np.nan
    return "no run", np.nan


def _ending(run: RunSummary) -> str:
    """How a run that is not ranked ended, in a heatmap cell."""
    return "pruned" if run.pruned is not None else "diverged" if run.diverged else run.status.lower()


def mean_curve(config: Configuration, metric: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Returns a configuration's mean per epoch of `metric` over its finished replicates, and their sd.

    Args:
        config: The configuration.
        metric: A per-epoch metric, e.g. `val_accuracy`.

    Returns:
        The epochs, the mean at each (over the replicates that logged it) and the sample standard deviation (NaN
        where fewer than two replicates logged the epoch).
    """
    curves = [run.history.get(metric, {}) for run in config.finished]
    epochs = sorted({epoch for curve in curves for epoch in curve})
    points = [[curve[epoch] for curve in curves if epoch in curve] for epoch in epochs]
    means = np.array([np.mean(values) for values in points])
    sds = np.array([np.std(values, ddof=1) if len(values) > 1 else np.nan for values in points])
    return epochs, means, sds


def validation_curves(sweep: Sweep) -> Figure:
    """Overlays val_accuracy and val_loss per epoch of every configuration: the mean of its seeds, ±1 sd band.

    Args:
        sweep: The sweep.

    Returns:
        The figure: val_accuracy on the left, val_loss on the right, configurations best first in the legend;
        the best configuration drawn thicker; runs a study pruned as grey dashed lines, up to their last epoch.
    """
    fig = Figure(figsize=(13, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    configs = sweep.ranked_configurations
    colors = matplotlib.colormaps["tab10" if len(configs) <= 10 else "tab20"]
    for index, config in enumerate(configs):
        best = config is sweep.best_configuration
        seeds = f" (n={config.n})" if sweep.replicated else ""
        label = f"{sweep.config_label(config)}{seeds}{' (best)' if best else ''}"
        width, color = 2.8 if best else 1.3, colors(index % colors.N)
        for ax, metric in zip(axes, _CURVES, strict=True):
            epochs, means, sds = mean_curve(config, metric)
            ax.plot(epochs, means, marker="o", markersize=3, linewidth=width, color=color, label=label)
            if not np.isnan(sds).all():
                ax.fill_between(epochs, means - sds, means + sds, color=color, alpha=0.15, linewidth=0)
    pruned = [run for run in sweep.runs if run.pruned is not None]
    style = dict(color="darkgrey", linestyle="--", linewidth=0.9, marker="o", markersize=4, markerfacecolor="none")
    for index, run in enumerate(pruned):  # their curves up to where they were stopped, apart from the ranked ones
        for ax, metric in zip(axes, _CURVES, strict=True):
            curve = run.history.get(metric, {})
            ax.plot(list(curve), list(curve.values()), label="pruned (not ranked)" if index == 0 else None, **style)
    for ax, metric in zip(axes, _CURVES, strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if not configs:
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)
    if configs or pruned:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    if sweep.replicated:
        title = "validation curves per configuration: the mean over its seeds\nband: ±1 sd across its seeds"
    else:
        title = "validation curves of the finished runs\n(one seed per configuration)"
    fig.suptitle(title, x=0.02, ha="left")  # clear of the legend at the upper right
    return fig


def overfitting_view(sweep: Sweep) -> Figure:
    """Draws, per configuration, the epoch of its minimum mean val_loss and its train-val accuracy gap.

    Args:
        sweep: The sweep.

    Returns:
        The figure, one row per configuration with a finished replicate (best first): left, the epoch where the
        mean val_loss over its seeds is lowest (bar; orange when before the last epoch) and each seed's own (dots);
        right, the mean train-val gap at the last epoch (bar, ±1 sd across seeds) and at that epoch (dot).
    """
    configs = [config for config in sweep.ranked_configurations if mean_curve(config, names.VAL_LOSS)[0]]
    rows = [_overfit_row(config) for config in configs]
    fig = Figure(figsize=(12, 1.9 + 0.4 * max(len(configs), 2)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(configs))
    early = ["tab:orange" if row.best_epoch < row.last_epoch else "tab:blue" for row in rows]
    left.barh(y, [row.best_epoch for row in rows], color=early, label="epoch of minimum mean val_loss")
    seeds = [(i, epoch) for i, row in enumerate(rows) for epoch in row.seed_epochs]
    if sweep.replicated and seeds:
        left.scatter([s[1] for s in seeds], [s[0] for s in seeds], s=12, color="dimgrey", alpha=0.7, zorder=3,
                     label="a seed's epoch of minimum val_loss")  # fmt: skip
    left.scatter([row.last_epoch for row in rows], y, marker="|", s=300, color="black", label="last epoch", zorder=3)
    left.set_xlabel("epoch")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_yticks(y, [sweep.config_label(config) for config in configs])
    right.barh(y, [row.gap for row in rows], xerr=[row.gap_sd for row in rows], color=early, ecolor="dimgrey",
               label="mean train-val gap at the last epoch (±1 sd across seeds)")  # fmt: skip
    right.scatter([row.gap_at_best for row in rows], y, color="black", zorder=3,
                  label="at the epoch of minimum mean val_loss")  # fmt: skip
    right.axvline(0, color="grey", linewidth=0.8)
    right.set_xlabel("train accuracy - val_accuracy")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize="small")
    left.invert_yaxis()
    if not configs:
        left.text(0.5, 0.5, "no finished run with val_loss per epoch", ha="center", transform=left.transAxes)
    fig.suptitle("overfitting per configuration: mean val_loss lowest before the last epoch (orange)\n"
                 "and the train-val accuracy gap")  # fmt: skip
    return fig


class _Overfit(NamedTuple):
    """A configuration's row of the overfitting view."""

    best_epoch: int  # of minimum mean val_loss (the earliest on a tie)
    last_epoch: int
    seed_epochs: list[int]  # each finished seed's own epoch of minimum val_loss
    gap: float  # mean train-val accuracy gap at the last epoch
    gap_sd: float  # its sd across seeds (0 for one seed: no error bar)
    gap_at_best: float  # mean gap at `best_epoch`


def _overfit_row(config: Configuration) -> _Overfit:
    epochs, means, _ = mean_curve(config, names.VAL_LOSS)
    best_epoch = epochs[int(np.argmin(means))]
    final = [gap for run in config.finished if (gap := run.gap()) is not None]
    at_best = [gap for run in config.finished if (gap := run.gap(best_epoch)) is not None]
    seeds = [run.best_epoch for run in config.finished if run.best_epoch is not None]
    sd = float(np.std(final, ddof=1)) if len(final) > 1 else 0.0
    return _Overfit(best_epoch, epochs[-1], seeds, _mean(final), sd, _mean(at_best))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else np.nan


FIGURES: dict[str, tuple[str, Callable[[Sweep], Figure]]] = {
    "test_accuracy_heatmap.png": ("test_accuracy per grid point", test_accuracy_heatmap),
    "validation_curves.png": ("val_accuracy and val_loss per epoch", validation_curves),
    "overfitting.png": ("epoch of minimum val_loss and train-val accuracy gap", overfitting_view),
}
