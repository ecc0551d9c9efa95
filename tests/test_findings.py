"""Findings and the reference study's claims, with their statistics, on sweeps written straight into a store."""

import random

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names
from alexnet_sweep.report import claims as claims_module
from alexnet_sweep.report.claims import CONTRADICTED, NOT_TESTED, SUPPORTED, TITLE, claims, claims_section, contrast
from alexnet_sweep.report.data import load_sweep
from alexnet_sweep.report.findings import STATISTICS, UNMEASURED_NOTE, findings
from alexnet_sweep.report.stats import REAL, UNMEASURED, WITHIN_NOISE, needed_n

BASE = {"dataset.name": "cifar10", "batch_size": "64", "optimizer.name": "adam", "model.name": "alexnet8",
        "epochs": "5", "seed": "0"}  # fmt: skip
LRS = {"1e-3": "0.001", "1e-4": "0.0001", "5e-5": "5e-05"}  # as typed, as logged


def write_sweep(client: MlflowClient, rows: list[tuple[dict, float, float]], experiment: str = "study") -> str:
    """Writes a sweep: one finished job run per (params, final val_accuracy, final val_loss); returns the parent id.

    Runs of 10 epochs overfit: their val_loss is lowest at epoch 7. The others are lowest at their last epoch.
    """
    experiment_id = client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name="sweep").info.run_id
    for job, (params, accuracy, loss) in enumerate(rows):
        params = {**BASE, **params}
        overrides = " ".join(f"{key}={value}" for key, value in params.items() if value != BASE.get(key))
        tags = {MLFLOW_PARENT_RUN_ID: parent, names.TAG_OVERRIDES: overrides, names.TAG_JOB_NUM: str(job)}
        run = client.create_run(experiment_id, start_time=1000 + job, tags=tags).info.run_id
        epochs = int(params["epochs"])
        val_loss = [loss + 0.1 * (epochs - epoch) for epoch in range(1, epochs + 1)]
        if epochs == 10:
            val_loss = [loss + 0.1 * abs(7 - epoch) - 0.05 for epoch in range(1, epochs + 1)]
            val_loss[-1] = loss
        history = {
            names.VAL_LOSS: val_loss,
            names.VAL_ACCURACY: [accuracy - 0.01 * (epochs - epoch) for epoch in range(1, epochs + 1)],
            names.ACCURACY: [accuracy + 0.02 * epoch / epochs for epoch in range(1, epochs + 1)],
        }
        metrics = [Metric(key, value, 0, step) for key, values in history.items()
                   for step, value in enumerate(values, start=1)]  # fmt: skip
        metrics.append(Metric(names.TEST_ACCURACY, accuracy - 0.01, 0, 0))
        client.log_batch(run, metrics=metrics, params=[Param(key, value) for key, value in params.items()])
        client.set_terminated(run, "FINISHED")
    return parent


def two_lrs(client, better: list[float], worse: list[float], experiment: str = "study") -> str:
    """lr=1e-4 with `better` and lr=1e-3 with `worse` final val_accuracy, seeds 0, 1, ... in order."""
    rows = [({"optimizer.lr": LRS[lr], "seed": str(seed)}, value, 1.0)
            for lr, values in (("1e-4", better), ("1e-3", worse)) for seed, value in enumerate(values)]  # fmt: skip
    return write_sweep(client, rows, experiment)


def seed_study(seeds: int = 3) -> list[tuple[dict, float, float]]:
    """A constructed `experiment=seed_study` sweep: lr x epochs x model x seeds.

    Claim (a) is true (1e-4 beats 1e-3 by 0.20), (b) false (5e-5 has the lower accuracy, but a higher val_loss than
    1e-4: the opposite of its claim is real), (c) within noise (epochs change nothing), (d) true (alexnet9 is 0.04
    better everywhere). The noise is Gaussian with sd 0.005 (0.02 for val_loss).
    """
    rng = random.Random(3)
    accuracy = {"1e-3": 0.50, "1e-4": 0.70, "5e-5": 0.62}
    loss = {"1e-3": 1.20, "1e-4": 0.80, "5e-5": 0.90}
    rows = []
    for lr in LRS:
        for epochs in ("5", "10"):
            for model in ("alexnet8", "alexnet9"):
                for seed in range(seeds):
                    params = {"optimizer.lr": LRS[lr], "epochs": epochs, "model.name": model, "seed": str(seed)}
                    value = accuracy[lr] + (0.04 if model == "alexnet9" else 0) + rng.gauss(0, 0.005)
                    rows.append((params, value, loss[lr] + rng.gauss(0, 0.02)))
    return rows


