"""The launcher configs compose, and the checks our launchers add to the plugins' (no jobs run here)."""

import pytest
from hydra import compose, initialize_config_module
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.utils import get_class

from alexnet_sweep import launching
from alexnet_sweep.errors import UserInputError

OURS = "hydra_plugins.alexnet_sweep_plugins"
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"


def hydra_config(*overrides):
    with initialize_config_module(config_module="alexnet_sweep.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True).hydra


@pytest.mark.parametrize(
    ("launcher", "target", "keys"),
    [
        # One key each where our default differs from the plugin's own config of the same name: ours is in effect.
        ("joblib", JOBLIB, {"n_jobs": 2}),
        ("ray_local", f"{OURS}.ray_launcher.RayLauncher", {"ray.init.address": "local", "ray.remote.num_gpus": "auto"}),
        ("ray", f"{OURS}.ray_launcher.RayLauncher", {"ray.init.address": "auto", "ray.remote.max_retries": 0}),
        ("slurm", f"{SUBMITIT}.SlurmLauncher", {"timeout_min": 240}),
        ("submitit_local", f"{SUBMITIT}.LocalLauncher", {}),
    ],
)  # fmt: skip
def test_each_launcher_config_composes_with_its_keys(launcher, target, keys):
    hydra = hydra_config(f"hydra/launcher={launcher}")
    assert hydra.launcher._target_ == target
    for key, value in keys.items():
        node = hydra.launcher
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert issubclass(get_class(target), Launcher), "the plugin is installed and the class exists"


def test_keys_the_plugins_leave_out_are_set_without_plus():
    # hydra-ray-launcher's schema has only `address` under ray.init: `num_cpus` would need `+` on the command line.
    hydra = hydra_config("hydra/launcher=ray_local", "hydra.launcher.ray.init.num_cpus=2",
                         "hydra.launcher.ray.remote.num_gpus=0.5")  # fmt: skip
    assert hydra.launcher.ray.init.num_cpus == 2
    assert hydra.launcher.ray.remote.num_gpus == 0.5


def test_our_sweeper_and_ray_launcher_are_registered_with_hydra():
    launchers = {f"{cls.__module__}.{cls.__name__}" for cls in Plugins.instance().discover(Launcher)}
    sweepers = {f"{cls.__module__}.{cls.__name__}" for cls in Plugins.instance().discover(Sweeper)}
    assert f"{OURS}.ray_launcher.RayLauncher" in launchers
    assert f"{OURS}.sweeper.GridSweeper" in sweepers
    assert hydra_config().sweeper._target_ == f"{OURS}.sweeper.GridSweeper", "the default sweeper is ours"


def test_a_missing_plugin_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(launching.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserInputError) as caught:
        launching.check_plugin_installed(hydra_config("hydra/launcher=ray_local").launcher)
    assert str(caught.value) == (
        f"hydra.launcher._target_='{OURS}.ray_launcher.RayLauncher': its Hydra plugin is not installed; "
        "pip install 'alexnet-sweep[ray]'"
    )


CPU_NODE = {"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e10}}
GPU_NODE = {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 4.0}}
DEAD_GPU_NODE = {"Alive": False, "Resources": {"CPU": 16.0, "GPU": 8.0}}


@pytest.mark.parametrize(
    ("remote", "nodes", "num_gpus"),
    [
        ({"num_cpus": 1, "num_gpus": "auto"}, [CPU_NODE], 0),
        ({"num_cpus": 1, "num_gpus": "auto"}, [CPU_NODE, GPU_NODE], 1),
        ({"num_cpus": 1, "num_gpus": 0.5}, [GPU_NODE], 0.5),
        ({"num_cpus": 1, "num_gpus": 4}, [GPU_NODE], 4),
    ],
)
def test_gpu_requests_a_node_can_meet_pass(remote, nodes, num_gpus):
    assert launching.resolve_ray_resources(remote, nodes) == {**remote, "num_gpus": num_gpus}


@pytest.mark.parametrize(
    ("remote", "nodes", "message"),
    [
        ({"num_gpus": 1}, [CPU_NODE], "hydra.launcher.ray.remote.num_gpus=1: no node of the Ray cluster has that "
                                      "many GPUs (per node: 0), so Ray would wait for ever; ask for at most 0"),
        ({"num_gpus": 8}, [GPU_NODE, DEAD_GPU_NODE], "hydra.launcher.ray.remote.num_gpus=8: no node of the Ray "
                                                     "cluster has that many GPUs (per node: 4)"),
        ({"num_cpus": 4}, [CPU_NODE], "hydra.launcher.ray.remote.num_cpus=4: no node of the Ray cluster has "
                                      "that many CPUs (per node: 2)"),
        ({"num_gpus": "two"}, [GPU_NODE], "hydra.launcher.ray.remote.num_gpus='two': must be a number >= 0"),
    ],
)  # fmt: skip
def test_requests_no_node_can_meet_fail_at_once(remote, nodes, message):
    with pytest.raises(UserInputError) as caught:
        launching.resolve_ray_resources(remote, nodes)
    assert str(caught.value).startswith(message)
