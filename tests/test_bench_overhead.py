"""The overhead bench's reading of the jobs' logs and its table (its two sweeps take a minute or more: not here)."""

import logging

import pytest

from alexnet_sweep import callbacks, train
from alexnet_sweep.bench.overhead import OVERHEAD_LINE, markdown, parse_jobs


def job_log(number, total, setup, wrap_up, epoch_save):
    """Lines of job `number` as Hydra's console shows them, with its overhead line."""
    return (
        f"[10:00:00][alexnet_sweep.job][INFO] - [{number}/{total}] optimizer.lr=0.001 seed=0 (elapsed 1s)\n"
        "[10:00:01][alexnet_sweep.job][INFO] - Job starts\n"
        f"[10:00:02][alexnet_sweep.train][DEBUG] - Overhead: {setup} s from the job's start to its first step's end, "
        f"{wrap_up} s from its last epoch's end to its run's end ({epoch_save} s of which saving and logging that "
        "epoch)\n"
    )


def test_the_line_a_job_logs_is_the_line_the_bench_reads(caplog):
    timeline = callbacks.Timeline()
    timeline.first_step_end, timeline.last_epoch_end = 10.5, 12.0
    with caplog.at_level(logging.DEBUG, logger=train.__name__):
        train._log_overhead(timeline, started=10.0, trained=12.25, ended=12.75)
    [record] = caplog.records
    assert [float(value) for value in OVERHEAD_LINE.search(record.getMessage()).groups()] == [0.5, 0.75, 0.25]


def test_each_job_gets_its_own_numbers_in_job_order():
    output = job_log(1, 2, 3.2, 1.1, 0.5) + "2/2 - 1s - loss: 2.3\n" + job_log(2, 2, 0.61, 0.72, 0.36)
    assert parse_jobs(output) == [
        {"setup_s": 3.2, "wrap_up_s": 1.1, "epoch_save_s": 0.5},
        {"setup_s": 0.61, "wrap_up_s": 0.72, "epoch_save_s": 0.36},
    ]
    with pytest.raises(RuntimeError, match=r"no overhead logged by jobs \[2\]"):
        parse_jobs(job_log(1, 2, 3.2, 1.1, 0.5) + job_log(2, 2, 1, 1, 1).rsplit("[alexnet_sweep.train]", 1)[0])


def test_the_table_puts_each_job_without_and_with_reuse_side_by_side():
    def sweep(reuse, wall, jobs):
        setups = sorted(job[0] for job in jobs[1:])
        return {"reuse_model": reuse, "wall_s": wall, "later_median_setup_s": setups[len(setups) // 2],
                "later_median_wrap_up_s": 1.0, "later_median_epoch_save_s": 0.4,
                "jobs": [{"setup_s": s, "wrap_up_s": w, "epoch_save_s": e} for s, w, e in jobs]}  # fmt: skip

    off = sweep(False, 23.0, [(3.2, 1.3, 0.5), (3.0, 1.2, 0.4), (3.1, 1.0, 0.4)])
    on = sweep(True, 12.5, [(3.3, 1.2, 0.5), (0.6, 0.7, 0.35), (0.62, 0.75, 0.4)])
    table = markdown({"grid": "-m seed=0,1,2", "sweeps": [off, on]})
    assert "| 2 | 3.00 | 0.60 | 1.20 | 0.70 | 0.40 | 0.35 |" in table
    assert "| median of jobs 2+ | 3.10 | 0.62 | 1.00 | 1.00 | 0.40 | 0.40 |" in table
    assert "Whole sweep: 23.0 s with `reuse_model=false`, 12.5 s with `reuse_model=true` (3 jobs" in table
