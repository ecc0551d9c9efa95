"""A sweep of jobs, from the command line's grid to the summary.

grid.py expands and composes the grid; planning.py decides what each job does (a `plan.Plan`); state.py is what
the jobs are told; parent.py keeps the parent run; summary.py writes the terminal's lines; runner.py runs it all.
"""
