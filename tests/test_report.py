"""The sweep report, on synthetic sweeps written straight into a per-test SQLite store (no training)."""

import csv
import http.server
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest
import requests
import sqlalchemy.exc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from alexnet_sweep import names, report, tracking
from alexnet_sweep.report import publish
from alexnet_sweep.report.data import latest_sweep_parent, load_sweep
from alexnet_sweep.report.figures import heatmap_axes

PNG = b"\x89PNG\r\n\x1a\n"
BASE_PARAMS = {
    "dataset.name": "shapes", "dataset.data_dir": "/data", "model.input_size": "67", "model.dropout": "0.5",
    "optimizer.name": "adam", "optimizer.beta_1": "0.9", "batch_size": "64", "seed": "42",
}  # fmt: skip
DENSE = {"alexnet8": "[4096, 4096]", "alexnet9": "[4096, 4096, 4096]"}
# (lr, epochs, model) -> final val_accuracy, test_accuracy. lr=1e-4 is best; with lr=1e-3, 2 epochs beat 4 (the
# 4-epoch alexnet8 run overfits, its alexnet9 twin fails); alexnet9 beats alexnet8 wherever both finished. The best
# run by val_accuracy (1e-4, 4, alexnet9) is not the best by test_accuracy (1e-4, 4, alexnet8).
GRID = {
    ("0.001", "2", "alexnet8"): (0.50, 0.49),
    ("0.001", "2", "alexnet9"): (0.52, 0.50),
    ("0.001", "4", "alexnet8"): (0.45, 0.44),
    ("0.001", "4", "alexnet9"): None,
    ("0.0001", "2", "alexnet8"): (0.60, 0.61),
    ("0.0001", "2", "alexnet9"): (0.62, 0.60),
    ("0.0001", "4", "alexnet8"): (0.70, 0.76),
    ("0.0001", "4", "alexnet9"): (0.74, 0.72),
}
OVERFIT = ("0.001", "4", "alexnet8")
OOM = "ResourceExhaustedError: OOM when allocating tensor with shape [64,4096]"
REPORT_FILES = {
    "report.md", "runs.csv", "configs.csv", "test_accuracy_heatmap.png", "validation_curves.png", "overfitting.png",
}  # fmt: skip


def _history(epochs: int, val: float, overfit: bool) -> dict[str, list[float]]:
    if overfit:  # val_loss lowest at epoch 2, the train-val gap grows from 0.08 to 0.40
        return {
            names.VAL_ACCURACY: [0.40, 0.52, 0.48, val],
            names.ACCURACY: [0.45, 0.60, 0.72, val + 0.40],
            names.VAL_LOSS: [1.6, 1.3, 1.4, 1.6],
            names.LOSS: [1.5, 1.1, 0.8, 0.5],
        }
    ramp = [(epoch + 1) / epochs for epoch in range(epochs)]
    return {
        names.VAL_ACCURACY: [val * (0.7 + 0.3 * r) for r in ramp],
        names.ACCURACY: [val * (0.7 + 0.3 * r) + 0.02 * r for r in ramp],
        names.VAL_LOSS: [2.0 - r for r in ramp],
        names.LOSS: [2.0 - 1.1 * r for r in ramp],
    }


