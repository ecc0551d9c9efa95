"""The study's search space and settings: the official Optuna sweeper's grammar, and one-line errors."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from alexnet_sweep.errors import UserInputError
from alexnet_sweep.study.settings import StudySettings
from alexnet_sweep.study.space import parse_space


def test_the_official_grammar_becomes_optuna_distributions():
    space = parse_space(
        {"optimizer.lr": "tag(log, interval(1e-5, 1e-2))", "batch_size": "32,64"},
        ["model.dropout=interval(0.2, 0.6)", "epochs=range(2, 11, 4)", "model=choice(alexnet8, alexnet9)",
         "model.dense_units.0=tag(log, int(interval(16, 4096)))", "seed=1"],
        None,
    )  # fmt: skip
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
        "batch_size": CategoricalDistribution([32, 64]),
        "model.dropout": FloatDistribution(0.2, 0.6),
        "epochs": IntDistribution(2, 10, step=4),
        "model": CategoricalDistribution(["alexnet8", "alexnet9"]),
        "model.dense_units.0": IntDistribution(16, 4096, log=True),
    }
    assert space.fixed == ("seed=1",)
    point = {"optimizer.lr": 3e-4, "batch_size": 64, "model.dropout": 0.25, "epochs": 6, "model": "alexnet9",
             "model.dense_units.0": 512}  # fmt: skip
    assert space.overrides(point) == ["seed=1", "optimizer.lr=0.0003", "batch_size=64", "model.dropout=0.25",
                                      "epochs=6", "model=alexnet9", "model.dense_units.0=512"]  # fmt: skip


def test_the_command_line_overrides_the_preset_key_by_key_and_the_identity_follows_the_space():
    preset = {"optimizer.lr": "tag(log, interval(1e-5, 1e-2))", "batch_size": "32,64"}
    space = parse_space(preset, ["batch_size=128"], None)
    assert list(space.distributions) == ["optimizer.lr"] and space.fixed == ("batch_size=128",)
    assert space.identity() == parse_space(preset, ["batch_size=128"], None).identity()
    assert space.identity() != parse_space(preset, [], None).identity()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=interval(1e-2", "optimizer.lr=interval(1e-2"),
        ("model.dropout=interval(0.6, 0.2)", "model.dropout=interval(0.6, 0.2): `low <= high`"),
        ("epochs=range(5, 1)", "epochs=range(5, 1): the range is empty"),
        ("seed=3", "nothing to search"),
    ],
)
def test_bad_search_space_syntax_is_one_line_naming_the_override(override, message):
    with pytest.raises(UserInputError) as caught:
        parse_space(None, [override], None)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_grid_refuses_an_interval_and_caps_the_trials_at_its_size():
    space = parse_space(None, ["batch_size=32,64", "epochs=range(1, 4)"], None)
    assert StudySettings(sampler="grid", n_trials=100).trials_wanted(space) == 6
    assert space.grid() == {"batch_size": [32, 64], "epochs": [1, 2, 3]}
    continuous = parse_space(None, ["model.dropout=interval(0.2, 0.6)"], None)
    with pytest.raises(UserInputError, match=r"hydra.sweeper.params.model.dropout: sampler=grid lists values"):
        StudySettings(sampler="grid").make_sampler(continuous, 0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sampler": "cmaes"}, "hydra.sweeper.sampler=cmaes: one of tpe, random, qmc, grid, gp"),
        ({"pruner": "asha"}, "hydra.sweeper.pruner=asha: one of none, median, successive_halving, hyperband"),
        ({"direction": "up"}, "hydra.sweeper.direction=up: maximize or minimize"),
        ({"metric": "test_accuracy"}, "hydra.sweeper.metric=test_accuracy: one of loss, accuracy, val_loss"),
        ({"n_trials": 0}, "hydra.sweeper.n_trials=0: a whole number >= 1"),
        ({"max_failure_rate": 2}, "hydra.sweeper.max_failure_rate=2: a fraction from 0 to 1"),
        ({"pruner": "median", "pruner_args": {"reduction_factor": 3}}, "hydra.sweeper.pruner_args={'reduction_f"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(settings, message):
    with pytest.raises(UserInputError) as caught:
        StudySettings(**settings).check()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_study_lives_beside_a_sqlite_store_and_is_named_by_what_it_searches(tmp_path):
    space = parse_space(None, ["optimizer.lr=tag(log, interval(1e-5, 1e-2))"], None)
    settings = StudySettings(sampler="tpe", seed=0, pruner="successive_halving")
    assert settings.storage_url(f"sqlite:///{tmp_path}/mlflow.db") == f"sqlite:///{tmp_path}/optuna.db"
    name = settings.name("demo", space)
    assert name.startswith("demo tpe+successive_halving: optimizer.lr (") and name == settings.name("demo", space)
    assert StudySettings(sampler="random", seed=0).name("demo", space) != name
    with pytest.raises(UserInputError, match="hydra.sweeper.storage: a study beside mlflow.tracking_uri=http"):
        settings.storage_url("http://127.0.0.1:5000")


def test_a_rerun_draws_new_points_instead_of_repeating_the_first():
    space = parse_space(None, ["optimizer.lr=tag(log, interval(1e-5, 1e-2))"], None)
    settings = StudySettings(sampler="random", seed=0)
    first = settings.make_sampler(space, 0)
    assert first._rng.rng.random() != settings.make_sampler(space, 3)._rng.rng.random()
    assert settings.make_sampler(space, 3)._rng.rng.random() == settings.make_sampler(space, 3)._rng.rng.random()
