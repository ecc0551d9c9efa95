"""`python -m alexnet_sweep.bench`: our training path against the reference notebook's, measured in one run."""

import logging

from alexnet_sweep.bench.cli import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("absl").setLevel(logging.WARNING)
    main()
