"""What a sweep's job runs are called and how replicates are grouped in MLflow.

A job's run name leads with what the sweep varies (`lr=5e-5 epochs=10 seed=1 (alexnet8)`), so the MLflow UI's
narrow run column shows the part that tells runs apart. Every job run also gets the tag `configuration`: its swept
values but the seed, and the hash of its whole config without the seed. Runs with the same tag differ only in their
seed, so the UI's "Group by" on it shows one row per configuration with aggregated values and bands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alexnet_sweep import names
from alexnet_sweep.labels import SEED_KEY, describe
from alexnet_sweep.plan import identity
from alexnet_sweep.sweep.grid import Job

HASH_SHOWN = 8  # characters of the config hash in the `configuration` tag: unique enough within an experiment


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Returns the params the grid's overrides vary (`model=a,b` varies `model.name`), not those that follow.

    Args:
        jobs: The grid's jobs; refused ones are ignored.
    """
    accepted = [job for job in jobs if job.refused is None]
    values: dict[str, set[str]] = {}
    for job in accepted:
        for token in job.overrides:
            key, _, value = token.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    params = accepted[0].params if accepted else {}
    keys = [key if key in params else f"{key}.name" for key, seen in values.items() if len(seen) > 1]
    return [key for key in keys if key in params]


def run_name(params: Mapping[str, str], swept: Sequence[str]) -> str:
    """Names a job's run by its swept values, then the model if it is not swept: `lr=1e-4 seed=2 (alexnet8)`."""
    keys = list(swept) or ["optimizer.lr", "epochs"]  # a sweep of one job: what people look for first
    label, model = describe(params, keys), params.get("model.name")
    return label if "model.name" in keys or not model else f"{label} ({model})"


def configuration_tag(params: Mapping[str, str], swept: Sequence[str]) -> dict[str, str]:
    """The tag that groups a job's run with its replicates: `lr=1e-4 epochs=10 (3fa2c1d0)`.

    The label is the swept values but the seed (the model when nothing else is swept); the hash, of the whole
    config without the seed, keeps configurations of different sweeps apart when their labels agree.
    """
    keys = [key for key in swept if key != SEED_KEY]
    label = describe(params, keys) or params.get("model.name", "")
    return {names.TAG_CONFIGURATION: f"{label} ({identity(params, without=(SEED_KEY,))[:HASH_SHOWN]})".strip()}
