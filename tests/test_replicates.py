"""Replicate seeds end to end: a real sweep over `seed` on the offline digits, as a user runs it."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names
from tests.conftest import all_runs, run_cli

pytestmark = pytest.mark.slow


def test_a_short_replicate_sweep_learns_the_digits_and_tags_the_seeds_of_its_configuration(tmp_path: Path, store: str):
    # The demo preset (digits, 67x67) shrunk to 2 epochs of batch 32 with small dense layers, one lr, two seeds.
    result = run_cli(
        "-m", "experiment=demo", "optimizer.lr=1e-4", "epochs=2", "seed=0,1", "batch_size=32",
        "model.dense_units=[128,128]", f"dataset.data_dir={tmp_path / 'tfds'}", f"mlflow.tracking_uri={store}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(store)
    children = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags]
    assert sorted(run.info.run_name for run in children) == ["seed=0 (alexnet8)", "seed=1 (alexnet8)"]
    assert all(run.info.status == "FINISHED" for run in children)
    [tag] = {run.data.tags[names.TAG_CONFIGURATION] for run in children}
    assert re.fullmatch(r"alexnet8 \([0-9a-f]{8}\)", tag), "one configuration: the model and the config hash"
    assert re.search(r"\* \(all runs\) +2/2 +0\.\d{4} ± 0\.\d{4}", result.stdout)

    # It learns: chance is 0.1; measured here 0.90 after 2 epochs with seed 0.
    accuracies = [run.data.metrics["val_accuracy"] for run in children]
    assert sum(accuracies) / len(accuracies) > 0.6, accuracies


def test_the_seed_study_at_smoke_size_answers_each_claim_of_the_reference_study(tmp_path: Path, store: str):
    # The preset's grid without lr=5e-5 (lr x epochs x model: 8 configurations, 2 seeds: 16 jobs, about a minute), on
    # 32 digits per split, with the dense layers of both variants shrunk to 16 units (so here alexnet9 is alexnet8
    # renamed): the plumbing and the report's answers, not the study's results. Claim (b) needs lr=5e-5, so it
    # reads "not tested" here (its verdicts are tested on constructed runs in test_findings.py).
    result = run_cli(
        "-m", "experiment=seed_study", "optimizer.lr=1e-3,1e-4", "dataset=digits", "model.input_size=67",
        "model.dense_units=[16,16]", "seed=0,1", "batch_size=32",
        "dataset.train_split='train[:32]'", "dataset.val_split='validation[:32]'", "dataset.test_split='test[:32]'",
        "save_model=false", "precise_bn_images=0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=3",
        f"dataset.data_dir={tmp_path / 'tfds'}",
        f"mlflow.tracking_uri={store}", "hydra.sweep.dir=sweep", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(store)
    [parent] = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    children = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags]
    assert len(children) == 16 and all(run.info.status == "FINISHED" for run in children)
    seeds = defaultdict(set)
    for run in children:
        seeds[run.data.tags[names.TAG_CONFIGURATION]].add(run.data.params["seed"])
    assert len(seeds) == 8 and all(found == {"0", "1"} for found in seeds.values())

    report = (tmp_path / "sweep" / "report" / "report.md").read_text()
    claims = report.split("## The reference study's claims", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in claims.splitlines() if line.startswith("- (")]
    verdicts = "supported|contradicted|partly supported|within noise|unmeasured"
    pattern = rf"- \(([a-d])\) .+: \*\*({verdicts})[^*]*\*\*\. .*(95% CI|unmeasured).*"
    answered = [match.group(1) for line in lines if (match := re.fullmatch(pattern, line))]
    assert answered == ["a", "c", "d"], claims
    assert lines[1].startswith("- (b) lr 5e-5 reaches a lower loss") and "**not tested**: needs" in lines[1], claims
    assert parent.data.tags["best.configuration"] in seeds, "the parent names its best configuration"
