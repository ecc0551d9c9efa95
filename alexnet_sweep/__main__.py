"""`python -m alexnet_sweep [-m] [key=value ...]`: one training job, or with -m a Hydra sweep of them."""

import signal

import hydra
from omegaconf import DictConfig

from alexnet_sweep.config import register_configs


@hydra.main(version_base="1.3", config_path="pkg://alexnet_sweep.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Runs the job Hydra composed; returns its val_accuracy for sweepers that optimize it."""
    from alexnet_sweep.sweep import run_job  # TensorFlow is imported only once a job really runs

    return run_job(cfg)


def cli() -> None:
    """Registers the config schemas, then hands the command line to Hydra."""
    register_configs()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`/preemption stops a job as Ctrl-C does
    main()


if __name__ == "__main__":
    cli()
