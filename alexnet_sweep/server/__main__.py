"""`python -m alexnet_sweep.server`: the team tracking server, in the foreground until Ctrl-C or SIGTERM."""

import sys

from alexnet_sweep.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
