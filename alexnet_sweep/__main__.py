"""`python -m alexnet_sweep [-m] [key=value ...]`: one training job, or with -m a sweep of them."""

import logging
import os
import signal
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from alexnet_sweep.config import validate
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.plugins import register
from alexnet_sweep.redact import hide_tracking_credentials


@hydra.main(version_base="1.3", config_path="pkg://alexnet_sweep.conf", config_name="config")
def main(cfg: DictConfig) -> float | dict | None:
    """Runs the job Hydra composed: a single run, or one job of a sweep (the sweeper checked its config)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        from alexnet_sweep.job import run_sweep_job  # TensorFlow is imported only once a job really runs

        return run_sweep_job(cfg)
    try:
        validate(cfg)  # a bad value is reported in a second, not after TensorFlow's import
    except UserInputError as err:
        logging.getLogger(__name__).error("%s", err)
        sys.exit(2)
    from alexnet_sweep.job import run_single

    return run_single(cfg)


def cli() -> None:
    """Registers our configs and Hydra plugins, then hands the command line to Hydra.

    Hydra writes every override and the whole config into the run or sweep folder, so a tracking URI's password
    is moved from the command line into the environment first (`redact.hide_tracking_credentials`).
    """
    register()
    try:
        sys.argv[1:] = hide_tracking_credentials(sys.argv[1:], os.environ)
    except UserInputError as err:
        logging.getLogger(__name__).error("%s", err)
        sys.exit(2)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`/preemption stops a job as Ctrl-C does
    try:
        main()
    except KeyboardInterrupt:  # a sweep handles its own; this is a single run, or a sweep before its parent run
        logging.getLogger(__name__).error("Interrupted (Ctrl-C or SIGTERM); a run that had started ended KILLED")
        sys.exit(130)


if __name__ == "__main__":
    cli()
