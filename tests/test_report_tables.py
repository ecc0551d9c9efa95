"""The report of a sweep with seeds: per-configuration statistics in report.md, configs.csv, runs.csv, the figures
and the parent run, on synthetic runs written straight into a SQLite store (no training).

The expected numbers are computed by hand: a t quantile and plain arithmetic, not the report's own statistics.
"""

import csv
import json
import math

import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

from alexnet_sweep import names, report
from alexnet_sweep.report import figures  # not its functions: pytest would collect test_accuracy_heatmap
from tests.test_report import BASE_PARAMS, OOM, PNG, REPORT_FILES, make_run, sections

SEEDS = ("0", "1", "2")
# (lr, epochs) -> (val_accuracy, test_accuracy) per seed, None for a failed run. lr=1e-4 epochs=4 has the best mean
# val_accuracy (0.72); lr=1e-4 epochs=2 has the single best run (0.80) but a lower mean (0.67); one seed of
# lr=1e-3 epochs=2 failed (n = 2); lr=1e-3 epochs=4 never finished (n = 0).
CONFIGS = {
    ("0.0001", "4"): [(0.70, 0.69), (0.72, 0.71), (0.74, 0.70)],
    ("0.0001", "2"): [(0.80, 0.81), (0.60, 0.60), (0.61, 0.62)],
    ("0.001", "2"): [(0.50, 0.49), (0.52, 0.50), None],
    ("0.001", "4"): [None, None, None],
}
T_975 = {2: 4.302652729911275, 1: 12.706204736174694}  # Student's t 0.975 quantile by degrees of freedom


def make_seeded_sweep(client, seeds=SEEDS, configs=CONFIGS, artifacts=None) -> tuple[str, dict]:
    """A sweep of `configs` x `seeds`; returns its parent id and {(lr, epochs, seed): run id}."""
    experiment_id = client.create_experiment("seeded", artifacts)
    parent = client.create_run(experiment_id, start_time=1000, run_name="sweep seed=0,1,2").info.run_id
    ids, job = {}, 0
    for (lr, epochs), results in configs.items():
        for seed, result in zip(seeds, results, strict=False):
            params = {**BASE_PARAMS, "optimizer.lr": lr, "epochs": epochs, "model.name": "alexnet8", "seed": seed}
            outcome = dict(val=result[0], test=result[1]) if result else dict(status="FAILED", error=OOM)
            ids[lr, epochs, seed] = make_run(client, experiment_id, parent, params, job=job, start=2000 + job,
                                             **outcome)  # fmt: skip
            job += 1
    return parent, ids


@pytest.fixture(scope="module")
def seeded(shared_store):
    """The seeded sweep and its report, shared by the tests that only read them."""
    client, folder = shared_store("seeded")
    parent_id, ids = make_seeded_sweep(client, artifacts=str(folder / "mlruns"))
    return client, parent_id, ids, report.write_report(client, parent_id, folder / "out")


