"""Makes Hydra use alexnet_sweep's schemas, sweeper, launcher adapter and launcher configs.

Call `register()` before Hydra composes a config: `python -m alexnet_sweep` does, and so do the tests and the bench.
"""

from __future__ import annotations

from importlib.resources import files

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

from alexnet_sweep.config import register_configs

PLUGINS = "hydra_plugins.alexnet_sweep_plugins"


def register() -> None:
    """Registers the config schemas, our Hydra plugins and our `hydra/launcher` and `hydra/sweeper` configs.

    - Hydra finds plugins by listing the `hydra_plugins` package, and pkgutil cannot list the part of that
      namespace an editable install (PEP 660) maps in: `Plugins.register` (Hydra's public call for this) adds them.
    - Our launcher configs (hydra_plugins/alexnet_sweep_plugins/launcher/) are stored under the plugins' own names
      (`hydra/launcher=joblib`, `ray`, `submitit_local`) after Hydra has scanned the plugins, so ours win. As YAML
      files in conf/ they would be matched against the plugins' schemas of the same names, a deprecated Hydra
      behaviour that warns on every run.
    """
    from hydra_plugins.alexnet_sweep_plugins import optuna_sweeper, ray_launcher, sweeper

    register_configs()
    plugins = Plugins.instance()  # scans hydra_plugins now, which stores the plugins' own configs
    plugins.register(sweeper.GridSweeper)
    plugins.register(optuna_sweeper.OptunaSweeper)
    if hasattr(ray_launcher, "RayLauncher"):
        plugins.register(ray_launcher.RayLauncher)
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="alexnet_sweep", node=sweeper.GridSweeperConf, provider="alexnet_sweep")
    store.store(group="hydra/sweeper", name="optuna", node=optuna_sweeper.OptunaSweeperConf, provider="alexnet_sweep")
    for config in files(PLUGINS).joinpath("launcher").iterdir():
        if config.name.endswith(".yaml"):
            name, node = config.name.removesuffix(".yaml"), OmegaConf.create(config.read_text())
            store.store(group="hydra/launcher", name=name, node=node, provider="alexnet_sweep")
