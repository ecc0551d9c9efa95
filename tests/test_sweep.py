"""The sweep's pure parts: the grid, its waves, names and durations (real sweeps run in test_cli and others)."""

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from alexnet_sweep import names
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.sweep import grid, naming
from alexnet_sweep.sweep.parent import sweep_run_name
from alexnet_sweep.sweep.summary import Row, format_duration, format_summary, progress


@pytest.fixture
def loader():
    with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


@pytest.mark.parametrize(
    ("arguments", "points"),
    [
        (["epochs=1,2", "seed=3"], [["epochs=1", "seed=3"], ["epochs=2", "seed=3"]]),
        (["seed=range(1,4)"], [["seed=1"], ["seed=2"], ["seed=3"]]),
        (["seed=choice(7,8)"], [["seed=7"], ["seed=8"]]),
        (["model=glob(*)"], [["model=alexnet8"], ["model=alexnet9"]]),
        (["model=alexnet8,alexnet9", "epochs=1,2"],
         [["model=alexnet8", "epochs=1"], ["model=alexnet8", "epochs=2"],
          ["model=alexnet9", "epochs=1"], ["model=alexnet9", "epochs=2"]]),
    ],
)  # fmt: skip
def test_the_grid_grammar_is_hydras(loader, arguments, points):
    assert grid.expand(None, arguments, loader) == points


def test_the_command_line_overrides_a_presets_grid_key_by_key(loader):
    points = grid.expand({"optimizer.lr": "1e-3,1e-4", "epochs": "5,10"}, ["epochs=1"], loader)
    assert points == [["optimizer.lr=0.001", "epochs=1"], ["optimizer.lr=0.0001", "epochs=1"]]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("optimizer.lr=interval(1e-4,1e-3)", "optimizer.lr=interval(1e-4,1e-3): a grid lists values"),
        ("seed=[1,", "sweep seed=[1,: "),
    ],
)
def test_what_a_grid_cannot_list_is_one_line(loader, argument, message):
    with pytest.raises(UserInputError) as caught:
        grid.expand(None, [argument], loader)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def job(epochs, lr="1e-3"):
    return grid.Job((f"optimizer.lr={lr}", f"epochs={epochs}"), {"optimizer.lr": lr, "epochs": str(epochs)})


def test_shorter_siblings_run_in_an_earlier_wave():
    jobs = [job(10), job(5), job(10, "1e-4"), job(5, "1e-4"), job(1, "1e-4")]
    waves = [[j.overrides for j in wave] for wave in grid.in_waves(jobs)]
    assert waves == [
        [("optimizer.lr=1e-3", "epochs=5"), ("optimizer.lr=1e-4", "epochs=1")],
        [("optimizer.lr=1e-3", "epochs=10"), ("optimizer.lr=1e-4", "epochs=5")],
        [("optimizer.lr=1e-4", "epochs=10")],
    ]


def test_a_repeated_config_runs_once_and_refused_points_are_kept():
    refused = grid.Job(("optimizer.lr=-1",), {}, refused="optimizer.lr=-1.0: must be a positive number")
    jobs = grid.without_repeats([job(5), job(5), refused, refused, job(10)])
    assert [j.overrides for j in jobs] == [job(5).overrides, refused.overrides, refused.overrides, job(10).overrides]


def model_job(model: str, lr: str, seed: str) -> grid.Job:
    params = {"model.name": model, "model.dense_units": "[4096]" * (model == "alexnet9"), "optimizer.lr": lr,
              "epochs": "5", "seed": seed, "dataset.name": "digits"}  # fmt: skip
    return grid.Job((f"model={model}", f"optimizer.lr={lr}", f"seed={seed}", "experiment=demo"), params)


def test_job_runs_lead_with_what_the_sweep_varies_and_replicates_share_a_configuration_tag():
    jobs = [model_job(model, lr, seed) for model in ("alexnet8", "alexnet9") for lr in ("1e-3", "5e-05")
            for seed in ("0", "1")]  # fmt: skip
    swept = naming.swept_keys(jobs)
    assert swept == ["model.name", "optimizer.lr", "seed"], "model.dense_units follows model=; experiment is fixed"
    assert naming.run_name(jobs[3].params, swept) == "lr=5e-5 model=alexnet8 seed=1"
    tags = [naming.configuration_tag(job.params, swept)[names.TAG_CONFIGURATION] for job in jobs]
    assert tags[0] == tags[1] != tags[2] == tags[3], "the seeds of one configuration share it; others differ"
    assert len(set(tags)) == 4 and tags[2].startswith("lr=5e-5 model=alexnet8 (")
    only_seed = [model_job("alexnet8", "1e-3", seed) for seed in ("0", "1", "2")]
    assert naming.run_name(only_seed[2].params, naming.swept_keys(only_seed)) == "seed=2 (alexnet8)"
    assert naming.configuration_tag(only_seed[0].params, ["seed"]) == naming.configuration_tag(only_seed[2].params,
                                                                                               ["seed"])  # fmt: skip
    assert naming.run_name(jobs[0].params, []) == "lr=1e-3 epochs=5 (alexnet8)", "a sweep of one job"


