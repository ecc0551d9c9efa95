"""How people see params: short key names (`lr` for `optimizer.lr`), values as typed, and labels built from them.

Run names, the MLflow tag that groups replicates, and the report's labels all come from here, so a configuration
reads the same in the terminal, the MLflow UI and the report. Imports neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

# The keys people sweep most come first (heatmap rows, columns, then panels); other keys alphabetically; the seed
# last: it tells replicates of one configuration apart.
PREFERRED_KEYS = ("optimizer.lr", "epochs", "model.name")
SEED_KEY = "seed"


def key_order(key: str) -> tuple[int, str]:
    """Sort key of params in labels and reports: preferred keys, then the others alphabetically, then `seed`."""
    if key in PREFERRED_KEYS:
        return (PREFERRED_KEYS.index(key), "")
    return (len(PREFERRED_KEYS) + (key == SEED_KEY), key)


def format_lr(lr: float) -> str:
    """Formats a learning rate the way people type it: 1e-4, 5e-5, 3.2e-4."""
    mantissa, exponent = f"{lr:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def display(key: str, value: str) -> str:
    """Formats a param value for people: learning rates as typed (`1e-4`), long floats shortened, the rest as logged.

    A float a study sampled reads in 4 significant digits: `0.3534`, not `0.3533766075303111`.
    """
    try:
        number = float(value)
    except ValueError:
        return value
    if key.rsplit(".", 1)[-1] in ("lr", "learning_rate"):
        return format_lr(number)
    digits = value.lstrip("+-0.").replace(".", "").split("e")[0].split("E")[0]
    return f"{number:.4g}" if len(digits) > 6 and "." in value else value


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Maps dotted keys to their short names in labels: `lr`, `epochs`, `model` (for `model.name`).

    Keys whose short names would clash keep their full name.
    """

    def short(key: str) -> str:
        parts = key.split(".")
        return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]

    names = {key: short(key) for key in keys}
    clashes = {name for name, group in itertools.groupby(sorted(names.values())) if len(list(group)) > 1}
    return {key: key if name in clashes else name for key, name in names.items()}


def describe(params: Mapping[str, str], keys: Sequence[str]) -> str:
    """Labels params by `keys`, in report order: `lr=1e-4 epochs=10 seed=1` ('' for no keys)."""
    short = short_names(keys)
    return " ".join(f"{short[key]}={display(key, params.get(key, '?'))}" for key in sorted(keys, key=key_order))
