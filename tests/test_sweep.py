"""Small pure helpers of the sweep glue (the sweeps themselves run in test_cli, test_parallel, test_server)."""

from alexnet_sweep.sweep import format_duration, sweep_run_name


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
