"""A study's text: report.md's Study and Pruned trials sections, and trials.csv (one row per trial)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from alexnet_sweep import names
from alexnet_sweep.labels import display
from alexnet_sweep.report.data import Sweep
from alexnet_sweep.report.study import COMPLETE, FAIL, IMPORTANCE_SEED, PRUNED, Study, Trial, param_key, state_counts
from alexnet_sweep.report.study_figures import FIGURES
from alexnet_sweep.report.text import cell, number, plain, table

_STATE_WORDS = {COMPLETE: "complete", PRUNED: "pruned", FAIL: "failed"}


def study_section(study: Study, figures: Sequence[str]) -> list[str]:
    """Returns report.md's Study section: settings, trials by state, the best trial, importances, its figures.

    Args:
        study: The study (`study.load_study`).
        figures: The names of the study's figures that were drawn (`study_figures.FIGURES` keys); others are left out.

    Returns:
        The section's lines, ending with a blank line.
    """
    counts = ", ".join(f"{count} {_STATE_WORDS.get(state, state.lower())}" for state, count in
                       state_counts(study.trials).items())  # fmt: skip
    spent = sum(trial.epochs for trial in study.trials)
    lines = [
        "## Study",
        "",
        f"Optuna study `{cell(study.name)}` (storage `{cell(study.storage or '?')}`): sampler "
        f"{cell(study.sampler or '?')}, pruner {cell(study.pruner or '?')}, objective {study.direction} "
        f"{study.metric} (a trial's final value). Pruned trials are listed apart and never ranked.",
        "",
        f"Trials: {len(study.trials)} ({counts}); {spent:g} epochs spent in all, pruned and failed trials included.",
        "",
        "Searched: " + ("; ".join(f"`{key}` {_distribution(dist)}" for key, dist in study.space.items()) or "?") + ".",
        "",
        _best(study),
        "",
        _importances(study),
        "",
    ]
    for name in figures:
        if name in FIGURES:
            lines += [f"![{FIGURES[name][0]}]({name})", ""]
    lines += ["Every trial with its state, searched values and value: [trials.csv](trials.csv).", ""]
    return lines


def pruned_section(sweep: Sweep, study: Study | None) -> list[str]:
    """Returns report.md's Pruned trials section, or [] when no run was pruned.

    One row per pruned run: its trial (or job) number, searched values (a sweep's swept keys outside a study), why
    and at which epoch it was pruned, the epochs it trained and its last val_accuracy.
    """
    pruned = [run for run in sweep.runs if run.pruned is not None]
    if not pruned:
        return []
    keys = study.keys if study is not None and study.keys else sweep.swept_keys
    rows = []
    for run in pruned:
        trial = ", ".join(str(number) for number in run.trial_numbers) or run.job_num
        values = [display(param_key(key, run.params), run.params.get(param_key(key, run.params), "")) for key in keys]
        last = run.history.get(names.VAL_ACCURACY, {})
        val = last[max(last)] if last else run.metrics.get(names.VAL_ACCURACY)
        epochs = run.metrics.get(names.EPOCHS_TRAINED)
        rows.append([trial, *values, run.pruned, "" if epochs is None else f"{epochs:g}", number(val),
                     f"`{run.run_id}`"])  # fmt: skip
    header = ["trial", *keys, "pruned", "epochs trained", "last val_accuracy", "run_id"]
    return [
        "## Pruned trials",
        "",
        "Stopped early by the study's pruner: their curves are kept in MLflow, their numbers are never ranked with "
        "runs that finished.",
        "",
        *table(header, rows),
        "",
    ]


def write_trials_csv(study: Study, path: Path) -> None:
    """Writes one row per trial, in trial order: number, state, searched values (as logged), value, epochs, why.

    Columns: `number`, `state`, every searched key, the objective's metric (a complete trial's final value, a
    pruned trial's last one), `epochs_trained` (0 for a trial that reused an earlier trial's run), `reason` (the
    `pruned` tag or the error), `run_id`.

    Args:
        study: The study.
        path: The CSV file to write (replaced if it exists).
    """
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["number", "state", *study.keys, study.metric, "epochs_trained", "reason", "run_id"])
        for trial in study.trials:
            writer.writerow([trial.number, trial.state, *(trial.values.get(key, "") for key in study.keys),
                             plain(trial.value), f"{trial.epochs:g}", trial.reason, trial.run.run_id])  # fmt: skip


def _best(study: Study) -> str:
    best = study.best
    if best is None:
        return "Best trial: none yet, no trial completed."
    return (f"Best trial: {best.number}, {study.metric} {number(best.value)}, with {_values(best)} "
            f"(run `{best.run.run_id}`).")  # fmt: skip


def _values(trial: Trial) -> str:
    return " ".join(f"{key}={display(param_key(key, trial.run.params), value)}" for key, value in trial.values.items())


def _importances(study: Study) -> str:
    found = study.importances
    if found.note:
        return found.note
    listing = ", ".join(f"`{key}` {value:.2f}" for key, value in found.values.items())
    return (f"Parameter importances (Optuna's fANOVA, seed {IMPORTANCE_SEED}, over {found.trials} complete trials; "
            f"they sum to 1): {listing}.")  # fmt: skip


def _distribution(dist: object) -> str:
    """Describes a distribution: `float in [1e-05, 0.01], log`, `int in [1, 9] step 2`, `one of 32, 64`."""
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return "one of " + ", ".join(str(choice) for choice in choices)
    kind = "int" if type(dist).__name__ == "IntDistribution" else "float"
    text = f"{kind} in [{dist.low:g}, {dist.high:g}]"
    if getattr(dist, "log", False):
        text += ", log"
    step = getattr(dist, "step", None)
    if step is not None and (kind == "float" or step != 1):
        text += f", step {step:g}"
    return text
