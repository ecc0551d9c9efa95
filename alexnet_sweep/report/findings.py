"""The report's findings: plain sentences computed from a sweep's finished runs, each saying only what they show.

Comparisons use final val_accuracy (test_accuracy is reported, never used to choose). A value of a swept key is
judged by the mean over its finished runs, i.e. averaged over the other swept keys, and by how often it beats the
runner-up in configurations that differ only in that key. Numbers equal to 4 decimals, as shown, are a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep, display, matching, mean
from alexnet_sweep.report.runs import RunSummary

_NOT_SWEPT = {
    "optimizer.lr": "so it says nothing about which learning rate is best",
    "epochs": "so it cannot say whether fewer epochs beat more",
    "model.name": "so it cannot say whether alexnet9 beats alexnet8",
}


def findings(sweep: Sweep) -> list[str]:
    """Returns the findings of a sweep, one sentence (or two) per item.

    Args:
        sweep: The sweep (`data.load_sweep`).

    Returns:
        Sentences on: how many jobs finished, the best run, the best value of each swept key, keys the reference
        study asks about that were not swept, fewer vs more epochs per learning rate, and signs of overfitting.
    """
    finished = [run for run in sweep.finished if run.val_accuracy is not None]
    sentences = [_coverage(sweep, finished)]
    if not finished:
        return sentences
    sentences.append(_best_run(sweep))
    sentences += [sentence for key in sweep.swept_keys if (sentence := _best_value(sweep, finished, key))]
    sentences += _seed_noise(sweep, finished)
    sentences += _not_swept(sweep)
    sentences += _epochs(sweep, finished)
    sentences += _overfitting(sweep, finished)
    return sentences


def _f(value: float) -> str:
    return f"{value:.4f}"


def _tie(a: float, b: float) -> bool:
    return _f(a) == _f(b)


def _runs(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"


def _coverage(sweep: Sweep, finished: Sequence[RunSummary]) -> str:
    total = len(sweep.runs)
    if not total:
        return "The sweep has no job runs in MLflow, so there is nothing to compare."
    sentence = f"{len(sweep.finished)} of {total} jobs finished"
    diverged = sum(run.diverged for run in sweep.runs)
    if diverged:
        sentence += f"; {diverged} diverged (loss or metrics NaN or infinite)"
    if len(sweep.finished) < total:
        sentence += "; the others are listed under Failed and unfinished jobs and left out of every comparison"
    if not finished:
        sentence += "; no finished run has a val_accuracy, so there is nothing to compare"
    return sentence + "."


def _best_run(sweep: Sweep) -> str:
    best = sweep.best
    sentence = f"The best run by final val_accuracy is `{sweep.label(best)}` ({_f(best.val_accuracy)}"
    if names.TEST_ACCURACY in best.metrics:
        sentence += f", {names.TEST_ACCURACY} {_f(best.metrics[names.TEST_ACCURACY])}"
    sentence += ")"
    tied = [run for run in sweep.ranked[1:] if _tie(run.val_accuracy, best.val_accuracy)]
    if tied:
        others = ", ".join(f"`{sweep.label(run)}`" for run in tied)
        loss = best.metrics.get(names.VAL_LOSS)
        lower = loss is not None and all(loss < run.metrics.get(names.VAL_LOSS, math.inf) for run in tied)
        sentence += f"; it ties with {others} and is chosen by {'its lower final val_loss' if lower else 'job order'}"
    return sentence + "."


def _over(sweep: Sweep, key: str) -> str:
    others = [other for other in sweep.swept_keys if other != key]
    return f"mean final val_accuracy over {', '.join(others)}" if others else "final val_accuracy"


def _best_value(sweep: Sweep, finished: Sequence[RunSummary], key: str) -> str:
    means = {}
    for value in sweep.values(key, finished):
        runs = matching(finished, {key: value})
        means[value] = (mean([run.val_accuracy for run in runs]), len(runs))
    missing = [display(key, value) for value in sweep.values(key) if value not in means]
    ranked = sorted(means, key=lambda value: -means[value][0])  # stable: equal means keep the value order
    listing = ", ".join(f"{display(key, v)}: {_f(means[v][0])} ({_runs(means[v][1])})" for v in ranked)
    if len(ranked) == 1:
        sentence = f"{key}: only {key}={display(key, ranked[0])} has finished runs, so its values cannot be compared."
    else:
        top = [value for value in ranked if _tie(means[value][0], means[ranked[0]][0])]
        if len(top) > 1:
            names = " and ".join(display(key, value) for value in top)
            sentence = f"{key}: {names} tie for best by {_over(sweep, key)} ({listing})."
        else:
            sentence = f"Best {key}: {display(key, ranked[0])} by {_over(sweep, key)} ({listing})."
            sentence += _head_to_head(sweep, finished, key, ranked[0], ranked[1])
    if missing:
        sentence += f" No finished run has {key}={', '.join(missing)}."
    return sentence


def _head_to_head(sweep: Sweep, finished: Sequence[RunSummary], key: str, first: str, second: str) -> str:
    """Counts the configurations differing only in `key` where `first` beats `second`."""
    others = [other for other in sweep.swept_keys if other != key]
    wins = ties = pairs = 0
    for config in {tuple(run.params.get(other) for other in others) for run in finished}:
        same = dict(zip(others, config, strict=True))
        a = matching(finished, {**same, key: first})
        b = matching(finished, {**same, key: second})
        if a and b:
            pairs += 1
            accuracy_a, accuracy_b = mean([r.val_accuracy for r in a]), mean([r.val_accuracy for r in b])
            ties += _tie(accuracy_a, accuracy_b)
            wins += accuracy_a > accuracy_b and not _tie(accuracy_a, accuracy_b)
    if not pairs or not others:
        return ""
    tied = f" ({ties} tied)" if ties else ""
    first, second = display(key, first), display(key, second)
    return f" {first} beats {second} in {wins} of {pairs} configurations that differ only in {key}{tied}."


def _seed_noise(sweep: Sweep, finished: Sequence[RunSummary]) -> list[str]:
    """How far the seed alone moves val_accuracy: the yardstick for every other difference."""
    if "seed" not in sweep.swept_keys:
        return []
    others = [key for key in sweep.swept_keys if key != "seed"]
    spreads = []
    for config in {tuple(run.params.get(key) for key in others) for run in finished}:
        accuracies = [run.val_accuracy for run in matching(finished, dict(zip(others, config, strict=True)))]
        if len(accuracies) > 1:
            spreads.append(max(accuracies) - min(accuracies))
    if not spreads:
        return []
    where = " within one setting of the other swept keys" if others else ""
    return [
        f"The seed alone moves final val_accuracy by up to {_f(max(spreads))}{where}: differences smaller than "
        "that may be run-to-run noise."
    ]


def _not_swept(sweep: Sweep) -> list[str]:
    sentences = []
    for key, consequence in _NOT_SWEPT.items():
        values = sweep.values(key)
        if key not in sweep.varying_keys and values:
            sentences.append(f"{key} was not swept (every run used {display(key, values[0])}), {consequence}.")
    return sentences


def _epochs(sweep: Sweep, finished: Sequence[RunSummary]) -> list[str]:
    """Fewest vs most epochs, per learning rate (or per value of the first other swept key)."""
    if "epochs" not in sweep.swept_keys:
        return []
    epochs = sweep.values("epochs", finished)
    if len(epochs) < 2:
        return []
    fewest, most = epochs[0], epochs[-1]
    group_key = next((key for key in sweep.swept_keys if key != "epochs"), None)
    rest = [key for key in sweep.swept_keys if key not in ("epochs", group_key)]
    averaged = f" (mean over {', '.join(rest)})" if rest else ""
    sentences = []
    for group in sweep.values(group_key, finished) if group_key else [None]:
        where = f"With {group_key}={display(group_key, group)}" if group_key else "Over all runs"
        few = matching(finished, {group_key: group, "epochs": fewest})
        many = matching(finished, {group_key: group, "epochs": most})
        if not few or not many:
            sentences.append(f"{where} there is no finished run with epochs={fewest} and one with {most} to compare.")
            continue
        a, b = mean([run.val_accuracy for run in few]), mean([run.val_accuracy for run in many])
        if _tie(a, b):
            verdict = f"epochs={fewest} and epochs={most} tie at final val_accuracy {_f(a)}"
        elif a > b:
            verdict = (
                f"fewer epochs beat more: epochs={fewest} reaches final val_accuracy {_f(a)}, epochs={most} {_f(b)}"
            )
        else:
            verdict = (
                f"more epochs beat fewer: epochs={most} reaches final val_accuracy {_f(b)}, epochs={fewest} {_f(a)}"
            )
        early = [run for run in many if run.best_epoch is not None and run.best_epoch < run.last_epoch]
        sentence = f"{where}, {verdict}{averaged}"
        if early:
            sentence += f"; in {len(early)} of {len(many)} epochs={most} runs val_loss was lowest before the last epoch"
        sentences.append(sentence + ".")
    return sentences


def _overfitting(sweep: Sweep, finished: Sequence[RunSummary]) -> list[str]:
    judged = [run for run in finished if run.best_epoch is not None]
    if not judged:
        return ["No per-epoch val_loss was recorded, so overfitting cannot be judged."]
    early = [run for run in judged if run.best_epoch < run.last_epoch]
    if early:
        details = "; ".join(_overfit_detail(sweep, run) for run in early)
        sentences = [
            f"Signs of overfitting in {len(early)} of {_runs(len(judged))}, whose val_loss was lowest before the "
            f"last epoch: {details}."
        ]
    else:
        every = "in the one finished run" if len(judged) == 1 else f"in all {len(judged)} finished runs"
        sentences = [f"No finished run shows val_loss rising at the end: {every} it was lowest at the last epoch."]
    gaps = sorted((run for run in judged if run.gap() is not None), key=lambda run: -run.gap())
    if len(gaps) > 1 and not _tie(gaps[0].gap(), gaps[-1].gap()):
        sentences.append(
            f"The final train-val accuracy gap ranges from {_f(gaps[-1].gap())} (`{sweep.label(gaps[-1])}`) "
            f"to {_f(gaps[0].gap())} (`{sweep.label(gaps[0])}`)."
        )
    return sentences


def _overfit_detail(sweep: Sweep, run: RunSummary) -> str:
    detail = f"`{sweep.label(run)}` (lowest at epoch {run.best_epoch} of {run.last_epoch}"
    at_best, at_end = run.gap(run.best_epoch), run.gap()
    if at_best is not None and at_end is not None:
        trend = "grew" if at_end > at_best and not _tie(at_end, at_best) else "did not grow"
        detail += f"; the train-val accuracy gap {trend}: {_f(at_best)} there, {_f(at_end)} at the end"
    return detail + ")"
