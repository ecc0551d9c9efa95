"""A study's search space from Hydra overrides, in the grammar of Hydra's official Optuna sweeper.

`optimizer.lr='tag(log, interval(1e-5, 1e-2))'` is a log-uniform float, `interval(0.2, 0.6)` a uniform one
(`int(interval(16, 4096))` an int), `choice(32, 64)` or a plain comma list `32,64` a categorical, `range(1, 10, 3)`
an int range with a step; a plain value is fixed for every trial. `hydra.sweeper.params` comes first and the
command line overrides it key by key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.redact import redact


@dataclass(frozen=True)
class SearchSpace:
    """The searched keys with their distributions, and the overrides every trial shares."""

    distributions: dict[str, BaseDistribution]
    fixed: tuple[str, ...]

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's Hydra overrides: the fixed ones, then one `key=value` per searched key."""
        return [*self.fixed, *(f"{key}={_as_override(params[key])}" for key in self.distributions)]

    def to_json(self) -> str:
        """Each searched key's distribution as Optuna serializes it (the parent run's `study.space` tag)."""
        return json.dumps({key: json.loads(distribution_to_json(dist)) for key, dist in self.distributions.items()})

    def identity(self) -> str:
        """A short hash of the space and the fixed overrides: the same command finds the same study."""
        return hashlib.sha256(f"{self.to_json()} {' '.join(self.fixed)}".encode()).hexdigest()[:8]

    def grid(self) -> dict[str, list[Any]]:
        """Every searched key's values, for `sampler=grid`.

        Raises:
            UserInputError: If a key is continuous (a grid cannot list an interval of floats).
        """
        values = {}
        for key, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                values[key] = list(dist.choices)
            elif isinstance(dist, IntDistribution) and not dist.log:
                values[key] = list(range(dist.low, dist.high + 1, dist.step))
            elif isinstance(dist, FloatDistribution) and dist.step is not None:
                count = round((dist.high - dist.low) / dist.step)
                values[key] = [dist.low + index * dist.step for index in range(count + 1)]
            else:
                raise UserInputError(
                    f"hydra.sweeper.params.{key}: sampler=grid lists values (a,b / choice(...) / range(...)); "
                    "an interval needs sampler=tpe, random or qmc"
                )  # fmt: skip
        return values


def parse_space(params: Mapping[str, Any] | None, arguments: Sequence[str], loader: ConfigLoader) -> SearchSpace:
    """Parses the search space from `hydra.sweeper.params` and the command line.

    Raises:
        UserInputError: On an override Hydra cannot parse, an empty interval or a sweep Optuna cannot sample
            (`glob(...)`), naming the override.
    """
    given = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    try:
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(given)
    except Exception as err:
        raise UserInputError(redact(f"search space {' '.join(given)}: {first_line(err)}")) from None
    merged: dict[str, Override] = {}
    for override in overrides:  # the command line overrides a preset's params key by key
        merged[override.get_key_element()] = override
    distributions: dict[str, BaseDistribution] = {}
    fixed = []
    for key, override in merged.items():
        if not override.is_sweep_override():
            fixed.append(f"{key}={override.get_value_element_as_str()}")
            continue
        try:
            distributions[key] = _distribution(override)
        except Exception as err:  # Optuna's and Hydra's checks (an empty interval, a glob without options)
            raise UserInputError(redact(f"{override.input_line}: {first_line(err)}")) from None
    if not distributions:
        raise UserInputError(
            f"search space {' '.join(given) or '(empty)'}: nothing to search; give a key a range, e.g. "
            "optimizer.lr='tag(log, interval(1e-5, 1e-2))' or batch_size=32,64"
        )  # fmt: skip
    return SearchSpace(distributions, tuple(fixed))


def _distribution(override: Override) -> BaseDistribution:
    value = override.value()
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    if override.is_range_sweep() and not value.shuffle:
        assert isinstance(value, RangeSweep)
        if any(isinstance(bound, float) for bound in (value.start, value.stop, value.step)):
            # range(a, b, s) excludes b as Python's does; Optuna's high is inclusive
            last = value.start + value.step * (len(list(override.sweep_iterator())) - 1)
            return FloatDistribution(float(value.start), float(last), step=float(value.step))
        values = list(range(int(value.start), int(value.stop), int(value.step)))
        if not values:
            raise ValueError("the range is empty")
        return IntDistribution(values[0], values[-1], step=int(value.step))
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        if any(not isinstance(choice, str | int | float | bool | type(None)) for choice in choices):
            raise ValueError("a choice lists plain values (numbers, strings, booleans, null)")
        return CategoricalDistribution(choices)
    raise ValueError("Optuna samples interval(...), tag(log, interval(...)), choice(...), range(...) or a,b lists")


def _as_override(value: Any) -> str:
    """A sampled value as Hydra's grammar reads it back (`null` for None, floats in full precision)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
