"""The precise-BatchNorm bench's own arithmetic (its sweep is the demo's and runs for half an hour: not here)."""

from alexnet_sweep import names
from alexnet_sweep.bench.precise_bn import largest_drop, markdown
from alexnet_sweep.report.runs import RunSummary


def run_with_curve(curve: dict[int, float]) -> RunSummary:
    return RunSummary("r", "r", "FINISHED", "0", "", None, {}, {}, {names.VAL_ACCURACY: curve})


def test_the_largest_drop_is_the_steepest_fall_between_consecutive_epochs():
    assert largest_drop(run_with_curve({1: 0.5, 2: 0.7, 3: 0.4, 4: 0.45, 5: 0.3})) == 0.7 - 0.4
    assert largest_drop(run_with_curve({1: 0.1, 2: 0.2})) == 0.0, "a curve that never falls"
    assert largest_drop(run_with_curve({})) == 0.0


def test_the_table_shows_each_setting_and_the_baselines_beside_it():
    row = {"bn_momentum": "0.99", "precise_bn_images": 1024, "seed_sd_mean": 0.01, "seed_sd_max": 0.02,
           "largest_drop": 0.3, "val_accuracy_mean": 0.9, "test_accuracy_mean": 0.88, "best": "lr=1e-4 epochs=10",
           "best_val_accuracy": 0.95, "seconds_per_epoch": 4.25}  # fmt: skip
    baseline = [{"model": "SVC (RBF)", "C": 1, "val_accuracy": 0.98, "test_accuracy": 0.97, "fit_s": 0.02}]
    table = markdown({"rows": [row], "baseline": baseline, "seeds": 3, "cpu": "2 CPU cores", "command": "c",
                      "wall_s": 60})  # fmt: skip
    assert "| 0.99 | 1024 | 0.010 / 0.020 | 0.300 | 0.900 | 0.880 | lr=1e-4 epochs=10 (0.950) | 4.25 |" in table
    assert "| SVC (RBF) | 1 | 0.9800 | 0.9700 | 0.020 |" in table
