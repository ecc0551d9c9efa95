"""`python -m alexnet_sweep [-m] [key=value ...]`: one training job, or with -m a Hydra sweep of them."""

import logging
import signal
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from alexnet_sweep.config import register_configs, validate
from alexnet_sweep.errors import UserInputError
from hydra_plugins.alexnet_sweep_launchers.launchers import register_launchers


@hydra.main(version_base="1.3", config_path="pkg://alexnet_sweep.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Runs the job Hydra composed; returns its val_accuracy for sweepers that optimize it."""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        try:
            validate(cfg)  # a bad value is reported in a second, not after TensorFlow's import
        except UserInputError as err:
            logging.getLogger(__name__).error("%s", err)
            sys.exit(2)
    from alexnet_sweep.sweep import run_job  # TensorFlow is imported only once a job really runs

    return run_job(cfg)


def cli() -> None:
    """Registers the config schemas, then hands the command line to Hydra."""
    register_configs()
    register_launchers()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`/preemption stops a job as Ctrl-C does
    main()


if __name__ == "__main__":
    cli()
