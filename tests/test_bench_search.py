"""The search bench's own arithmetic on constructed studies (its nine real studies take half an hour: not here)."""

import pytest

from alexnet_sweep.bench.search import (
    ASHA,
    RANDOM,
    TPE,
    StudyResult,
    TrialResult,
    best_so_far,
    epochs_to_reach,
    markdown,
    random_mark,
    summarize,
    verdict,
)


def study(method: str, seed: int, trials: list[tuple[float | None, int]], wall_s: float = 60.0) -> StudyResult:
    """A study from (value, epochs) per trial, in order: a value is a COMPLETE trial, None a PRUNED one."""
    results = tuple(
        TrialResult(number, "COMPLETE" if value is not None else "PRUNED", value, epochs)
        for number, (value, epochs) in enumerate(trials)
    )
    return StudyResult(method, seed, results, wall_s)


# random: bests 0.95, 0.97, 0.96 (mean 0.96, sd 0.01: the mark is 0.95), 30 epochs each
RANDOMS = [
    study(RANDOM, 0, [(0.90, 10), (0.95, 10), (0.93, 10)]),
    study(RANDOM, 1, [(0.97, 10), (0.80, 10), (0.96, 10)]),
    study(RANDOM, 2, [(0.50, 10), (0.92, 10), (0.96, 10)]),
]


def asha(reaching_last_seed: bool) -> list[StudyResult]:
    last = [(None, 1), (None, 3), (0.955 if reaching_last_seed else 0.94, 10)]
    return [
        study(ASHA, 0, [(0.96, 10), (None, 1), (None, 1)]),  # reaches the mark after 10 epochs
        study(ASHA, 1, [(None, 1), (0.951, 10), (None, 3)]),  # after 11
        study(ASHA, 2, last),  # after 14, or never
    ]


def test_the_curve_is_the_best_completed_value_against_cumulative_epochs_pruned_trials_counting_only_epochs():
    trials = study(ASHA, 0, [(None, 1), (0.7, 10), (None, 3), (0.6, 10), (0.9, 10)]).trials
    assert best_so_far(trials) == [(1, None), (11, 0.7), (14, 0.7), (24, 0.7), (34, 0.9)]
    assert epochs_to_reach(trials, 0.7) == 11
    assert epochs_to_reach(trials, 0.8) == 34
    assert epochs_to_reach(trials, 0.95) is None
    assert StudyResult(ASHA, 0, trials, 1.0).epochs == 34


def test_the_mark_is_random_searchs_mean_best_minus_its_seed_sd():
    assert random_mark([*RANDOMS, *asha(True)]) == pytest.approx(0.95)
    with pytest.raises(ValueError, match="random search completed no trial"):
        random_mark([study(RANDOM, 0, [(None, 1)]), *asha(True)])


def test_each_method_gets_its_bests_epochs_and_the_epochs_it_took_to_reach_the_mark():
    rows = summarize([*asha(True), *RANDOMS, study(TPE, 0, [(0.99, 10), (0.5, 10), (0.5, 10)])], 0.95)
    assert [row["method"] for row in rows] == [RANDOM, TPE, ASHA], "in the bench's order, whatever came first"
    random, tpe, pruned = rows
    assert (random["best_mean"], random["best_sd"]) == (pytest.approx(0.96), pytest.approx(0.01))
    assert (random["epochs_mean"], random["to_reach"]) == (30, [20, 10, 30])
    assert (tpe["best_sd"], tpe["to_reach"]) == (0.0, [10]), "one seed: sd 0"
    assert pruned["epochs"] == [12, 14, 14]
    assert pruned["to_reach"] == [10, 11, 14]
    assert pruned["to_reach_mean"] == pytest.approx(35 / 3)
    assert pruned["pruned_mean"] == 2.0
    assert random["minutes_mean"] == 1.0


def test_the_goal_is_met_when_every_seed_reaches_the_mark_within_half_of_random_searchs_epochs():
    rows = summarize([*RANDOMS, *asha(True)], 0.95)
    result = verdict(rows, 0.95)
    assert result["met"] is True
    assert result["text"].startswith("Goal met: TPE + ASHA reached random search's best within its spread ")
    assert "(0.9500 = 0.9600 - 0.0100) in 3 of 3 seeds, after 12 epochs on average" in result["text"]
    assert "half of random search's 30 epochs (15)" in result["text"]
    assert result["text"].endswith("Random search itself reached the mark after 20 epochs on average in 3 of 3 seeds.")


def test_the_goal_is_not_met_when_a_seed_never_reaches_the_mark_or_it_takes_too_many_epochs():
    missed = verdict(summarize([*RANDOMS, *asha(False)], 0.95), 0.95)
    assert missed["met"] is False
    assert "in 2 of 3 seeds, after 10 epochs on average where it did (never with seed 2)," in missed["text"]
    slow = [study(ASHA, seed, [(None, 3), (None, 3), (0.97, 10)]) for seed in range(3)]  # 16 epochs > 15
    assert verdict(summarize([*RANDOMS, *slow], 0.95), 0.95)["met"] is False
    assert verdict(summarize(RANDOMS, 0.95), 0.95)["met"] is None, "no TPE + ASHA: nothing to judge"


def test_the_table_has_a_row_per_method_and_the_verdict_below_it():
    studies = [*RANDOMS, *asha(False)]
    rows = summarize(studies, 0.95)
    settings = {"trials": 3, "epochs": 10, "seeds": [0, 1, 2], "space": ["batch_size=64,128"], "fixed": "epochs=10",
                "startup_trials": 4}  # fmt: skip
    report = {"settings": settings, "rows": rows, "mark": 0.95, "verdict": verdict(rows, 0.95), "stopped": None,
              "command": "c", "cpu": "2 CPU cores", "wall_s": 600}  # fmt: skip
    table = markdown(report)
    assert "| random | 0.9600 ± 0.0100 | 0.9500, 0.9700, 0.9600 | 30 | 0.0 / 0.0 | 1.0 | 20, 10, 30 (20) |" in table
    assert (
        "| tpe+asha | 0.9503 ± 0.0100 | 0.9600, 0.9510, 0.9400 | 13 | 2.0 / 0.0 | 1.0 | 10, 11, never (10) |" in table
    )
    assert "Goal not met:" in table
    assert "bench wall time 10.0 min" in table