def make_run(client, experiment_id, parent_id, params, *, job, start, val=None, test=None, overfit=False,
             status="FINISHED", error=None):  # fmt: skip
    overrides = " ".join(f"{key}={value}" for key, value in params.items() if key not in BASE_PARAMS)
    tags = {MLFLOW_PARENT_RUN_ID: parent_id, names.TAG_OVERRIDES: overrides, names.TAG_JOB_NUM: str(job)}
    if error:
        tags[names.TAG_ERROR] = error
    run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=overrides)
    metrics = []
    if val is not None:
        history = _history(int(params["epochs"]), val, overfit)
        metrics = [Metric(key, value, start + step, step) for key, values in history.items()
                   for step, value in enumerate(values, start=1)]  # fmt: skip
        metrics += [Metric(names.TEST_ACCURACY, test, start, 0), Metric(names.TEST_LOSS, 2 - 2 * test, start, 0)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def make_sweep(client, experiment="alexnet_sweep", start=1_700_000_000_000, artifacts=None) -> tuple[str, dict]:
    """The lr x epochs x model sweep of GRID; returns its parent id and {grid point: run id}."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, artifacts)
    parent = client.create_run(experiment_id, start_time=start, run_name="sweep", tags={names.TAG_OVERRIDES: "x"})
    ids = {}
    for job, ((lr, epochs, model), result) in enumerate(GRID.items()):
        params = {
            **BASE_PARAMS,
            "optimizer.lr": lr,
            "epochs": epochs,
            "model.name": model,
            "model.dense_units": DENSE[model],
        }
        finished = dict(val=result[0], test=result[1], overfit=(lr, epochs, model) == OVERFIT) if result else {}
        failed = {} if result else dict(status="FAILED", error=OOM)
        ids[lr, epochs, model] = make_run(client, experiment_id, parent.info.run_id, params, job=job,
                                          start=start + 10 * (job + 1), **finished, **failed)  # fmt: skip
    return parent.info.run_id, ids


def sections(markdown: str) -> dict[str, str]:
    return {part.split("\n", 1)[0]: part for part in markdown.split("\n## ")[1:]}


@pytest.fixture
def client(store):
    """A client of this test's own store (`store`), which starts as a copy of the empty database."""
    return MlflowClient(store)


@pytest.fixture(scope="module")
def written(shared_store):
    """One synthetic sweep and its report, shared by the tests that only read them (writing one takes seconds)."""
    client, folder = shared_store("written")
    parent_id, ids = make_sweep(client, artifacts=str(folder / "mlruns"))
    return client, parent_id, ids, report.write_report(client, parent_id, folder / "out")


def test_report_files_best_run_and_swept_keys(written):
    _, _, ids, rep = written
    assert sorted(rep.out_dir.iterdir()) == sorted(rep.files), "the report's files, all written, and no other"
    assert {path.name for path in rep.files} == REPORT_FILES
    for figure in rep.figures:
        assert figure.read_bytes()[:8] == PNG and figure.stat().st_size > 10_000
    assert rep.best.run_id == ids["0.0001", "4", "alexnet9"], "best by val_accuracy, not by test_accuracy"
    assert rep.sweep.swept_keys == ("optimizer.lr", "epochs", "model.name")
    assert rep.sweep.followers == {"model.dense_units": "model.name"}
    assert set(rep.sweep.varying_keys) == {"optimizer.lr", "epochs", "model.name", "model.dense_units"}
    assert heatmap_axes(rep.sweep.swept_keys) == ("optimizer.lr", "epochs", ["model.name"])


def test_runs_csv_has_one_row_per_job(written):
    _, _, ids, rep = written
    with rep.runs_csv.open(newline="") as file:
        rows = {row["run_id"]: row for row in csv.DictReader(file)}
    assert set(rows) == set(ids.values())
    failed = rows[ids["0.001", "4", "alexnet9"]]
    assert (failed["status"], failed["error"], failed[names.VAL_ACCURACY]) == ("FAILED", OOM, "")
    overfit = rows[ids[OVERFIT]]
    assert overfit["optimizer.lr"] == "0.001" and overfit["epochs"] == "4" and overfit["model.name"] == "alexnet8"
    assert overfit["model.dense_units"] == "[4096, 4096]"
    assert overfit["configuration"] == "lr=1e-3 epochs=4 model=alexnet8"
    assert (overfit["best_epoch_by_val_loss"], overfit["last_epoch"]) == ("2", "4")
    assert overfit["train_val_gap"] == "0.4"
    assert float(overfit[names.VAL_ACCURACY]) == pytest.approx(0.45)
    assert float(overfit[names.TEST_ACCURACY]) == pytest.approx(0.44)
    assert [row["run_id"] for row in rows.values() if row["is_best"] == "true"] == [ids["0.0001", "4", "alexnet9"]]
    assert "seed" not in next(iter(rows.values())), "only varying params"


def test_markdown_findings_tables_and_figures(written):
    _, _, ids, rep = written
    text = rep.markdown.read_text()
    assert text.startswith(f"# Sweep report: experiment `alexnet_sweep`, parent run `{rep.sweep.parent_run_id}`")
    parts = sections(text)
    findings = parts["Findings"]
    assert "7 of 8 jobs finished" in findings
    assert (
        "The best run by final val_accuracy is `lr=1e-4 epochs=4 model=alexnet9` (0.7400, test_accuracy 0.7200)"
        in findings
    )
    assert "Best optimizer.lr: 1e-4 by mean final val_accuracy over epochs, model.name" in findings
    assert "1e-4 beats 1e-3 in 3 of 3 configurations that differ only in optimizer.lr" in findings
    assert (
        "With optimizer.lr=1e-3, fewer epochs beat more: epochs=2 reaches final val_accuracy 0.5100, epochs=4 0.4500"
        in findings
    )
    assert (
        "With optimizer.lr=1e-4, more epochs beat fewer: epochs=4 reaches final val_accuracy 0.7200, epochs=2 0.6100"
        in findings
    )
    assert "Best model.name: alexnet9" in findings and "alexnet9 beats alexnet8 in 3 of 3 configurations" in findings
    assert "Signs of overfitting in 1 of 7 runs" in findings
    overfit = "`lr=1e-3 epochs=4 model=alexnet8` (lowest at epoch 2 of 4; the train-val accuracy gap grew: 0.0800"
    assert f"{overfit} there, 0.4000 at the end)" in findings
    assert "was not swept" not in findings

    configs = [line for line in parts["Configurations by mean val_accuracy"].splitlines() if line.startswith("| ")]
    assert configs[0].startswith(
        "|  | lr | epochs | model | n (seeds) | val_accuracy mean ± sd | val_accuracy 95% CI |"
    )
    assert len(configs) == 1 + 7, "one seed: a configuration per finished run, n = 1 and no sd"
    assert configs[1] == "| **best** | 1e-4 | 4 | alexnet9 | 1 | 0.7400 ± – | – | 0.7200 ± – | 1.0000 | 0.5600 |"
    assert "| 1e-3 | 4 | alexnet8 | 1 | 0.4500 ± – |" in configs[-1]

    runs = parts["Runs"]
    table = [line for line in runs.splitlines() if line.startswith("| ")][1:]
    assert len(table) == 7 and ids["0.001", "4", "alexnet9"] not in runs
    assert table[0].startswith("| **best** | 7 | 1e-4 | 4 | alexnet9 | 0.7400 |")
    assert "| 1e-3 | 4 | alexnet8 | 0.4500 |" in table[-1] and "| 2 of 4 | 0.4000 |" in table[-1]
    assert [line.count("**best**") for line in table] == [1, 0, 0, 0, 0, 0, 0]

    failed = parts["Failed and unfinished jobs"]
    assert f"| 3 | FAILED | lr=1e-3 epochs=4 model=alexnet9 | {OOM} | `{ids['0.001', '4', 'alexnet9']}` |" in failed
    for figure in rep.figures:
        assert f"]({figure.name})" in parts["Figures"]


def test_log_to_parent_records_the_report_and_the_best_run(written):
    client, parent_id, ids, rep = written
    report.log_to_parent(client, parent_id, rep)
    parent = client.get_run(parent_id)
    assert {a.path for a in client.list_artifacts(parent_id, "report")} == {
        *(f"report/{p.name}" for p in rep.files),
        "report/configurations.json",
    }
    best = names.BEST_PREFIX
    tags = {key: value for key, value in parent.data.tags.items() if key.startswith(best)}
    assert tags == {
        f"{best}configuration": "lr=1e-4 epochs=4 model=alexnet9",
        names.TAG_BEST_RUN: ids["0.0001", "4", "alexnet9"],
        f"{best}optimizer.lr": "0.0001",
        f"{best}epochs": "4",
        f"{best}model.name": "alexnet9",
        f"{best}model.dense_units": "[4096, 4096, 4096]",
    }
    assert parent.data.metrics == {
        best + names.VAL_ACCURACY: pytest.approx(0.74),
        best + names.TEST_ACCURACY: pytest.approx(0.72),
        best + "n": 1,
    }, "one seed: no best.val_accuracy_sd"


def test_a_diverged_run_is_listed_apart_and_never_ranked_or_in_findings(client, tmp_path):
    parent_id, ids = make_sweep(client)
    experiment_id = client.get_experiment_by_name("alexnet_sweep").experiment_id
    nan, inf = float("nan"), float("inf")
    diverged = {}
    # Ended FAILED by StopOnDivergence at epoch 2; its val_accuracy at epoch 1 beats every finished run's.
    # Recorded FINISHED by a version without that check: a final val_accuracy above all, loss and val_loss NaN.
    for job, (lr, status, error, curves) in enumerate([
        ("1e+30", "FAILED", "diverged at epoch 2",
         {names.LOSS: [9.0, nan], names.ACCURACY: [0.9, 0.1], names.VAL_LOSS: [8.0, inf],
          names.VAL_ACCURACY: [0.95, 0.1]}),
        ("1e+20", "FINISHED", None,
         {names.LOSS: [9.0, nan], names.ACCURACY: [0.2, 0.1], names.VAL_LOSS: [8.0, nan],
          names.VAL_ACCURACY: [0.3, 0.99]}),
    ], start=len(GRID)):  # fmt: skip
        params = {**BASE_PARAMS, "optimizer.lr": lr, "epochs": "2", "model.name": "alexnet8",
                  "model.dense_units": DENSE["alexnet8"]}  # fmt: skip
        run_id = make_run(client, experiment_id, parent_id, params, job=job, start=2_000_000_000_000 + job,
                          status=status, error=error)  # fmt: skip
        metrics = [Metric(key, value, 0, step) for key, values in curves.items()
                   for step, value in enumerate(values, start=1)]  # fmt: skip
        if status == "FINISHED":
            metrics.append(Metric(names.TEST_ACCURACY, 0.98, 0, 0))
        client.log_batch(run_id, metrics=metrics)
        diverged[lr] = run_id

    rep = report.write_report(client, parent_id, tmp_path / "out")
    assert rep.best.run_id == ids["0.0001", "4", "alexnet9"]
    assert [run.run_id for run in rep.sweep.ranked if run.run_id in diverged.values()] == []
    assert {run.run_id for run in rep.sweep.runs if run.diverged} == set(diverged.values())
    parts = sections(rep.markdown.read_text())
    findings = parts["Findings"]
    assert "7 of 10 jobs finished; 2 diverged (loss or metrics NaN or infinite); the others are listed" in findings
    assert "Signs of overfitting in 1 of 7 runs" in findings
    assert "lr=1e30 epochs=2" not in findings and "lr=1e20 epochs=2" not in findings
    assert "No finished run has optimizer.lr=1e20, 1e30." in findings
    assert "lr=1e30" not in parts["Runs"] and "lr=1e20" not in parts["Runs"]
    failed = parts["Failed and unfinished jobs"]
    label = "lr={} epochs=2 model=alexnet8"
    assert f"| 8 | FAILED | {label.format('1e30')} | diverged at epoch 2 | `{diverged['1e+30']}` |" in failed
    assert (
        f"| 9 | FINISHED | {label.format('1e20')} | diverged (loss or metrics NaN or infinite) | "
        f"`{diverged['1e+20']}` |" in failed
    )
    with rep.runs_csv.open(newline="") as file:
        rows = {row["run_id"]: row for row in csv.DictReader(file)}
    assert rows[diverged["1e+30"]]["error"] == "diverged at epoch 2"
    assert [rows[run_id]["is_best"] for run_id in diverged.values()] == ["false", "false"]
    assert all(figure.read_bytes()[:8] == PNG for figure in rep.figures)


def test_a_seed_only_sweep_is_compared_by_seed(client, tmp_path):
    experiment_id = client.create_experiment("seeds")
    parent = client.create_run(experiment_id, run_name="sweep seed=0,1,2").info.run_id
    for job, (seed, val) in enumerate((("0", 0.61), ("1", 0.66), ("2", 0.64))):
        params = {**BASE_PARAMS, "seed": seed, "optimizer.lr": "0.0001", "epochs": "3", "model.name": "alexnet8"}
        make_run(client, experiment_id, parent, params, job=job, start=1000 + job, val=val, test=val)
    rep = report.write_report(client, parent, tmp_path / "seeds")
    assert rep.sweep.swept_keys == ("seed",) and heatmap_axes(rep.sweep.config_keys) == (None, None, [])
    findings = sections(rep.markdown.read_text())["Findings"]
    assert (
        "The runs are replicates of one configuration (they differ only in the seed): mean final val_accuracy 0.6367 "
        "(95% CI 0.5742 to 0.6992 over 3 seeds; test_accuracy 0.6367)" in findings
    )
    assert "Seed noise: across 3 seeds final val_accuracy has sd 0.0252 (from 0.6100 to 0.6600)." in findings
    assert "Best seed" not in findings, "seeds are replicates, not values to choose from"
    assert "optimizer.lr was not swept (every run used 1e-4)" in findings
    assert "epochs was not swept (every run used 3), so it cannot say whether fewer epochs beat more" in findings
    assert (
        "model.name was not swept (every run used alexnet8), so it cannot say whether alexnet9 beats alexnet8"
        in findings
    )
    assert "No finished run shows val_loss rising at the end" in findings
    assert all(figure.read_bytes()[:8] == PNG for figure in rep.figures)


def test_keys_that_change_together_are_compared_once(client, tmp_path):
    experiment_id = client.create_experiment("optimizers")
    parent = client.create_run(experiment_id).info.run_id
    for job, (name, lr, val) in enumerate((("adam", "0.0001", 0.7), ("sgd", "0.01", 0.6))):
        params = {**BASE_PARAMS, "optimizer.name": name, "optimizer.lr": lr, "epochs": "2"}
        run_id = make_run(client, experiment_id, parent, params, job=job, start=1000 + job, val=val, test=val)
        client.set_tag(run_id, names.TAG_OVERRIDES, f"optimizer={name} experiment=smoke")
    sweep = load_sweep(client, parent)
    assert sweep.swept_keys == ("optimizer.name",), "the key the overrides name leads"
    assert sweep.followers == {"optimizer.lr": "optimizer.name"}
    assert [sweep.label(run) for run in sweep.runs] == ["optimizer=adam", "optimizer=sgd"]


def test_ties_are_called_ties(client, tmp_path):
    experiment_id = client.create_experiment("ties")
    parent = client.create_run(experiment_id).info.run_id
    for job, lr in enumerate(("0.001", "0.0001")):
        params = {**BASE_PARAMS, "optimizer.lr": lr, "epochs": "2", "model.name": "alexnet8"}
        make_run(client, experiment_id, parent, params, job=job, start=1000 + job, val=0.5, test=0.5)
    findings = sections(report.write_report(client, parent, tmp_path / "t").markdown.read_text())["Findings"]
    assert "optimizer.lr: 1e-4 and 1e-3 tie for best by final val_accuracy" in findings
    assert "; it ties with `lr=" in findings


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alexnet_sweep.report", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))  # fmt: skip


@pytest.mark.slow  # a subprocess (about 4 s): the fast tier runs none
def test_cli_reports_the_latest_sweep_by_default(client, store, tmp_path, capsys):
    older, _ = make_sweep(client, start=1_700_000_000_000)
    newer, _ = make_sweep(client, start=1_800_000_000_000)
    experiment_id = client.get_experiment_by_name("alexnet_sweep").experiment_id
    client.create_run(experiment_id, start_time=1_900_000_000_000, run_name="a single job, no sweep")
    assert latest_sweep_parent(client, experiment_id).info.run_id == newer

    result = cli("--tracking-uri", store, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"reports/{newer}/report.md\n"
    assert f"parent run `{newer}`" in (tmp_path / "reports" / newer / "report.md").read_text()

    assert report.main(["--tracking-uri", store, "--parent", older, "--out", "mine"]) == 0
    assert capsys.readouterr().out == "mine/report.md\n"
    assert {p.name for p in (tmp_path / "mine").iterdir()} == REPORT_FILES
    assert f"parent run `{older}`" in (tmp_path / "mine" / "report.md").read_text()


def test_the_latest_sweep_is_found_past_the_first_page_of_runs(client, monkeypatch):
    make_sweep(client, start=1_700_000_000_000)
    newer, _ = make_sweep(client, start=1_800_000_000_000)
    experiment_id = client.get_experiment_by_name("alexnet_sweep").experiment_id
    for index in range(3):  # newer than both sweeps: the whole first page, which holds no sweep parent
        client.create_run(experiment_id, start_time=1_900_000_000_000 + index, run_name=f"single job {index}")
    monkeypatch.setattr(tracking, "SEARCH_PAGE", 3)
    assert latest_sweep_parent(client, experiment_id).info.run_id == newer


def test_cli_bad_input_is_one_line_and_exit_2(client, store, tmp_path, capsys):
    parent_id, ids = make_sweep(client)
    client.create_experiment("empty")
    child = ids["0.0001", "2", "alexnet8"]
    cases = {
        ("--experiment", "nope"): "--experiment='nope': no such experiment in",
        ("--experiment", "empty"): "--experiment='empty': holds no sweep",
        ("--parent", "0123abcd"): "--parent='0123abcd': no such run in",
        ("--parent", child): f"--parent='{child}': is a job run of sweep {parent_id}; pass that id",
        ("--parent", parent_id, "--experiment", "empty"): "not --experiment='empty'",
        ("--out", "mlflow.db"): "--out='mlflow.db': exists and is not a folder",
        ("--out", "mlflow.db/sub"): "--out='mlflow.db/sub': cannot write the report there: NotADirectoryError: ",
        ("--out", "/proc/forbidden"): "--out='/proc/forbidden': cannot write the report there: FileNotFoundError: ",
        ("--out", "clash"): "--out='clash': cannot write the report there: IsADirectoryError: ",
    }
    (tmp_path / "clash" / "report.md").mkdir(parents=True)  # a folder where the report's file goes
    for args, message in cases.items():
        assert report.main(["--tracking-uri", store, *args]) == 2, args
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "reports").exists()

    missing = f"sqlite:///{tmp_path / 'none.db'}"
    result = cli("--tracking-uri", missing, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: --tracking-uri='{missing}': no MLflow store at {tmp_path / 'none.db'}\n"
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "reports").exists()


def one_error_line(err: str, message: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_cli_option_syntax_errors_are_one_line_and_exit_2(capsys):
    for args, message in {
        ("--bogus",): "error: unrecognized arguments: --bogus (see --help)",
        ("--out",): "error: argument --out: expected one argument (see --help)",
    }.items():
        with pytest.raises(SystemExit) as exited:
            report.main(list(args))
        out, err = capsys.readouterr()
        assert exited.value.code == 2 and out == "" and err == message + "\n", err


def test_cli_a_store_file_that_is_no_mlflow_store_is_one_line_exit_2_and_left_as_it_was(tmp_path, capsys):
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "empty.db").touch()
    (tmp_path / "garbage.db").write_bytes(b"garbage" * 200)
    with closing(sqlite3.connect(tmp_path / "other.db")) as other:
        other.execute("CREATE TABLE notes (text)")
    cases = {
        "folder.db": f"{tmp_path / 'folder.db'} is a folder, not an MLflow store",
        "empty.db": f"{tmp_path / 'empty.db'} holds no MLflow store (no MLflow tables)",
        "garbage.db": f"{tmp_path / 'garbage.db'} cannot be read as SQLite: file is not a database",
        "other.db": f"{tmp_path / 'other.db'} holds no MLflow store (no MLflow tables)",
    }
    before = {name: (tmp_path / name).stat().st_mtime_ns for name in cases}
    for name, message in cases.items():
        uri = f"sqlite:///{tmp_path / name}"
        assert report.main(["--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 2, name
        out, err = capsys.readouterr()
        assert out == "" and err == f"error: --tracking-uri='{uri}': {message}\n"
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in cases} == before, "MLflow created no tables"
    assert (tmp_path / "empty.db").stat().st_size == 0 and not (tmp_path / "out").exists()


@pytest.fixture
def not_mlflow_server():
    """A local HTTP server that answers every request with a two-line 404 page: a server, but not MLflow's."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html>\nnot here\n</html>")

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cli_a_server_that_is_absent_or_not_mlflow_is_one_line_and_exit_2(not_mlflow_server, tmp_path, capsys):
    with socket.socket() as free:  # a port nothing listens on once it is closed
        free.bind(("127.0.0.1", 0))
        absent = f"http://127.0.0.1:{free.getsockname()[1]}"
    for uri, message in {
        absent: f"--tracking-uri='{absent}': no MLflow server answers (ConnectionError)",
        not_mlflow_server: f"--tracking-uri='{not_mlflow_server}': ",
    }.items():
        assert report.main(["--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 2, uri
        out, err = capsys.readouterr()
        assert out == ""
        one_error_line(err, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "error",
    [
        MlflowException("API request to http://host:5000/api/2.0/mlflow/runs/search failed\nafter 7 retries"),
        sqlalchemy.exc.OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error")),
        requests.ConnectionError("Connection aborted.\nRemoteDisconnected"),
    ],
    ids=["mlflow", "database", "server"],
)
def test_cli_a_store_that_fails_while_the_sweep_is_read_is_one_line_and_exit_2(client, store, monkeypatch,
                                                                                 capsys, error):  # fmt: skip
    parent_id, _ = make_sweep(client)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(publish, "load_sweep", fail)
    assert report.main(["--tracking-uri", store, "--parent", parent_id, "--out", "out"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    one_error_line(err, f"error: --tracking-uri='{store}': reading the sweep failed: {type(error).__name__}: ")


@pytest.mark.slow  # a subprocess without the capability to override permissions
def test_cli_an_out_folder_it_may_not_write_is_one_line_and_exit_2(client, store, tmp_path):
    parent_id, _ = make_sweep(client)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    # Root ignores permissions: drop the capability in the child process (FACTS.md, "Faults you can only test").
    no_override = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all"]
    command = [
        *no_override,
        sys.executable,
        "-m",
        "alexnet_sweep.report",
        "--tracking-uri",
        store,
        "--parent",
        parent_id,
    ]
    for out_dir in ("locked", "locked/sub"):
        result = subprocess.run([*command, "--out", out_dir], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert result.returncode == 2 and result.stdout == "", result.stderr
        one_error_line(result.stderr, f"error: --out='{out_dir}': cannot write the report there: PermissionError: ")
    assert not list(locked.iterdir())
