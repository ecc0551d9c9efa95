"""The report of an Optuna study (`hydra/sweeper=optuna`), on trials written straight into a SQLite store (no
training, no Optuna storage): pruned trials apart and never ranked, the Study section, best so far, importances,
trials.csv and the study's figures.
"""

import csv
import json
import logging
import math

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.distributions import CategoricalDistribution, FloatDistribution, distribution_to_json

from alexnet_sweep import names, report
from alexnet_sweep.report import study_figures
from alexnet_sweep.report.study import COMPLETE, FAIL, PRUNED, Progress, Study, Trial, param_importances
from tests.test_report import BASE_PARAMS, PNG, sections

SPACE = {
    "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
    "batch_size": CategoricalDistribution([32, 64]),
    "model.dropout": FloatDistribution(0.2, 0.6),
}
EPOCHS = 4
PRUNED_AT_1 = "at epoch 1: val_accuracy 0.9500 below the median 0.9600 of 2 trials"  # the highest val_accuracy
PRUNED_AT_2 = "at epoch 2: val_accuracy 0.3000 below the median 0.5500 of 4 trials"
OOM = "ResourceExhaustedError: OOM when allocating tensor"
# number -> (lr, batch_size, dropout, state). A complete trial's val_accuracy depends on lr only, peaking at 1e-3
# (trial 6 is best); batch_size and dropout move it by less than 0.01 (`objective`). fANOVA needs several trials to
# tell a real effect from the spurious ones of a few points: with these 8 complete trials lr's importance is 0.6.
TRIALS = {
    0: ("0.0001", "64", "0.35", COMPLETE),
    1: ("1e-05", "64", "0.45", COMPLETE),
    2: ("0.005", "64", "0.4", PRUNED),
    3: ("0.0005", "64", "0.2", COMPLETE),
    4: ("2e-05", "32", "0.25", COMPLETE),
    5: ("0.008", "32", "0.45", PRUNED),
    6: ("0.001", "64", "0.5", COMPLETE),
    7: ("0.003", "32", "0.3", COMPLETE),
    8: ("0.0007", "32", "0.6", FAIL),
    9: ("5e-05", "32", "0.55", COMPLETE),
    10: ("0.0002", "32", "0.6", COMPLETE),
}
PRUNED_RUNS = {2: (PRUNED_AT_1, 1, 0.95), 5: (PRUNED_AT_2, 2, 0.30)}  # number -> reason, epochs trained, last val


def objective(lr: str, batch_size: str, dropout: str) -> float:
    return 0.9 - 0.05 * (math.log10(float(lr)) + 3) ** 2 + 0.004 * (batch_size == "64") + 0.01 * (float(dropout) - 0.4)


def epochs_of(number: int) -> int:
    """Epochs a trial trained: all of them when complete, until pruned, one before its failure."""
    state = TRIALS[number][3]
    return EPOCHS if state == COMPLETE else PRUNED_RUNS[number][1] if state == PRUNED else 1


def make_study(client, trials=TRIALS, experiment="study", artifacts=None, state_tag=True) -> tuple[str, dict]:
    """Writes a study's parent run and one job run per trial; returns the parent id and {trial number: run id}."""
    experiment_id = client.create_experiment(experiment, artifacts)
    space = json.dumps({key: json.loads(distribution_to_json(dist)) for key, dist in SPACE.items()})
    parent = client.create_run(experiment_id, start_time=1000, run_name="study lr batch_size dropout", tags={
        names.TAG_STUDY: "alexnet-lr", names.TAG_STUDY_STORAGE: "sqlite:///optuna.db", names.TAG_STUDY_SPACE: space,
        names.TAG_STUDY_SAMPLER: "tpe (seed 0)", names.TAG_STUDY_PRUNER: "median",
        names.TAG_STUDY_OBJECTIVE: f"maximize {names.VAL_ACCURACY}",
    }).info.run_id  # fmt: skip
    ids = {}
    for number, (lr, batch_size, dropout, state) in trials.items():
        params = {**BASE_PARAMS, "optimizer.lr": lr, "batch_size": batch_size, "model.dropout": dropout,
                  "model.name": "alexnet8", "epochs": str(EPOCHS), "seed": "0"}  # fmt: skip
        tags = {MLFLOW_PARENT_RUN_ID: parent, names.TAG_JOB_NUM: str(number), names.TAG_TRIAL: str(number),
                names.TAG_OVERRIDES: f"optimizer.lr={lr} batch_size={batch_size} model.dropout={dropout}"}  # fmt: skip
        if state_tag and state != "RUNNING":
            tags[names.TAG_TRIAL_STATE] = state
        final = PRUNED_RUNS[number][2] if state == PRUNED else objective(lr, batch_size, dropout)
        epochs = epochs_of(number) if state != "RUNNING" else 2
        metrics = []
        for epoch in range(1, epochs + 1):
            val = final - 0.05 * (epochs - epoch)
            values = {
                names.VAL_ACCURACY: val,
                names.VAL_LOSS: 2 - val,
                names.ACCURACY: val + 0.02,
                names.LOSS: 1.9 - val,
            }
            metrics += [Metric(key, value, 0, epoch) for key, value in values.items()]
        if state in (COMPLETE, PRUNED):
            metrics.append(Metric(names.EPOCHS_TRAINED, epochs, 0, 0))
        if state == COMPLETE:
            metrics.append(Metric(names.TEST_ACCURACY, final - 0.01, 0, 0))
        if state == PRUNED:
            tags[names.TAG_PRUNED] = PRUNED_RUNS[number][0]
        if state == FAIL:
            tags[names.TAG_ERROR] = OOM
        run = client.create_run(experiment_id, start_time=2000 + number, tags=tags).info.run_id
        client.log_batch(run, metrics=metrics, params=[Param(key, value) for key, value in params.items()])
        if state != "RUNNING":
            client.set_terminated(run, "FAILED" if state == FAIL else "FINISHED")
        ids[number] = run
    client.set_terminated(parent, "FINISHED")
    return parent, ids