def sd(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def interval(values):
    mean, n = sum(values) / len(values), len(values)
    half = T_975[n - 1] * sd(values) / math.sqrt(n)
    return mean - half, mean + half


def test_the_best_configuration_has_the_best_mean_not_the_best_run(seeded):
    _, _, ids, rep = seeded
    assert rep.sweep.ranked[0].run_id == ids["0.0001", "2", "0"], "the single best run (0.80)"
    assert rep.sweep.config_label(rep.best_configuration) == "lr=1e-4 epochs=4"
    assert rep.best.run_id == ids["0.0001", "4", "2"], "the best configuration's best replicate (0.74)"
    assert {path.name for path in rep.files} == REPORT_FILES
    assert all(figure.read_bytes()[:8] == PNG and figure.stat().st_size > 10_000 for figure in rep.figures)


def test_configs_csv_has_the_statistics_of_each_configuration(seeded):
    _, _, _, rep = seeded
    with rep.configs_csv.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["configuration"] for row in rows] == [
        "lr=1e-4 epochs=4", "lr=1e-4 epochs=2", "lr=1e-3 epochs=2", "lr=1e-3 epochs=4",
    ], "best mean val_accuracy first, the configuration that never finished last"  # fmt: skip
    assert [row["rank"] for row in rows] == ["1", "2", "3", ""]
    assert [row["is_best"] for row in rows] == ["true", "false", "false", "false"]
    assert [(row["n"], row["runs"]) for row in rows] == [("3", "3"), ("3", "3"), ("2", "3"), ("0", "3")]
    assert [(row["optimizer.lr"], row["epochs"]) for row in rows] == [
        ("0.0001", "4"), ("0.0001", "2"), ("0.001", "2"), ("0.001", "4")
    ]  # fmt: skip
    assert "seed" not in rows[0] and "model.name" not in rows[0], "not configuration keys"
    for row, results in zip(rows[:3], list(CONFIGS.values())[:3], strict=True):
        for index, metric in enumerate((names.VAL_ACCURACY, names.TEST_ACCURACY)):
            values = [result[index] for result in results if result]
            low, high = interval(values)
            assert float(row[f"{metric}_mean"]) == pytest.approx(sum(values) / len(values))
            assert float(row[f"{metric}_sd"]) == pytest.approx(sd(values))
            assert float(row[f"{metric}_ci_low"]) == pytest.approx(low)
            assert float(row[f"{metric}_ci_high"]) == pytest.approx(high)
        assert float(row[f"{names.VAL_LOSS}_mean"]) == pytest.approx(1.0)  # every curve ends at val_loss 1.0
        assert float(row[f"{names.VAL_LOSS}_sd"]) == pytest.approx(0.0, abs=1e-12)
    best = rows[0]
    assert float(best[f"{names.VAL_ACCURACY}_ci_low"]) == pytest.approx(0.72 - 4.302653 * 0.02 / math.sqrt(3))
    assert float(best[f"{names.TEST_LOSS}_mean"]) == pytest.approx(0.60)  # 2 - 2 * test_accuracy
    assert {key: value for key, value in rows[3].items() if key.startswith(names.VAL_ACCURACY)} == {
        f"{names.VAL_ACCURACY}_{field}": "" for field in ("mean", "sd", "ci_low", "ci_high")
    }


def test_runs_csv_names_each_runs_configuration(seeded):
    _, _, ids, rep = seeded
    with rep.runs_csv.open(newline="") as file:
        rows = {row["run_id"]: row for row in csv.DictReader(file)}
    assert len(rows) == 12
    for (lr, epochs, seed), run_id in ids.items():
        expected = f"lr={'1e-4' if lr == '0.0001' else '1e-3'} epochs={epochs}"
        assert (rows[run_id]["configuration"], rows[run_id]["seed"]) == (expected, seed)
    assert [run_id for run_id, row in rows.items() if row["is_best"] == "true"] == [ids["0.0001", "4", "2"]]


def test_report_md_tables_configurations_then_runs(seeded):
    _, _, ids, rep = seeded
    parts = sections(rep.markdown.read_text())
    table = [line for line in parts["Configurations by mean val_accuracy"].splitlines() if line.startswith("| ")]
    assert table[0] == (
        "|  | lr | epochs | n (seeds) | val_accuracy mean ± sd | val_accuracy 95% CI | test_accuracy mean ± sd | "
        "val_loss mean | test_loss mean |"
    )
    low, high = interval([0.70, 0.72, 0.74])
    assert table[1] == (
        f"| **best** | 1e-4 | 4 | 3 | 0.7200 ± 0.0200 | [{low:.4f}, {high:.4f}] | 0.7000 ± 0.0100 | 1.0000 | 0.6000 |"
    )
    assert table[2].startswith(f"|  | 1e-4 | 2 | 3 | 0.6700 ± {sd([0.80, 0.60, 0.61]):.4f} |")
    low, high = interval([0.50, 0.52])
    assert table[3].startswith(f"|  | 1e-3 | 2 | 2 | 0.5100 ± 0.0141 | [{low:.4f}, {high:.4f}] |")
    assert len(table) == 4, "no row for a configuration that never finished"
    assert "1 run of these configurations did not finish" in parts["Configurations by mean val_accuracy"]

    runs = [line for line in parts["Runs"].splitlines() if line.startswith("| ")][1:]
    order = [("0.0001", "4", "2"), ("0.0001", "4", "1"), ("0.0001", "4", "0"), ("0.0001", "2", "0"),
             ("0.0001", "2", "2"), ("0.0001", "2", "1"), ("0.001", "2", "1"), ("0.001", "2", "0")]  # fmt: skip
    assert [line.rsplit("`", 2)[-2] for line in runs] == [ids[key] for key in order], "grouped by configuration"
    assert [line.count("**best**") for line in runs] == [1, 0, 0, 0, 0, 0, 0, 0]
    failed = parts["Failed and unfinished jobs"]
    assert sum(ids[key] in failed for key in ids) == 4
    assert "[configs.csv](configs.csv)" in parts["Figures"]


