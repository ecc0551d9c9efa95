"""Composition and validation of the config: fast, nothing trains (the optimizer tests import Keras, nothing more)."""

import pydoc
import re
from importlib.resources import files

import keras
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from alexnet_sweep import config
from alexnet_sweep.architecture import training_memory
from alexnet_sweep.config import validate
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.optimizer import build_optimizer
from tests.conftest import run_cli

GROUPS = ("dataset", "model", "optimizer", "experiment")


def options(group):
    """The options the package ships for a config group: one per YAML file, so a new file is tested too."""
    return sorted(path.stem for path in files("alexnet_sweep.conf").joinpath(group).iterdir() if path.suffix == ".yaml")


@pytest.mark.parametrize(("group", "option"), [(group, option) for group in GROUPS for option in options(group)])
def test_every_shipped_option_composes_and_validates(make_cfg, group, option):
    validate(make_cfg(f"{group}={option}"))


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_optimizer_yaml_builds_its_target_with_lr_and_its_own_arguments(make_cfg, option):
    cfg = make_cfg(f"optimizer={option}", "optimizer.lr=0.0042")
    built = build_optimizer(cfg.optimizer)
    assert type(built) is pydoc.locate(cfg.optimizer._target_)
    assert built.get_config()["learning_rate"] == pytest.approx(0.0042)
    arguments = {key: value for key, value in cfg.optimizer.items() if key not in ("_target_", "name", "lr")}
    assert arguments, "an optimizer YAML states its arguments with their reasons"
    assert {key: built.get_config()[key] for key in arguments} == pytest.approx(arguments)


def test_the_target_picks_the_class_and_its_arguments_follow(make_cfg):
    rmsprop = build_optimizer(make_cfg("optimizer._target_=keras.optimizers.RMSprop", "~optimizer.beta_1",
                                       "~optimizer.beta_2", "+optimizer.rho=0.8").optimizer)  # fmt: skip
    assert type(rmsprop) is keras.optimizers.RMSprop and rmsprop.get_config()["rho"] == pytest.approx(0.8)


def test_an_argument_added_on_the_command_line_reaches_the_optimizer(make_cfg):
    built = build_optimizer(make_cfg("+optimizer.clipnorm=1.5").optimizer)
    assert built.get_config()["clipnorm"] == 1.5


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["optimizer=sgd", "optimizer.momentum=-0.5"],
         "optimizer.momentum=-0.5: SGD rejects it: `momentum` must be a float between [0, 1]."),
        (["+optimizer.bar=x"], "optimizer.bar='x': Adam rejects it: Argument(s) not recognized: {'bar': 'x'}"),
        (["+optimizer.clipnorm=1.0", "+optimizer.clipvalue=1.0"],
         "optimizer.clipnorm=1.0 optimizer.clipvalue=1.0: Adam rejects them: Only one of `clipnorm`, `clipvalue`"),
        (["optimizer.beta_1=abc"], "optimizer.beta_1='abc': Adam expects a number (its default is 0.9)"),
        (["optimizer=sgd", "optimizer.nesterov=1"], "optimizer.nesterov=1: SGD expects true or false"),
        (["optimizer._target_=keras.optimizers.Nope"],
         "optimizer._target_='keras.optimizers.Nope': cannot be imported; name a class such as"),
        (["optimizer._target_=no_such_package.Optimizer"], "optimizer._target_='no_such_package.Optimizer': cannot"),
        (["optimizer._target_=keras.layers.Dense"], "optimizer._target_='keras.layers.Dense': not a Keras optimizer"),
    ],
)  # fmt: skip
def test_a_rejected_optimizer_is_one_line_naming_keys_and_values(make_cfg, overrides, expected):
    cfg = make_cfg(*overrides)
    validate(cfg)  # what Keras refuses, the config's checks cannot know
    with pytest.raises(UserInputError) as caught:
        build_optimizer(cfg.optimizer)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_a_users_optimizer_yaml_is_typed_and_checked_like_ours(make_cfg, tmp_path):
    folder = tmp_path / "conf" / "optimizer"
    folder.mkdir(parents=True)
    (folder / "typo.yaml").write_text("_target_: keras.optimizers.RMSprop\nname: typo\nlr: fast\n")
    (folder / "untargeted.yaml").write_text("name: untargeted\nlr: 1e-3\nrho: 0.8\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    with pytest.raises(ConfigCompositionException, match="optimizer/typo") as caught:
        make_cfg(searchpath, "optimizer=typo")
    assert "could not be converted to Float" in str(caught.value) and "optimizer.lr" in str(caught.value)
    with pytest.raises(UserInputError, match=r"^optimizer\._target_=\?\?\?: has no value"):
        validate(make_cfg(searchpath, "optimizer=untargeted"))


def test_command_line_beats_experiment_presets(make_cfg):
    cfg = make_cfg("experiment=smoke", "epochs=2", "model.input_size=99")
    assert (cfg.epochs, cfg.model.input_size, cfg.dataset.name) == (2, 99, "shapes")


def test_every_value_of_every_presets_grid_composes_and_validates():
    tried = []
    with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
        for experiment in options("experiment"):
            preset = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
            for key, values in (preset.hydra.sweeper.params or {}).items():
                for value in preset_values(preset, key, values):
                    overrides = [f"experiment={experiment}", f"{key}={value}"]
                    validate(compose(config_name="config", overrides=overrides))
                    tried.append(overrides)
    assert tried, "some preset defines a grid (experiment=demo)"
    assert any("experiment=search" in overrides for overrides in tried), "and one a study"


def preset_values(preset, key, values):
    """A grid's values, or a study's (experiment=search): each choice, each bound of an interval."""
    if "sampler" not in preset.hydra.sweeper:
        return values.split(",")
    from alexnet_sweep.study.space import parse_space

    dist = parse_space(None, [f"{key}={values}"], None).distributions[key]
    return list(dist.choices) if hasattr(dist, "choices") else [dist.low, dist.high]


@pytest.mark.parametrize("override", ["foo=1", "optimizer.momentum=0.9", "model.units=3", "model=schema"])
def test_unknown_key_is_an_error(make_cfg, override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)):
        make_cfg(override)