def test_the_parent_run_is_named_by_what_the_sweep_varies():
    overrides = ["optimizer.lr=1e-3,1e-4", "epochs=5,10", "experiment=smoke", "dataset.data_dir=/data/tfds"]
    assert sweep_run_name(overrides) == "sweep optimizer.lr=1e-3,1e-4 epochs=5,10"
    assert sweep_run_name(["experiment=demo"]) == "sweep experiment=demo"  # the grid is in the preset


def test_a_parent_run_name_fits_mlflows_250_characters_and_shows_no_credentials():
    # PostgreSQL refuses a longer runs.name; SQLite would silently keep it.
    name = sweep_run_name([f"seed={','.join(map(str, range(200)))}", "mlflow.tracking_uri=http\\://u\\:pw@host"])
    assert len(name) == 250 and name.endswith("…")
    assert sweep_run_name(["seed=1,2", "mlflow.tracking_uri=http://u:pw@a,b"]).endswith("http://***@a,b")


def test_durations_read_like_a_clock():
    assert [format_duration(s) for s in (42, 185, 3725)] == ["42s", "3m05s", "1h02m"]


def test_the_estimate_is_the_mean_job_times_the_jobs_left():
    assert progress(65, [], 4) == "elapsed 1m05s"
    assert progress(65, [10, 20], 4) == "elapsed 1m05s, about 1m00s left"


def test_the_summary_shows_what_varies_best_first_and_why_jobs_failed():
    rows = [
        Row("optimizer.lr=1e-3 epochs=1 seed=4", "FINISHED", 0.5, 0.4),
        Row("optimizer.lr=1e-4 epochs=1 seed=4", "FINISHED", 0.7, 0.6),
        Row("optimizer.lr=-1 epochs=1 seed=4", "NOT STARTED", cause="optimizer.lr=-1.0: must be a positive number"),
    ]
    lines = format_summary(rows, where=["Sweep dir: x"]).splitlines()
    assert lines[1].startswith("Sweep done: 2/3 jobs finished.")
    assert lines[3].split() == ["*", "optimizer.lr=1e-4", "FINISHED", "0.7000", "0.6000"]
    assert lines[4].split() == ["optimizer.lr=1e-3", "FINISHED", "0.5000", "0.4000"]
    assert lines[5].split()[:2] == ["optimizer.lr=-1", "NOT"]
    assert lines[6] == "    cause: optimizer.lr=-1.0: must be a positive number"
    assert lines[-1] == "Sweep dir: x"


def test_with_replicate_seeds_the_summary_has_a_line_per_configuration_best_mean_first():
    rows = [
        Row("optimizer.lr=1e-3 seed=0 experiment=demo", "FINISHED", 0.95, 0.94),  # the single best run
        Row("optimizer.lr=1e-3 seed=1 experiment=demo", "FINISHED", 0.55, 0.50),
        Row("optimizer.lr=1e-4 seed=0 experiment=demo", "FINISHED", 0.90, 0.91),
        Row("optimizer.lr=1e-4 seed=1 experiment=demo", "FINISHED", 0.80, 0.81),
        Row("optimizer.lr=1e-4 seed=2 experiment=demo", "FAILED", cause="RuntimeError: disk full"),
    ]
    lines = format_summary(rows, where=[]).splitlines()
    assert lines[1].startswith("Sweep done: 4/5 jobs finished. Best (*) has the best mean val_accuracy over its seeds")
    assert lines[3].split() == ["*", "optimizer.lr=1e-4", "2/3", "0.8500", "±", "0.0707", "0.8600"]
    assert lines[4] == "    optimizer.lr=1e-4 seed=2: FAILED, RuntimeError: disk full"
    assert lines[5].split() == ["optimizer.lr=1e-3", "2/2", "0.7500", "±", "0.2828", "0.7200"]


def test_unfinished_rows_keep_the_grids_order_whatever_their_numbers():
    rows = [
        Row("lr=1", "FAILED", float("nan"), None, cause="diverged at epoch 1"),
        Row("lr=2", "FINISHED", 0.5, 0.5),
        Row("lr=3", "NOT STARTED", cause="x"),
        Row("lr=4", "FAILED", 0.9, None, cause="y"),
    ]
    table = format_summary(rows, where=[]).splitlines()[3:]
    assert [line.split()[0] for line in table if not line.startswith("    cause")] == ["*", "lr=1", "lr=3", "lr=4"]


def test_a_point_whose_split_selects_nothing_is_refused_before_anything_runs(loader, tfds_dir):
    fixed = ["experiment=smoke", f"dataset.data_dir={tfds_dir}"]
    master = compose(config_name="config", overrides=fixed, return_hydra_config=True)
    points = [[*fixed, "dataset.train_split='train[:64]'"], [*fixed, "dataset.train_split='train[90%:10%]'"]]
    good, empty = grid.compose(master, points, loader)
    assert good.refused is None and good.params["dataset.train_split"] == "train[:64]"
    assert empty.refused == (
        "dataset.train_split='train[90%:10%]': selects no example of shapes's train split (2,000 examples)"
    )