@pytest.fixture(scope="module")
def studied(shared_store):
    """The study of TRIALS and its report, shared by the tests that only read them."""
    client, folder = shared_store("study")
    parent_id, ids = make_study(client, artifacts=str(folder / "mlruns"))
    return client, parent_id, ids, report.write_report(client, parent_id, folder / "out")


def test_pruned_runs_are_never_ranked(studied):
    client, parent_id, ids, rep = studied
    pruned = {ids[number] for number in PRUNED_RUNS}
    sweep = rep.sweep
    assert not pruned & {run.run_id for run in sweep.ranked}
    assert not pruned & {run.run_id for config in sweep.ranked_configurations for run in config.finished}
    assert sweep.best.run_id == ids[6] and rep.study.best.number == 6, "not trial 2, pruned at 0.95"
    with rep.configs_csv.open(newline="") as file:
        ranked = [row["optimizer.lr"] for row in csv.DictReader(file) if row["rank"]]
    assert sorted(ranked) == sorted(lr for lr, _, _, state in TRIALS.values() if state == COMPLETE)
    parts = sections(rep.markdown.read_text())
    for lr in ("5e-3", "8e-3"):
        assert f"lr={lr}" not in parts["Findings"] and f"| {lr} |" not in parts["Configurations by mean val_accuracy"]
    assert all(ids[number] not in parts["Runs"] for number in PRUNED_RUNS)
    assert "8 of 11 jobs finished; 2 were pruned (listed under Pruned trials, never ranked)" in parts["Findings"]
    assert "0.9500" not in parts["Findings"]
    assert "optimizer.lr: 8 values with one run each, best 1e-3 (0.9050)" in parts["Findings"], "not listed one by one"
    report.log_to_parent(client, parent_id, rep)
    parent = client.get_run(parent_id).data
    assert parent.tags[names.TAG_BEST_RUN] == ids[6]
    assert parent.metrics["best.val_accuracy"] == pytest.approx(objective(*TRIALS[6][:3]))


def test_pruned_trials_are_listed_apart(studied):
    _, _, ids, rep = studied
    parts = sections(rep.markdown.read_text())
    pruned = parts["Pruned trials"]
    header = "| trial | optimizer.lr | batch_size | model.dropout | pruned | epochs trained | last val_accuracy |"
    assert header in pruned
    assert f"| 2 | 5e-3 | 64 | 0.4 | {PRUNED_AT_1} | 1 | 0.9500 | `{ids[2]}` |" in pruned
    assert f"| 5 | 8e-3 | 32 | 0.45 | {PRUNED_AT_2} | 2 | 0.3000 | `{ids[5]}` |" in pruned
    failed = parts["Failed and unfinished jobs"]
    assert ids[8] in failed and OOM in failed and ids[2] not in failed and ids[5] not in failed


def test_study_section(studied):
    _, _, ids, rep = studied
    section = sections(rep.markdown.read_text())["Study"]
    assert "Optuna study `alexnet-lr` (storage `sqlite:///optuna.db`): sampler tpe (seed 0), pruner median" in section
    assert "objective maximize val_accuracy" in section
    spent = sum(epochs_of(number) for number in TRIALS)
    assert f"Trials: 11 (8 complete, 2 pruned, 1 failed); {spent} epochs spent in all" in section
    assert "`optimizer.lr` float in [1e-05, 0.01], log; `batch_size` one of 32, 64;" in section
    best = f"{objective(*TRIALS[6][:3]):.4f}"
    assert f"Best trial: 6, val_accuracy {best}, with optimizer.lr=1e-3 batch_size=64 model.dropout=0.5" in section
    assert f"(run `{ids[6]}`)" in section
    assert "Parameter importances (Optuna's fANOVA, seed 0, over 8 complete trials" in section
    for name in study_figures.FIGURES:
        assert f"]({name})" in section


