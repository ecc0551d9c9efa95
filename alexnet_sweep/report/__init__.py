"""The comparison report of a sweep, read from MLflow only: report.md, runs.csv, configs.csv and figures.

    python -m alexnet_sweep.report [--tracking-uri URI] [--experiment NAME] [--parent RUN_ID] [--out DIR]

writes the report of a sweep (default: the latest one in the experiment) and prints the path of its report.md.
The sweep calls `write_report` and `log_to_parent` at its end, which also attach the report to its parent run.
For an Optuna study (`hydra/sweeper=optuna`) the report adds a Study section, trials.csv and the study's figures;
runs the study pruned are listed apart and never ranked.

Modules: `runs` (a job run, a configuration's replicates), `data` (the sweep as read from MLflow), `findings`
(its sentences), `figures`, `tables` (one row per configuration: configs.csv), `markdown` (report.md and runs.csv),
`study` (a study's trials, best so far and parameter importances), `study_figures`, `study_text` (the Study and
Pruned trials sections, trials.csv), `text` (Markdown helpers), `publish` (writing the report and attaching it to
the parent run), `cli` (the command line).
"""

from alexnet_sweep.report.cli import main
from alexnet_sweep.report.data import Sweep, load_sweep
from alexnet_sweep.report.publish import Report, log_to_parent, write_report
from alexnet_sweep.report.runs import RunSummary

__all__ = ["Report", "RunSummary", "Sweep", "load_sweep", "log_to_parent", "main", "write_report"]
