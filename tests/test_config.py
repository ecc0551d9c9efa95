import itertools
import re
from importlib.resources import files

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from alexnet_sweep.config import validate
from alexnet_sweep.errors import UserInputError
from tests.conftest import run_cli

DATASETS = {"cifar10": "cifar10", "imagenette": "imagenette/320px-v2", "shapes": "shapes"}
MODELS = {"alexnet8": [4096, 4096], "alexnet9": [4096, 4096, 4096]}
OPTIMIZERS = ("adam", "sgd")


@pytest.mark.parametrize(("dataset", "model", "optimizer"), itertools.product(DATASETS, MODELS, OPTIMIZERS))
def test_every_group_option_composes(make_cfg, dataset, model, optimizer):
    cfg = make_cfg(f"dataset={dataset}", f"model={model}", f"optimizer={optimizer}")
    assert cfg.dataset.name == DATASETS[dataset]
    assert cfg.model.name == model
    assert list(cfg.model.dense_units) == MODELS[model]
    assert cfg.optimizer.name == optimizer
    validate(cfg)


@pytest.mark.parametrize("experiment", ["smoke", "demo", "seed_study"])
def test_every_experiment_composes_and_validates(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    validate(cfg)


def test_defaults_are_the_reference_study(make_cfg):
    cfg = make_cfg()
    assert (cfg.dataset.name, cfg.model.name, cfg.optimizer.name) == ("cifar10", "alexnet8", "adam")
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer.lr, cfg.model.input_size) == (10, 64, 1e-4, 227)
    assert (cfg.dataset.train_split, cfg.dataset.val_split, cfg.dataset.test_split) == (
        "train[:80%]",
        "train[80%:]",
        "test",
    )
    assert cfg.dataset.data_dir is None
    assert cfg.mlflow.tracking_uri == "sqlite:///mlflow.db"


def test_imagenette_uses_the_reference_splits(make_cfg):
    cfg = make_cfg("dataset=imagenette")
    assert (cfg.dataset.train_split, cfg.dataset.val_split, cfg.dataset.test_split) == (
        "train",
        "validation[:50%]",
        "validation[50%:]",
    )


def test_sgd_has_momentum(make_cfg):
    assert make_cfg("optimizer=sgd").optimizer.momentum == 0.9


def test_command_line_beats_experiment_presets(make_cfg):
    cfg = make_cfg("experiment=smoke", "epochs=2", "model.input_size=99")
    assert (cfg.epochs, cfg.model.input_size, cfg.dataset.name) == (2, 99, "shapes")


def test_sweep_presets_define_the_grids(make_cfg):
    with_hydra = make_cfg("experiment=seed_study")
    assert with_hydra.dataset.name == "cifar10"
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
        for name, expected in {
            "demo": {"optimizer.lr": "1e-3,1e-4,5e-5", "epochs": "5,10"},
            "seed_study": {"optimizer.lr": "1e-3,1e-4,5e-5", "epochs": "5,10", "model": "alexnet8,alexnet9"},
        }.items():
            cfg = compose(config_name="config", overrides=[f"experiment={name}"], return_hydra_config=True)
            assert dict(cfg.hydra.sweeper.params) == expected


@pytest.mark.parametrize("override", ["foo=1", "optimizer.momentum=0.9", "model.units=3", "model=schema"])
def test_unknown_key_is_an_error(make_cfg, override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)):
        make_cfg(override)


@pytest.mark.parametrize(("override", "message"), [("+foo=1", "foo=1: "), ("+optimizer.bar=x", "optimizer.bar='x': ")])
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
    assert str(caught.value) == expected


def test_help_lists_every_group_option(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    listed = {}
    for line in result.stdout.splitlines():
        group, _, options = line.partition(":")
        if group in ("dataset", "model", "optimizer", "experiment"):
            listed.setdefault(group, set(options.replace("|", " ").split()))  # the first: the groups section
    assert set(listed) == {"dataset", "model", "optimizer", "experiment"}
    for group, shown in listed.items():
        options = {
            path.stem for path in files("alexnet_sweep.conf").joinpath(group).iterdir() if path.suffix == ".yaml"
        }
        assert options <= shown, group
