"""`python -m alexnet_sweep.report`: writes a sweep's report and prints the path of its report.md."""

import sys

from alexnet_sweep.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
