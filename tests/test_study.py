"""Real studies (`hydra/sweeper=optuna`) in subprocesses: failures, a killed and resumed study, pruning under joblib."""

import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from alexnet_sweep import names
from tests.conftest import TINY, run_cli
from tests.test_cli import split_runs

pytestmark = pytest.mark.slow


def study_args(tmp_path: Path, tfds_dir: Path, *extra: str) -> list[str]:
    return ["-m", "hydra/sweeper=optuna", *TINY, f"dataset.data_dir={tfds_dir}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", *extra]  # fmt: skip


def the_study(tmp_path: Path) -> optuna.Study:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    [name] = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def test_failed_trials_are_told_fail_and_too_many_stop_the_study_which_a_rerun_continues(tmp_path, tfds_dir):
    args = study_args(tmp_path, tfds_dir, "precision=float32", "hydra.sweeper.sampler=grid", "hydra.sweeper.seed=0",
                      "optimizer.lr=1e-3,1e38,1e37,1e36,1e35", "hydra.sweeper.n_trials=5")  # fmt: skip
    first = run_cli(*args, cwd=tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output[-3000:]
    assert "The study stops: 3 of " in output and "more than hydra.sweeper.max_failure_rate=0.5" in output
    assert "Traceback" not in output
    trials = the_study(tmp_path).trials
    assert len(trials) in (3, 4), "it stops as soon as 3 have failed and they are more than half"
    for trial in trials:
        diverges = trial.params["optimizer.lr"] > 1
        assert trial.state == (optuna.trial.TrialState.FAIL if diverges else optuna.trial.TrialState.COMPLETE)
        assert trial.user_attrs.get("cause") == ("diverged at epoch 1" if diverges else None)
    [parent], children = split_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FAILED" and parent.data.tags[names.TAG_STUDY_SAMPLER] == "grid (seed 0)"
    by_trial = {int(child.data.tags[names.TAG_TRIAL]): child for child in children}
    assert sorted(by_trial) == [trial.number for trial in trials]
    for trial in trials:
        run = by_trial[trial.number]
        assert run.data.tags[names.TAG_TRIAL_STATE] == trial.state.name
        assert run.info.status == ("FAILED" if trial.state == optuna.trial.TrialState.FAIL else "FINISHED")

    again = run_cli(*args, "hydra.sweeper.max_failure_rate=1", cwd=tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]  # failed trials are part of a search's answer
    assert f"{len(trials)} of 5 trials done" in output
    study = the_study(tmp_path)
    assert [trial.number for trial in study.trials] == [0, 1, 2, 3, 4]
    tried = {trial.params["optimizer.lr"] for trial in trials}
    new = [trial for trial in study.trials[len(trials) :] if trial.params["optimizer.lr"] not in tried]
    # Optuna's GridSampler offers a failed point again: its config's diverged run answers without training
    assert output.count("Job starts") == len(new), "a config that ran before is not trained again"
    for trial in study.trials:
        assert trial.state.name == ("FAIL" if trial.params["optimizer.lr"] > 1 else "COMPLETE")
    [parent], _ = split_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[names.TAG_BEST_TRIAL] == str(study.best_trial.number)
    assert study.best_trial.params["optimizer.lr"] == 1e-3


KILL_IN_THE_SECOND_TRIAL = """
import os
import signal

import keras

from alexnet_sweep.__main__ import cli

fit = keras.Model.fit
calls = []


class KillTheProcess(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:  # epochs 1 and 2 are saved, logged and reported: die like a lost machine
            os.kill(os.getpid(), signal.SIGKILL)


def fit_then_die(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), KillTheProcess()]
    return fit(self, *args, **kwargs)


keras.Model.fit = fit_then_die
cli()
"""


def test_a_study_killed_mid_trial_continues_that_trial_from_its_saved_epoch_in_its_own_run(tmp_path, tfds_dir):
    args = study_args(tmp_path, tfds_dir, "hydra.sweeper.sampler=random", "hydra.sweeper.seed=0", "epochs=3",
                      "optimizer.lr=tag(log, interval(1e-4, 1e-3))", "hydra.sweeper.n_trials=3")  # fmt: skip
    (tmp_path / "dies.py").write_text(KILL_IN_THE_SECOND_TRIAL)
    killed = subprocess.run([sys.executable, "dies.py", *args], cwd=tmp_path, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    study = the_study(tmp_path)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "RUNNING"]
    assert sorted(study.trials[1].intermediate_values) == [1, 2]
    [_], children = split_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    killed_run = next(child for child in children if child.data.tags[names.TAG_TRIAL] == "1")

    again = run_cli(*args, cwd=tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    assert "Continuing 1 trials left RUNNING: 1" in output
    assert f"continues KILLED run {killed_run.info.run_id} from epoch 2" in output
    study = the_study(tmp_path)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "COMPLETE", "COMPLETE"]
    assert sorted(study.trials[1].intermediate_values) == [1, 2, 3]
    assert len({trial.params["optimizer.lr"] for trial in study.trials}) == 3
    [parent], children = split_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED" and len(children) == 3, "one run per trial, the killed one continued"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(killed_run.info.run_id, "loss")] == [1, 2, 3]
    resumed_dir = Path(parent.data.tags[names.TAG_SWEEP_DIR])
    assert sorted(p.name for p in resumed_dir.iterdir() if p.is_dir() and p.name.isdigit()) == ["1", "2"]
    assert not list((tmp_path / "checkpoints").glob("*/*/state.json")), "saved states are freed at the end"


def test_pruning_under_joblib_stops_trials_in_worker_processes_and_keeps_their_curves(tmp_path, tfds_dir):
    args = study_args(
        tmp_path, tfds_dir, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler=grid", "hydra.sweeper.seed=0", "optimizer.lr=1e-3,1e-4", "epochs=1,3",
        "hydra.sweeper.pruner=threshold", "+hydra.sweeper.pruner_args.lower=0.99",
        "+hydra.sweeper.pruner_args.n_warmup_steps=2",  # a 1-epoch trial completes; a 3-epoch one is cut at epoch 2
    )  # fmt: skip
    result = run_cli(*args, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Sweep done: 2/4 jobs finished, 2 pruned." in output
    study = the_study(tmp_path)
    states = {trial.number: trial.state.name for trial in study.trials}
    assert sorted(states.values()) == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    for trial in study.trials:
        assert (trial.state.name == "PRUNED") == (trial.params["epochs"] == 3)
        assert max(trial.intermediate_values) == (2 if trial.params["epochs"] == 3 else 1), "reported from workers"
    [parent], children = split_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for child in children:
        state = states[int(child.data.tags[names.TAG_TRIAL])]
        assert child.info.status == "FINISHED" and child.data.tags[names.TAG_TRIAL_STATE] == state
        if state == "PRUNED":
            assert child.data.tags[names.TAG_PRUNED].startswith("at epoch 2: val_accuracy ")
            assert child.data.tags[names.TAG_PRUNED].endswith("lower bound 0.99")
            assert [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")] == [1, 2]
            assert names.TEST_ACCURACY not in child.data.metrics, "a pruned trial is never a candidate"
    assert parent.data.tags[names.TAG_BEST_TRIAL] in {str(n) for n, state in states.items() if state == "COMPLETE"}
    assert not list((tmp_path / "checkpoints").glob("*/*/state.json")), "pruned runs free their saved state"
    report = Path(parent.data.tags[names.TAG_SWEEP_DIR]) / "report"
    text = (report / "report.md").read_text()
    assert "## Study" in text and "Trials: 4 (2 complete, 2 pruned, 0 failed)" in text and "## Pruned trials" in text
    rows = (report / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and sum(",PRUNED," in row for row in rows) == 2