@pytest.mark.parametrize(("override", "message"), [("+foo=1", "foo=1: "), ("+model.units=3", "model.units=3: ")])
def test_keys_added_with_plus_are_rejected_too(make_cfg, override, message):
    with pytest.raises(UserInputError, match=r"^" + re.escape(message) + "not a config key"):
        validate(make_cfg(override))


@pytest.mark.parametrize("override", ["optimizer.lr=abc", "epochs=ten", "batch_size=1.5"])
def test_schema_types_values(make_cfg, override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        make_cfg(override)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optimizer.lr=0", "optimizer.lr=0.0: must be a positive number"),
        ("optimizer.lr=-1e-3", "optimizer.lr=-0.001: must be a positive number"),
        ("optimizer.lr=nan", "optimizer.lr=nan: must be a positive number"),
        ("optimizer.lr=inf", "optimizer.lr=inf: must be a positive number"),
        ("optimizer._target_=???", "optimizer._target_=???: has no value; set it in its YAML file"),
        ("optimizer._target_=''", "optimizer._target_='': must name a class, e.g. keras.optimizers.Adam"),
        ("+optimizer.learning_rate=0.1", "optimizer.learning_rate=0.1: set optimizer.lr instead"),
        ("dataset.builder_module=my-datasets", "dataset.builder_module='my-datasets': must be a module name, e.g."),
        ("epochs=0", "epochs=0: must be at least 1"),
        ("batch_size=-4", "batch_size=-4: must be at least 1"),
        ("model.input_size=66", "model.input_size=66: too small for alexnet8: the minimum is 67"),
        ("model.dropout=1.0", "model.dropout=1.0: must be in [0, 1)"),
        ("model.dense_units=[]", "model.dense_units=[]: needs at least one layer of >= 1 units"),
        ("seed=-1", "seed=-1: must be in [0, 2**32)"),
        ("model.name=???", "model.name=???: has no value; set it in its YAML file or on the command line"),
        ("precision=fp16", "precision='fp16': must be one of auto | float32 | mixed_bfloat16 | mixed_float16"),
        ("precision=bfloat16", "precision='bfloat16': must be one of auto | float32 | mixed_bfloat16 | mixed_float16"),
        ("jit_compile=xla", "jit_compile='xla': must be one of auto | true | false"),
        ("jit_compile=1", "jit_compile=1: must be one of auto | true | false"),
        ("gpu_memory=0", "gpu_memory=0: must be growth or a fraction of the GPU's memory in (0, 1]"),
        ("gpu_memory=1.5", "gpu_memory=1.5: must be growth or a fraction of the GPU's memory in (0, 1]"),
        ("gpu_memory=all", "gpu_memory='all': must be growth or a fraction of the GPU's memory in (0, 1]"),
    ],
)
def test_validate_names_key_and_value(make_cfg, override, expected):
    with pytest.raises(UserInputError) as caught:
        validate(make_cfg(override))
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_help_lists_every_group_option(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    listed = {}
    for line in result.stdout.splitlines():
        group, _, shown = line.partition(":")
        if group in GROUPS:
            listed.setdefault(group, set(shown.replace("|", " ").split()))  # the first: the groups section
    assert set(listed) == set(GROUPS)
    for group, shown in listed.items():
        assert set(options(group)) <= shown, group


GIB = 2**30
# alexnet8 at 227x227, batch 64: 58,324,746 parameters x 16 bytes + 64 x 1,463,813 activations x 2 bytes (auto)
REFERENCE_BYTES = 58_324_746 * 16 + 64 * 1_463_813 * 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.input_size=100000"],
         "model.input_size=100000: alexnet8 at 100000x100000 (dense_units [4096, 4096], batch_size 64) needs about "
         "184.6 TiB to train (10,226,917,570,314 parameters x 16 bytes for weight, gradient and Adam's moments, plus "
         "activations), more than this machine's 24.0 GiB of memory"),
        (["model.input_size=2000"], "model.input_size=2000: alexnet8 at 2000x2000 (dense_units [4096, 4096], "
         "batch_size 64) needs about 72.9 GiB to train (3,922,327,306 parameters"),
        (["model.dense_units=[100000000]"], "model.dense_units=[100000000]: alexnet8 at 227x227"),
        (["model.input_size=200", "model.dense_units=[100000000]"], "model.dense_units=[100000000]: alexnet8 at 200x"),
        (["batch_size=100000"], "batch_size=100000: alexnet8 at 227x227 (dense_units [4096, 4096], batch_size "
         "100000) needs about 273.5 GiB"),
    ],
)  # fmt: skip
def test_a_model_too_big_for_the_machine_is_one_line_naming_what_to_lower(make_cfg, monkeypatch, overrides, expected):
    monkeypatch.setattr(config, "host_memory", lambda: 24 * GIB)
    with pytest.raises(UserInputError) as caught:
        validate(make_cfg(*overrides))
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [[], ["experiment=demo"], ["experiment=smoke"], ["model=alexnet9"], ["dataset=imagenette"], ["precision=float32"]],
)
def test_the_reference_and_the_presets_fit_a_24_gib_machine(make_cfg, monkeypatch, overrides):
    monkeypatch.setattr(config, "host_memory", lambda: 24 * GIB)
    validate(make_cfg(*overrides))


