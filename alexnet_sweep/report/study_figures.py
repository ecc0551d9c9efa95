"""The report's figures of an Optuna study: best value so far, parameter importances, the objective per parameter.

Complete trials are points; pruned trials are drawn apart (hollow grey markers at their last value) and never count
towards the best. A figure that cannot be drawn (too few trials) raises `NotDrawn` with the reason in one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alexnet_sweep.report.study import PRUNED, Study, Trial, parse_value

_PANEL_COLUMNS = 3
_COMPLETE = dict(color="tab:blue", s=22, zorder=3, label="complete trial")
_PRUNED = dict(facecolors="none", edgecolors="grey", s=26, zorder=2, label="pruned trial (its last value)")
_BEST = dict(facecolors="none", edgecolors="red", s=110, linewidths=1.8, zorder=4, label="best trial")


class NotDrawn(Exception):
    """A figure that the study's trials cannot fill; the message says why in one line."""


def best_so_far(study: Study) -> Figure:
    """Draws the best complete value so far against the trial number and against the epochs spent so far.

    Args:
        study: The study.

    Returns:
        The figure: left, against trial number; right, against the epochs all trials trained so far (pruned and
        failed trials count theirs); each trial's own value as a point at its trial (or its epochs spent).

    Raises:
        NotDrawn: If no trial completed.
    """
    if not study.complete:
        raise NotDrawn("no trial completed, so there is no best value so far")
    progress = study.progress()
    at = dict(zip(progress.numbers, progress.epochs, strict=True))
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, xs, label in ((axes[0], progress.numbers, "trial number"), (axes[1], progress.epochs, "epochs spent")):
        drawn = [(x, best) for x, best in zip(xs, progress.best, strict=True) if best is not None]
        ax.step([x for x, _ in drawn], [best for _, best in drawn], where="post", color="black", linewidth=1.8,
                label=f"best {study.metric} so far")  # fmt: skip
        position = (lambda trial: trial.number) if ax is axes[0] else (lambda trial: at[trial.number])
        _trial_points(ax, study, position)
        ax.set_xlabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(study.metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize="small")
    fig.suptitle(f"study {study.name}: {study.direction} {study.metric}, best complete trial so far")
    return fig


def importances(study: Study) -> Figure:
    """Draws Optuna's parameter importances (fANOVA) as horizontal bars, most important on top.

    Raises:
        NotDrawn: If they cannot be computed (`Study.importances` says why).
    """
    found = study.importances
    if found.note:
        raise NotDrawn(found.note)
    keys = list(found.values)
    fig = Figure(figsize=(7, 1.6 + 0.45 * len(keys)), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(range(len(keys)), [found.values[key] for key in keys], color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize="small")
    ax.set_yticks(range(len(keys)), keys)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"importance for {study.metric} (fANOVA, sums to 1)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"parameter importances over {found.trials} complete trials")
    return fig


def objective_by_param(study: Study) -> Figure:
    """Draws the objective against each searched key, one panel per key (log x axis for a log distribution).

    Complete trials are points, the best one ringed in red; pruned trials are hollow grey markers at their last
    value. A categorical key's choices are evenly spaced, in the order of the study's space.

    Raises:
        NotDrawn: If the study searches no key or no trial has a value.
    """
    keys = study.keys
    if not keys or not any(trial.value is not None for trial in study.trials):
        raise NotDrawn("no searched key or no trial with a value")
    columns = min(len(keys), _PANEL_COLUMNS)
    rows = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(4.3 * columns, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for ax, key in zip(axes, keys, strict=False):
        distribution = study.space[key]
        choices = getattr(distribution, "choices", None)

        def position(trial: Trial, key: str = key, choices: Sequence | None = choices) -> float | None:
            value = parse_value(study.space[key], trial.values.get(key))
            if value is None:
                return None
            return choices.index(value) if choices is not None else float(value)

        _trial_points(ax, study, position)
        if choices is not None:
            ax.set_xticks(range(len(choices)), [str(choice) for choice in choices])
            ax.set_xlim(-0.5, len(choices) - 0.5)
        elif getattr(distribution, "log", False):
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    for ax in axes[len(keys) :]:
        ax.axis("off")
    for ax in axes[::columns]:
        ax.set_ylabel(study.metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(len(handles), 1), fontsize="small")
    fig.suptitle(f"study {study.name}: {study.metric} against each searched key")
    return fig


def _trial_points(ax: Axes, study: Study, position: Callable[[Trial], float | None]) -> None:
    """Scatters the complete trials, the pruned ones apart, and rings the best; trials with no position are left."""
    best = (study.best,) if study.best is not None else ()
    for trials, style in ((study.complete, _COMPLETE), (study.by_state(PRUNED), _PRUNED), (best, _BEST)):
        points = [
            (x, trial.value) for trial in trials if (x := position(trial)) is not None and trial.value is not None
        ]
        if points:
            ax.scatter([x for x, _ in points], [y for _, y in points], **style)


FIGURES: dict[str, tuple[str, Callable[[Study], Figure]]] = {
    "study_best_so_far.png": ("best value so far against trials and epochs spent", best_so_far),
    "study_importances.png": ("parameter importances (Optuna's fANOVA)", importances),
    "study_objective_by_param.png": ("the objective against each searched key", objective_by_param),
}
