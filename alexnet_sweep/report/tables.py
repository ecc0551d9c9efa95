"""The per-configuration table of a sweep: n, mean, sd and 95% interval of each final metric over its seeds.

One row per configuration (the runs that differ only in `seed`), ranked configurations first (best first, by mean
final val_accuracy), then those with no finished replicate in job order. The same rows become `configs.csv`, the
parent run's `report/configurations.json` (an MLflow table) and report.md's "Configurations" table.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep
from alexnet_sweep.report.runs import SEED_KEY, Configuration
from alexnet_sweep.report.stats import Summary, summarize

STAT_METRICS = (names.VAL_ACCURACY, names.TEST_ACCURACY, names.VAL_LOSS, names.TEST_LOSS)
STAT_FIELDS = ("mean", "sd", "ci_low", "ci_high")  # configs.csv columns <metric>_<field>


@dataclass(frozen=True)
class ConfigRow:
    """One configuration of a sweep with the statistics of its finished replicates.

    Attributes:
        config: The configuration.
        label: Its label, e.g. `lr=1e-4 epochs=10` (`Sweep.config_label`).
        rank: 1 for the best configuration, 2 for the next, ...; None when no replicate finished.
        is_best: Whether it is the sweep's best configuration (highest mean final val_accuracy).
        stats: {metric: summary of its final values over the finished replicates that logged it}.
    """

    config: Configuration
    label: str
    rank: int | None
    is_best: bool
    stats: Mapping[str, Summary]

    @property
    def n(self) -> int:
        """How many replicates finished (the seeds its statistics are computed from)."""
        return self.config.n


def config_rows(sweep: Sweep) -> list[ConfigRow]:
    """Returns one row per configuration: ranked ones best first, then those with no finished replicate.

    Args:
        sweep: The sweep (`data.load_sweep`).

    Returns:
        The rows.
    """
    best = sweep.best_configuration
    ranked = list(sweep.ranked_configurations)
    unranked = [config for config in sweep.configurations if config.n == 0]
    rows = []
    for index, config in enumerate([*ranked, *unranked]):
        stats = {metric: summarize(values) for metric in STAT_METRICS if (values := config.final(metric))}
        rank = index + 1 if config.n else None
        rows.append(ConfigRow(config, sweep.config_label(config), rank, config is best, stats))
    return rows


def config_columns(sweep: Sweep) -> tuple[str, ...]:
    """Returns the params that tell configurations apart: the varying keys but `seed` and the keys that follow it.

    Keys that follow a swept key (`model.dense_units` with `model.name`) are kept: they are one value per
    configuration, as in runs.csv.
    """
    return tuple(key for key in sweep.varying_keys if key != SEED_KEY and sweep.followers.get(key) != SEED_KEY)


def config_records(sweep: Sweep) -> list[dict[str, object]]:
    """Returns the configuration table as records: one dict per `config_rows` row, in its order.

    Keys: `rank`, `configuration` (the label), `is_best`, every `config_columns` param (as logged), `n` (finished
    replicates), `runs` (all its job runs), then `<metric>_mean`, `_sd`, `_ci_low`, `_ci_high` for each of
    val_accuracy, test_accuracy, val_loss and test_loss. A missing or undefined number (sd of one seed) is None.
    """
    columns = config_columns(sweep)
    records = []
    for row in config_rows(sweep):
        params = row.config.runs[0].params
        record: dict[str, object] = {"rank": row.rank, "configuration": row.label, "is_best": row.is_best}
        record |= {key: params.get(key) for key in columns}
        record |= {"n": row.n, "runs": len(row.config.runs)}
        for metric in STAT_METRICS:
            summary = row.stats.get(metric)
            numbers = (summary.mean, summary.sd, summary.low, summary.high) if summary else (None,) * 4
            record |= {f"{metric}_{field}": _defined(x) for field, x in zip(STAT_FIELDS, numbers, strict=True)}
        records.append(record)
    return records


def write_configs_csv(sweep: Sweep, path: Path) -> None:
    """Writes `config_records` as CSV: one row per configuration, best first; None and NaN as empty cells.

    Args:
        sweep: The sweep.
        path: The CSV file to write (replaced if it exists).
    """
    records = config_records(sweep)
    header = list(records[0]) if records else ["rank", "configuration", "is_best", "n", "runs"]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for record in records:
            writer.writerow([_csv(record[key]) for key in header])


def _defined(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _csv(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