@pytest.fixture
def client(store):
    return MlflowClient(store)


@pytest.fixture(scope="module")
def study(shared_store):
    """The constructed seed study with 3 seeds, written once for the tests that only read it."""
    client, _ = shared_store("study")
    return load_sweep(client, write_sweep(client, seed_study()))


def test_a_real_difference_is_real(client):
    sweep = load_sweep(client, two_lrs(client, [0.81, 0.79, 0.80], [0.50, 0.51, 0.49]))
    found = contrast(sweep, "optimizer.lr", "0.0001", "0.001")
    assert (found.verdict, found.comparison.test, found.comparison.n_a) == (REAL, "paired t-test", 3)
    assert found.comparison.difference == pytest.approx(0.30)
    text = findings(sweep)
    assert STATISTICS in text and UNMEASURED_NOTE not in text
    lr = next(sentence for sentence in text if sentence.startswith("Best optimizer.lr: 1e-4"))
    assert "lr=1e-4 - lr=1e-3: +0.3000 (95% CI +0.2570 to +0.3430), paired t-test over 3 pairs (same seed), " in lr
    assert lr.endswith("p = 0.0011: real.")  # t = 0.30 / (0.01732 / sqrt(3)) = 30.0 on 2 df


def test_a_pure_noise_difference_is_within_noise_with_the_seeds_it_would_need(client):
    # The same distribution on both sides: the differences by seed are -0.02, +0.03, +0.02 (mean 0.01, sd 0.0265).
    sweep = load_sweep(client, two_lrs(client, [0.70, 0.73, 0.71], [0.72, 0.70, 0.69]))
    found = contrast(sweep, "optimizer.lr", "0.0001", "0.001")
    assert found.verdict == WITHIN_NOISE and found.comparison.p_value > 0.5
    seeds = needed_n(0.01, 0.026457513110645904, paired=True)
    assert found.seeds_needed == seeds and 55 <= seeds <= 60  # normal approximation: (2.8016 / 0.378)^2 = 55
    lr = next(sentence for sentence in findings(sweep) if sentence.startswith("Best optimizer.lr: 1e-4"))
    assert f"p = 0.58: within noise; about {seeds} seeds per configuration would resolve a difference this size" in lr


def test_one_seed_per_configuration_leaves_the_noise_unmeasured(client):
    sweep = load_sweep(client, two_lrs(client, [0.81], [0.50]))
    assert contrast(sweep, "optimizer.lr", "0.0001", "0.001").verdict == UNMEASURED
    text = findings(sweep)
    assert UNMEASURED_NOTE in text and STATISTICS not in text
    assert "run the sweep again with seed=0,1,2" in UNMEASURED_NOTE
    lr = next(sentence for sentence in text if sentence.startswith("Best optimizer.lr: 1e-4"))
    assert lr.endswith("lr=1e-4 - lr=1e-3: +0.3100.") and "p =" not in lr and "noise" not in lr
    assert not any("Seed noise" in sentence for sentence in text)
    answered = {claim.label: claim for claim in claims(sweep)}
    assert answered["a"].verdict == UNMEASURED and "**noise unmeasured (one seed)**" in answered["a"].line
    assert "+0.3100, the claimed way" in answered["a"].line


def test_identical_replicates_measure_no_noise(client):
    sweep = load_sweep(client, two_lrs(client, [0.8, 0.8, 0.8], [0.5, 0.5, 0.5]))
    found = contrast(sweep, "optimizer.lr", "0.0001", "0.001")
    assert found.verdict == UNMEASURED and found.comparison.reason == "every seed gave the same value"


