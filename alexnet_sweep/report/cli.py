"""The report's command line: parses the options, opens the store read-only and finds the sweep to report.

Every error a user can cause or meet (a bad option, a store that is missing, not MLflow's or fails while it is
read, a run or experiment that is not there, an output folder that cannot be written) ends the program with one
line on stderr, `error: --option='value': what is wrong`, and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from sqlalchemy.exc import SQLAlchemyError

from alexnet_sweep.errors import UserInputError, first_line
from alexnet_sweep.redact import redact
from alexnet_sweep.report.data import latest_sweep_parent
from alexnet_sweep.report.publish import Report, write_report
from alexnet_sweep.tracking import one_line

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "alexnet_sweep"
DEFAULT_OUT = "reports/<parent run id>"
_SERVER_TIMEOUT_S = 5
# What reading a store can raise besides MLflow's own errors: a database's (through SQLAlchemy) or a server's.
_STORE_ERRORS = (MlflowException, SQLAlchemyError, requests.RequestException)
MLFLOW_TABLES = {"alembic_version", "experiments", "runs"}  # tables every MLflow SQL store has


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors (an unknown option, a missing value) in one line like every other error."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {first_line(message)} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the report of a sweep and prints the path of its report.md.

    Args:
        argv: The command line without the program name (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0, or 2 on bad input (after a one-line error on stderr).
    """
    parser = _Parser(
        prog="python -m alexnet_sweep.report",
        description="Write the comparison report (report.md, runs.csv, configs.csv, figures) of a sweep from MLflow.",
    )
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow store (default: %(default)s)")
    parser.add_argument("--experiment", help=f"experiment of the sweep (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--parent", help="the sweep's parent run id (default: the latest sweep in the experiment)")
    parser.add_argument("--out", type=Path, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        client = open_store(args.tracking_uri)
        parent_run_id = find_parent(client, args.tracking_uri, args.experiment, args.parent)
        out_dir = args.out if args.out is not None else Path("reports", parent_run_id)
        if out_dir.exists() and not out_dir.is_dir():
            raise UserInputError(f"--out={str(out_dir)!r}: exists and is not a folder")
        report = _write(client, args.tracking_uri, parent_run_id, out_dir)
    except UserInputError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return 2
    print(report.markdown)
    return 0


def _write(client: MlflowClient, tracking_uri: str, parent_run_id: str, out_dir: Path) -> Report:
    """`write_report`, with the store failing while it is read and a folder that cannot be written as bad input."""
    try:
        return write_report(client, parent_run_id, out_dir)
    except _STORE_ERRORS as err:  # before OSError: requests' errors are OSErrors
        raise UserInputError(
            f"--tracking-uri={redact(tracking_uri)!r}: reading the sweep failed: {one_line(err)}"
        ) from None
    except OSError as err:  # the folder or a file in it cannot be created or written (permissions, /proc, ...)
        raise UserInputError(f"--out={str(out_dir)!r}: cannot write the report there: {one_line(err)}") from None


def open_store(tracking_uri: str) -> MlflowClient:
    """Opens an existing tracking store for reading; creates nothing.

    Args:
        tracking_uri: The store's URI, as given to `--tracking-uri`.

    Returns:
        A client of the store.

    Raises:
        UserInputError: If a SQLite store's file is missing or holds no MLflow store, MLflow cannot use the URI,
            or no server answers.
    """
    option = f"--tracking-uri={redact(tracking_uri)!r}"
    if tracking_uri.startswith("sqlite:///"):  # MLflow would create its tables in any file, or a new file
        _check_sqlite_store(option, Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]))
    elif urlparse(tracking_uri).scheme in ("http", "https"):
        try:  # MLflow's client would retry an absent server for minutes
            requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=_SERVER_TIMEOUT_S)
        except requests.RequestException as err:
            raise UserInputError(f"{option}: no MLflow server answers ({type(err).__name__})") from None
    try:
        return MlflowClient(tracking_uri=tracking_uri)
    except Exception as err:  # an unknown scheme, the refused file store, a missing database driver, ...
        raise UserInputError(f"{option}: {type(err).__name__}: {first_line(err)}") from None


def _check_sqlite_store(option: str, path: Path) -> None:
    """Checks, read-only, that `path` is an SQLite database holding MLflow's tables."""
    if path.is_dir():
        raise UserInputError(f"{option}: {path.resolve()} is a folder, not an MLflow store")
    if not path.is_file():
        raise UserInputError(f"{option}: no MLflow store at {path.resolve()}")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as database:
            tables = {name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as err:  # not a database, unreadable
        raise UserInputError(f"{option}: {path.resolve()} cannot be read as SQLite: {first_line(err)}") from None
    if not MLFLOW_TABLES <= tables:
        raise UserInputError(f"{option}: {path.resolve()} holds no MLflow store (no MLflow tables)")


def find_parent(client: MlflowClient, tracking_uri: str, experiment: str | None, parent: str | None) -> str:
    """Returns the id of the sweep parent run to report: `parent`, or the latest sweep of `experiment`.

    Args:
        client: A client of the store.
        tracking_uri: The store's URI, named in error messages.
        experiment: `--experiment`, or None for the default experiment.
        parent: `--parent`, or None for the experiment's latest sweep.

    Returns:
        The parent run's id.

    Raises:
        UserInputError: If the experiment or run does not exist, the run is not a sweep's parent run, or the
            experiment holds no sweep; the message names the option and its value.
    """
    try:
        if parent is not None:
            return _check_parent(client, tracking_uri, experiment, parent)
        name = experiment or DEFAULT_EXPERIMENT
        found = client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage == "deleted":
            names = sorted(e.name for e in client.search_experiments())
            raise UserInputError(
                f"--experiment={name!r}: no such experiment in {tracking_uri} (it has: {', '.join(names) or 'none'})"
            )
        latest = latest_sweep_parent(client, found.experiment_id)
        if latest is None:
            raise UserInputError(f"--experiment={name!r}: holds no sweep (a parent run with job runs) to report")
        return latest.info.run_id
    except _STORE_ERRORS as err:
        raise UserInputError(f"--tracking-uri={redact(tracking_uri)!r}: {first_line(err)}") from None


def _check_parent(client: MlflowClient, tracking_uri: str, experiment: str | None, parent: str) -> str:
    option = f"--parent={parent!r}"
    try:
        run = client.get_run(parent)
    except MlflowException:
        raise UserInputError(f"{option}: no such run in {tracking_uri}") from None
    if MLFLOW_PARENT_RUN_ID in run.data.tags:
        raise UserInputError(f"{option}: is a job run of sweep {run.data.tags[MLFLOW_PARENT_RUN_ID]}; pass that id")
    experiment_name = client.get_experiment(run.info.experiment_id).name
    if experiment is not None and experiment != experiment_name:
        raise UserInputError(f"{option}: belongs to experiment {experiment_name!r}, not --experiment={experiment!r}")
    # One child is enough to tell a sweep's parent: this search needs no paging.
    if not client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'", max_results=1
    ):
        raise UserInputError(f"{option}: has no job runs, so it is not a sweep's parent run")
    return parent
