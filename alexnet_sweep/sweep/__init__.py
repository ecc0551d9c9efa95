"""A sweep of jobs, from the command line's grid to the summary.

grid.py expands and composes the grid; plan.py decides what each job does; state.py is what the jobs are told;
parent.py keeps the parent run; summary.py writes the terminal's lines; runner.py runs it all from start to end.
"""