def test_the_memory_check_is_the_estimate_not_a_fixed_maximum(make_cfg, monkeypatch):
    cfg = make_cfg()  # alexnet8 at 227x227, batch 64, precision=auto
    assert training_memory(227, [4096, 4096], 64, activation_bytes=2) == REFERENCE_BYTES
    monkeypatch.setattr(config, "host_memory", lambda: REFERENCE_BYTES)
    validate(cfg)
    monkeypatch.setattr(config, "host_memory", lambda: REFERENCE_BYTES - 1)
    with pytest.raises(UserInputError, match=r"^model\.dense_units=\[4096, 4096\]: .* about 1\.0 GiB .* 1\.0 GiB"):
        validate(cfg)
    monkeypatch.setattr(config, "host_memory", lambda: None)  # a system that does not say: nothing to refuse
    validate(make_cfg("model.input_size=100000"))


def test_host_memory_is_physical_memory_or_a_lower_container_limit(monkeypatch, tmp_path):
    with open("/proc/meminfo") as meminfo:
        physical = int(meminfo.readline().split()[1]) * 1024  # MemTotal: ... kB
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    monkeypatch.setattr(config, "CGROUP_MEMORY_LIMITS", (v2, v1))
    assert config.host_memory() == physical, "no cgroup files"
    v2.write_text("max\n")
    v1.write_text("9223372036854771712\n")  # cgroup v1's "no limit"
    assert config.host_memory() == physical
    v2.write_text(f"{2 * GIB}\n")
    assert config.host_memory() == 2 * GIB


@pytest.mark.parametrize(
    ("size", "shown"), [(5, "5 B"), (512 * 2**20, "512 MiB"), (1.25 * GIB, "1.2 GiB"), (3 * 2**50, "3.0 PiB")]
)
def test_format_bytes(size, shown):
    assert config.format_bytes(size) == shown