def test_best_so_far_in_trial_order_and_epochs_spent(studied):
    study = studied[3].study
    progress = study.progress()
    assert progress.numbers == sorted(TRIALS)
    best, expected = None, []
    for lr, batch_size, dropout, state in TRIALS.values():
        if state == COMPLETE:
            best = max(best or 0, objective(lr, batch_size, dropout))
        expected.append(best)
    assert progress.best == pytest.approx(expected)
    cumulative = [sum(epochs_of(n) for n in TRIALS if n <= number) for number in TRIALS]
    assert progress.epochs == cumulative  # pruned and failed trials spend epochs too


def test_best_so_far_of_a_minimized_objective():
    trials = tuple(Trial(n, None, state, {}, value, 1.0) for n, state, value in
                   [(0, COMPLETE, 1.5), (1, PRUNED, 0.1), (2, COMPLETE, 1.7), (3, COMPLETE, 1.2)])  # fmt: skip
    study = Study("s", "", "", "", "minimize", names.VAL_LOSS, {}, trials)
    assert study.progress() == Progress([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 1.5, 1.2])
    assert study.best.number == 3


def test_importances_rank_lr_first_and_are_reproducible(studied):
    study = studied[3].study
    found = study.importances
    assert found.note is None and found.trials == 8
    assert max(found.values, key=found.values.get) == "optimizer.lr"
    assert set(found.values) == set(SPACE) and sum(found.values.values()) == pytest.approx(1)
    assert param_importances(study).values == found.values, "seeded: the same numbers again"


def test_trials_csv_has_one_row_per_trial(studied):
    _, _, ids, rep = studied
    with rep.trials_csv.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["number"]) for row in rows] == sorted(TRIALS)
    assert [row["state"] for row in rows] == [state for *_, state in TRIALS.values()]
    assert list(rows[0])[:5] == ["number", "state", "optimizer.lr", "batch_size", "model.dropout"]
    assert [row["run_id"] for row in rows] == [ids[number] for number in TRIALS]
    pruned, failed = rows[2], rows[8]
    assert (pruned["reason"], pruned["epochs_trained"], float(pruned[names.VAL_ACCURACY])) == (PRUNED_AT_1, "1", 0.95)
    assert (failed["reason"], failed[names.VAL_ACCURACY], failed["epochs_trained"]) == (OOM, "", "1")
    assert float(rows[6][names.VAL_ACCURACY]) == pytest.approx(objective(*TRIALS[6][:3]))


def test_study_figures_are_written_and_linked(studied):
    rep = studied[3]
    names_ = {path.name for path in rep.figures}
    assert names_ == {*study_figures.FIGURES, "validation_curves.png", "overfitting.png"}, "no heatmap of intervals"
    assert sorted(rep.out_dir.iterdir()) == sorted(rep.files) and rep.trials_csv in rep.files
    for figure in rep.figures:
        assert figure.read_bytes()[:8] == PNG
    text = rep.markdown.read_text()
    assert "test_accuracy_heatmap.png" not in text and "](study_importances.png)" in text


def test_one_complete_trial_says_not_enough_trials(store, tmp_path, caplog):
    client = MlflowClient(store)
    trials = {0: TRIALS[0], 1: ("0.0001", "64", "0.3", "RUNNING")}  # a running trial has no trial.state yet
    parent_id, _ = make_study(client, trials)
    with caplog.at_level(logging.INFO, logger="alexnet_sweep.report"):
        rep = report.write_report(client, parent_id, tmp_path / "out")
    text = rep.markdown.read_text()
    assert "Not enough trials for parameter importances: 1 complete, 2 needed." in sections(text)["Study"]
    assert "Trials: 2 (1 complete, 0 pruned, 0 failed, 1 running)" in text
    assert "study_importances.png" not in {path.name for path in rep.figures} and "study_importances" not in text
    assert "Figure study_importances.png left out: Not enough trials" in caplog.text
    assert "study_best_so_far.png" in {path.name for path in rep.figures}
    assert [row["state"] for row in csv.DictReader(rep.trials_csv.open())] == [COMPLETE, "RUNNING"]


def test_a_figure_that_fails_is_left_out(store, tmp_path, caplog, monkeypatch):
    def broken(study):
        raise ValueError("no such axis")

    monkeypatch.setitem(study_figures.FIGURES, "study_best_so_far.png", ("best so far", broken))
    client = MlflowClient(store)
    parent_id, _ = make_study(client, {0: TRIALS[0], 1: TRIALS[1]}, state_tag=False)
    rep = report.write_report(client, parent_id, tmp_path / "out")
    assert "Figure study_best_so_far.png failed and is left out: ValueError: no such axis" in caplog.text
    assert "study_best_so_far.png" not in rep.markdown.read_text()
    assert rep.study.by_state(COMPLETE) == rep.study.trials, "FINISHED runs without trial.state count as complete"
