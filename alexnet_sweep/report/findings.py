"""The report's findings: plain sentences computed from a sweep's finished runs, each saying only what they show.

Comparisons use final val_accuracy (test_accuracy is reported, never used to choose). A value of a swept key is
ranked by the mean over its finished runs (over the other swept keys and the seeds). Every comparison gives the
difference, its 95% interval, the test across seeds and its verdict (`claims.contrast`): real, or within noise with
about how many seeds would resolve it. With one seed per configuration a leading sentence says once that the noise
is unmeasured and how to measure it. Numbers equal to 4 decimals, as shown, are a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alexnet_sweep import names
from alexnet_sweep.report.claims import between, contrast, describe, named
from alexnet_sweep.report.data import Sweep, display, matching, mean
from alexnet_sweep.report.runs import RunSummary
from alexnet_sweep.report.stats import ALPHA, WITHIN_NOISE, summarize

STATISTICS = (
    "Differences are tested across seeds: a paired t-test over runs with the same seed and the same other swept "
    f"keys (Welch's t-test where none pair up), two-sided at alpha = {ALPHA:.2f}; a difference is real when "
    f"p < {ALPHA:.2f}, which is when its 95% interval excludes 0, and within noise otherwise."
)
UNMEASURED_NOTE = (
    "Noise unmeasured (one seed per configuration): no difference below can be told from run-to-run noise; "
    "run the sweep again with seed=0,1,2 added to the command to measure it."
)
_NOT_SWEPT = {
    "optimizer.lr": "so it says nothing about which learning rate is best",
    "epochs": "so it cannot say whether fewer epochs beat more",
    "model.name": "so it cannot say whether alexnet9 beats alexnet8",
}


MAX_LISTED = 6  # a key with more values, each run once (a study's continuous key), is not listed value by value


def findings(sweep: Sweep) -> list[str]:
    """Returns the findings of a sweep, one sentence (or two) per item.

    Args:
        sweep: The sweep (`data.load_sweep`).

    Returns:
        Sentences on: jobs finished, the test used (or that the noise is unmeasured), the best configuration, seed
        noise, each swept key's best value against the runner-up, keys the reference study asks about that were not
        swept, fewer vs more epochs per learning rate, signs of overfitting.
    """
    finished = [run for run in sweep.finished if run.val_accuracy is not None]
    sentences = [_coverage(sweep, finished)]
    if not finished:
        return sentences
    if len(sweep.ranked_configurations) > 1:
        sentences.append(STATISTICS if sweep.replicated else UNMEASURED_NOTE)
    sentences.append(_best(sweep) if sweep.replicated else _best_run(sweep))
    sentences += _seed_noise(sweep)
    sentences += [sentence for key in sweep.config_keys if (sentence := _best_value(sweep, finished, key))]
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
    pruned = sum(run.pruned is not None for run in sweep.runs)
    if pruned:
        sentence += f"; {pruned} {'was' if pruned == 1 else 'were'} pruned (listed under Pruned trials, never ranked)"
    if len(sweep.finished) + pruned < total:
        sentence += "; the others are listed under Failed and unfinished jobs and left out of every comparison"
    if not finished:
        sentence += "; no finished run has a val_accuracy, so there is nothing to compare"
    return sentence + "."


def _best_run(sweep: Sweep) -> str:
    """The best run, where each configuration has one seed."""
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


def _best(sweep: Sweep) -> str:
    """The best configuration by mean final val_accuracy over its seeds, against the runner-up."""
    best, *rest = sweep.ranked_configurations
    summary = summarize(best.final(names.VAL_ACCURACY))
    sentence = (
        f"The best configuration by mean final val_accuracy is `{sweep.config_label(best)}`: "
        if rest else "The runs are replicates of one configuration (they differ only in the seed): mean final "
        "val_accuracy "
    ) + _f(summary.mean)  # fmt: skip
    interval = f" (95% CI {_f(summary.low)} to {_f(summary.high)} over {summary.n} seeds"
    sentence += interval if summary.n > 1 else " (one seed"
    test = best.final(names.TEST_ACCURACY)
    sentence += f"; {names.TEST_ACCURACY} {_f(mean(test))})" if test else ")"
    tied = [config for config in rest if _tie(config.mean_val_accuracy, summary.mean)]
    if tied:
        sentence += f"; it ties with {', '.join(f'`{sweep.config_label(c)}`' for c in tied)} on the mean"
    if rest and len(sweep.config_keys) > 1:  # with one key, the key's own finding says the same
        runner = rest[0]
        sentence += (
            f"; against the runner-up `{sweep.config_label(runner)}` ({_f(runner.mean_val_accuracy)}) the "
            f"difference is {describe(sweep, between(best, runner))}"
        )
    return sentence + "."


def _seed_noise(sweep: Sweep) -> list[str]:
    """How far the seed alone moves val_accuracy within a configuration: the yardstick for every difference."""
    configs = sweep.ranked_configurations
    replicated = [config for config in configs if config.n > 1]
    if not replicated:
        return []
    counts = sorted({config.n for config in replicated})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    summaries = {sweep.config_label(c): summarize(c.final(names.VAL_ACCURACY)) for c in replicated}
    if len(configs) == 1:
        values, summary = configs[0].final(names.VAL_ACCURACY), next(iter(summaries.values()))
        return [f"Seed noise: across {seeds} seeds final val_accuracy has sd {_f(summary.sd)} "
                f"(from {_f(min(values))} to {_f(max(values))})."]  # fmt: skip
    pooled = math.sqrt(sum((s.n - 1) * s.sd**2 for s in summaries.values()) / sum(s.n - 1 for s in summaries.values()))
    widest = max(summaries, key=lambda label: summaries[label].sd)
    sentence = (
        f"Seed noise: across {seeds} seeds the sd of final val_accuracy within a configuration is {_f(pooled)} "
        f"(pooled over {len(replicated)} configurations; up to {_f(summaries[widest].sd)} for `{widest}`)"
    )
    single = len(configs) - len(replicated)
    if single:
        sentence += f"; {single} configuration{'s' if single > 1 else ''} with one finished seed measure none"
    return [sentence + "."]


def _over(sweep: Sweep, key: str) -> str:
    others = [other for other in sweep.config_keys if other != key]
    return f"mean final val_accuracy over {', '.join(others)}" if others else "final val_accuracy"


def _best_value(sweep: Sweep, finished: Sequence[RunSummary], key: str) -> str:
    sides = {value: [run.val_accuracy for run in matching(finished, {key: value})] for value in sweep.values(key)}
    means = {value: (mean(side), len(side)) for value, side in sides.items() if side}
    missing = [display(key, value) for value in sweep.values(key) if value not in means]
    ranked = sorted(means, key=lambda value: -means[value][0])  # stable: equal means keep the value order
    listing = ", ".join(f"{display(key, v)}: {_f(means[v][0])} ({_runs(means[v][1])})" for v in ranked)
    if len(ranked) > MAX_LISTED and all(count == 1 for _, count in means.values()):  # sampled, as a study does
        return (f"{key}: {len(ranked)} values with one run each, best {display(key, ranked[0])} "
                f"({_f(means[ranked[0]][0])}); the objective against each searched key shows the trend.")  # fmt: skip
    if len(ranked) == 1:
        sentence = f"{key}: only {key}={display(key, ranked[0])} has finished runs, so its values cannot be compared."
    else:
        top = [value for value in ranked if _tie(means[value][0], means[ranked[0]][0])]
        if len(top) > 1:
            tied = " and ".join(display(key, value) for value in top)
            sentence = f"{key}: {tied} tie for best by {_over(sweep, key)} ({listing})."
        else:
            sentence = f"Best {key}: {display(key, ranked[0])} by {_over(sweep, key)} ({listing})."
        found = contrast(sweep, key, ranked[0], ranked[1])
        if found is not None:
            sentence += f" {named(sweep, found)}: {describe(sweep, found, with_noise=False)}."
        sentence += _head_to_head(sweep, key, ranked[0], ranked[1])
    if missing:
        sentence += f" No finished run has {key}={', '.join(missing)}."
    return sentence


def _head_to_head(sweep: Sweep, key: str, first: str, second: str) -> str:
    """Counts the configurations differing only in `key` where `first` beats `second` (means over seeds)."""
    others = [other for other in sweep.config_keys if other != key]
    means = {(tuple(c.values.get(k) for k in others), c.values.get(key)): c.mean_val_accuracy
             for c in sweep.ranked_configurations}  # fmt: skip
    pairs = [(means[rest, first], means[rest, second]) for rest, value in means if value == first
             and (rest, second) in means]  # fmt: skip
    if not pairs or not others:
        return ""
    ties = sum(_tie(a, b) for a, b in pairs)
    wins = sum(a > b and not _tie(a, b) for a, b in pairs)
    tied = f" ({ties} tied)" if ties else ""
    first, second = display(key, first), display(key, second)
    return f" {first} beats {second} in {wins} of {len(pairs)} configurations that differ only in {key}{tied}."


def _not_swept(sweep: Sweep) -> list[str]:
    sentences = []
    for key, consequence in _NOT_SWEPT.items():
        values = sweep.values(key)
        if key not in sweep.varying_keys and values:
            sentences.append(f"{key} was not swept (every run used {display(key, values[0])}), {consequence}.")
    return sentences


def _epochs(sweep: Sweep, finished: Sequence[RunSummary]) -> list[str]:
    """Fewest vs most epochs, per learning rate (or per value of the first other swept key)."""
    if "epochs" not in sweep.config_keys:
        return []
    epochs = sweep.values("epochs", finished)
    if len(epochs) < 2:
        return []
    fewest, most = epochs[0], epochs[-1]
    group_key = next((key for key in sweep.config_keys if key != "epochs"), None)
    rest = [key for key in sweep.config_keys if key not in ("epochs", group_key)]
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
        found = contrast(sweep, "epochs", fewest, most, where={group_key: group} if group_key else None)
        if found.verdict == WITHIN_NOISE:
            verdict = f"epochs={fewest} ({_f(a)}) and epochs={most} ({_f(b)}) are within noise of each other"
        elif _tie(a, b):
            verdict = f"epochs={fewest} and epochs={most} tie at final val_accuracy {_f(a)}"
        else:
            (first, x), (second, y) = sorted(((fewest, a), (most, b)), key=lambda item: -item[1])
            order = "fewer epochs beat more" if a > b else "more epochs beat fewer"
            verdict = f"{order}: epochs={first} reaches final val_accuracy {_f(x)}, epochs={second} {_f(y)}"
        sentence = f"{where}, {verdict}{averaged}; {named(sweep, found)}: {describe(sweep, found, with_noise=False)}"
        early = [run for run in many if run.best_epoch is not None and run.best_epoch < run.last_epoch]
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
        details = "; ".join(_overfit_detail(sweep, runs) for runs in _by_configuration(sweep, early))
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


def _by_configuration(sweep: Sweep, runs: Sequence[RunSummary]) -> list[list[RunSummary]]:
    """Groups runs by configuration (runs that differ only in the seed), in the order they come."""
    groups: dict[str, list[RunSummary]] = {}
    for run in runs:
        groups.setdefault(sweep.config_label(sweep.configuration_of(run)), []).append(run)
    return list(groups.values())


def _overfit_detail(sweep: Sweep, runs: Sequence[RunSummary]) -> str:
    run, config = runs[0], sweep.configuration_of(runs[0])
    if config.n > 1:
        epochs, grew = ", ".join(str(r.best_epoch) for r in runs), sum(_gap_grew(r) for r in runs)
        return (
            f"`{sweep.config_label(config)}` (in {len(runs)} of {config.n} seeds; lowest at epoch {epochs} of "
            f"{run.last_epoch}; the train-val accuracy gap grew in {grew} of {len(runs)})"
        )
    detail = f"`{sweep.label(run)}` (lowest at epoch {run.best_epoch} of {run.last_epoch}"
    if run.gap(run.best_epoch) is not None and run.gap() is not None:
        trend = "grew" if _gap_grew(run) else "did not grow"
        detail += (
            f"; the train-val accuracy gap {trend}: {_f(run.gap(run.best_epoch))} there, {_f(run.gap())} at the end"
        )
    return detail + ")"


def _gap_grew(run: RunSummary) -> bool:
    """Whether the train-val accuracy gap grew (as shown, to 4 decimals) from the best epoch to the last."""
    at_best, at_end = run.gap(run.best_epoch), run.gap()
    return at_best is not None and at_end is not None and at_end > at_best and not _tie(at_end, at_best)