def test_seed_study_findings(study):
    text = findings(study)
    assert text[0] == "36 of 36 jobs finished." and text[1] == STATISTICS
    noise = next(sentence for sentence in text if sentence.startswith("Seed noise: across 3 seeds the sd of final"))
    assert "(pooled over 12 configurations; up to " in noise
    best = next(sentence for sentence in text if sentence.startswith("The best configuration"))
    assert best.startswith("The best configuration by mean final val_accuracy is `lr=1e-4 epochs=")
    assert "model=alexnet9`" in best and "against the runner-up `lr=1e-4 epochs=" in best
    lr = next(sentence for sentence in text if sentence.startswith("Best optimizer.lr: 1e-4"))
    assert "over 12 pairs (same seed, epochs, model)" in lr and ": real." in lr
    assert "1e-4 beats 5e-5 in 4 of 4 configurations that differ only in optimizer.lr." in lr
    epochs = [sentence for sentence in text if sentence.startswith("With optimizer.lr=")]
    assert len(epochs) == 3 and all("are within noise of each other (mean over model.name)" in s for s in epochs)
    assert all("paired t-test over 6 pairs (same seed, model)" in s for s in epochs)
    assert all("; in 6 of 6 epochs=10 runs val_loss was lowest before the last epoch." in s for s in epochs)
    overfit = next(sentence for sentence in text if sentence.startswith("Signs of overfitting in 18 of 36 runs"))
    assert "`lr=1e-3 epochs=10 model=alexnet8` (in 3 of 3 seeds; lowest at epoch 7, 7, 7 of 10;" in overfit


def test_seed_study_claims_have_the_constructed_verdicts(study):
    answered = {claim.label: claim for claim in claims(study)}
    assert {label: claim.verdict for label, claim in answered.items()} == {
        "a": SUPPORTED, "b": CONTRADICTED, "c": WITHIN_NOISE, "d": SUPPORTED,
    }  # fmt: skip
    a, b, c, d = answered.values()
    assert [found.comparison.n_a for found in a.contrasts] == [12]  # pairs: epochs x model x seed
    assert [(found.metric, found.verdict) for found in b.contrasts] == [(names.VAL_LOSS, REAL),
                                                                       (names.VAL_ACCURACY, REAL)]  # fmt: skip
    assert b.contrasts[0].comparison.difference > 0 > b.contrasts[1].comparison.difference
    assert c.contrasts[0].seeds_needed is not None and "seeds per configuration would resolve" in c.line
    assert "val_loss lowest before the last epoch in 18 of 18 epochs=10 runs" in c.line
    assert d.contrasts[0].comparison.n_a == 3 and d.contrasts[0].comparison.difference == pytest.approx(0.04, abs=0.01)
    assert d.line.startswith(
        "(d) alexnet9 is slightly better than alexnet8 at lr 1e-4, 5 epochs: **supported**. At optimizer.lr=1e-4, "
        "epochs=5: final val_accuracy model=alexnet9 - model=alexnet8: +0.0"
    )
    assert "**contradicted (the opposite is a real difference)**" in b.line
    lines = claims_section(study)
    assert lines[0] == f"## {TITLE}" and [line[:6] for line in lines if line.startswith("- (")] == [
        "- (a) ", "- (b) ", "- (c) ", "- (d) ",
    ]  # fmt: skip


def test_claims_whose_values_were_not_run_say_what_they_need(client):
    sweep = load_sweep(client, two_lrs(client, [0.81, 0.79, 0.80], [0.50, 0.51, 0.49]))
    answered = {claim.label: claim for claim in claims(sweep)}
    assert answered["a"].verdict == SUPPORTED
    assert {label: claim.verdict for label, claim in answered.items() if label != "a"} == dict.fromkeys(
        "bcd", NOT_TESTED
    )
    assert answered["b"].line.endswith("**not tested**: needs optimizer.lr=5e-5,1e-4.")
    assert answered["c"].line.endswith("**not tested**: needs epochs=5,10.")
    assert answered["d"].line.endswith("**not tested**: needs model=alexnet8,alexnet9.")


def test_no_claims_section_without_lr_epochs_or_model_varying(client):
    rows = [({"seed": str(seed)}, 0.6 + 0.01 * seed, 1.0) for seed in range(3)]
    sweep = load_sweep(client, write_sweep(client, rows))
    assert claims(sweep) == [] and claims_section(sweep) == []
    assert claims_module.CLAIM_KEYS == ("optimizer.lr", "epochs", "model.name")