def test_log_to_parent_records_the_best_configuration_and_its_table(seeded, tmp_path):
    client, parent_id, ids, rep = seeded
    for _ in range(2):  # a resumed sweep attaches its report again: the table is replaced, not appended to
        report.log_to_parent(client, parent_id, rep)
    parent = client.get_run(parent_id)
    best = names.BEST_PREFIX
    assert {key: value for key, value in parent.data.tags.items() if key.startswith(best)} == {
        f"{best}configuration": "lr=1e-4 epochs=4",
        f"{best}optimizer.lr": "0.0001",
        f"{best}epochs": "4",
        names.TAG_BEST_RUN: ids["0.0001", "4", "2"],
    }, "no best.seed: the seed is no part of a configuration"
    assert parent.data.metrics == {
        best + names.VAL_ACCURACY: pytest.approx(0.72),
        best + names.VAL_ACCURACY + "_sd": pytest.approx(0.02),
        best + names.TEST_ACCURACY: pytest.approx(0.70),
        best + "n": 3,
    }
    assert {"path": "report/configurations.json", "type": "table"} in json.loads(
        parent.data.tags[MLFLOW_LOGGED_ARTIFACTS]
    ), "the MLflow UI shows it as a table"
    path = client.download_artifacts(parent_id, "report/configurations.json", str(tmp_path))
    with open(path) as file:
        table = json.load(file)
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [row["configuration"] for row in rows] == [
        "lr=1e-4 epochs=4", "lr=1e-4 epochs=2", "lr=1e-3 epochs=2", "lr=1e-3 epochs=4",
    ]  # fmt: skip
    assert rows[0]["is_best"] is True and rows[0]["n"] == 3
    assert (rows[0]["lr"], rows[0]["epochs"]) == ("0.0001", "4"), "no dot in a column name: the UI would show it empty"
    assert rows[0]["val_accuracy_mean"] == pytest.approx(0.72) and rows[0]["val_accuracy_sd"] == pytest.approx(0.02)
    assert rows[3]["n"] == 0 and rows[3]["val_accuracy_mean"] is None


def test_the_figures_draw_each_configuration_over_its_seeds(seeded):
    _, _, _, rep = seeded
    sweep = rep.sweep
    epochs, means, sds = figures.mean_curve(sweep.best_configuration, names.VAL_ACCURACY)
    assert epochs == [1, 2, 3, 4] and means[-1] == pytest.approx(0.72) and sds[-1] == pytest.approx(0.02)
    axes = figures.test_accuracy_heatmap(sweep).axes[0]
    second = f"{(0.81 + 0.60 + 0.62) / 3:.3f} ± {sd([0.81, 0.60, 0.62]):.3f}\nval 0.670\nn=3"
    cells = {"0.700 ± 0.010\nval 0.720\nn=3", second, "0.495 ± 0.007\nval 0.510\nn=2 of 3", "failed"}
    assert {text.get_text() for text in axes.texts} == cells, "one cell per configuration, not per seed"
    assert len(axes.patches) == 1, "the best configuration framed"


def test_one_seed_sweeps_draw_too(client, tmp_path):
    parent_id, _ = make_seeded_sweep(client, seeds=("0",))
    rep = report.write_report(client, parent_id, tmp_path / "out")
    assert not rep.sweep.replicated and rep.sweep.config_label(rep.best_configuration) == "lr=1e-4 epochs=2"
    assert all(figure.read_bytes()[:8] == PNG for figure in rep.figures)
    texts = {text.get_text() for text in figures.test_accuracy_heatmap(rep.sweep).axes[0].texts}
    assert "0.810\nval 0.800" in texts, "one seed: no sd, no n"


@pytest.fixture
def client(store):
    return MlflowClient(store)
