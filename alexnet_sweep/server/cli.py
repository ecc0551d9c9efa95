"""The command line of `python -m alexnet_sweep.server`: options, the backend check, `mlflow server` itself."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from alexnet_sweep.errors import UserInputError
from alexnet_sweep.redact import redact
from alexnet_sweep.server.postgres import LocalPostgres

log = logging.getLogger(__name__)
DESCRIPTION = "`python -m alexnet_sweep.server` (`make server`): an MLflow tracking server for a team, on PostgreSQL."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `python -m alexnet_sweep.server`."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_sweep.server", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default: 2)")
    parser.add_argument(
        "--backend-store-uri",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="database of runs, e.g. postgresql+psycopg2://USER:PASSWORD@HOST/DB (default: "
        "$MLFLOW_BACKEND_STORE_URI, else a PostgreSQL cluster of our own in --postgres-dir)",
    )
    parser.add_argument("--postgres-dir", type=Path, default=Path("server/postgres"))
    parser.add_argument("--postgres-port", type=int, default=5433)
    parser.add_argument("--artifacts-destination", default="server/artifacts",
                        help="where the server keeps artifacts (a folder, s3://..., ...)")  # fmt: skip
    return parser.parse_args(argv)


def mlflow_server_command(args: argparse.Namespace) -> list[str]:
    """The `mlflow server` command line: the backend URI is passed in the environment, never as an argument."""
    destination = args.artifacts_destination
    if "://" not in destination:
        destination = str(Path(destination).resolve())
    return [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port),
            "--workers", str(args.workers), "--artifacts-destination", destination]  # fmt: skip


def check_backend(uri: str) -> None:
    """Fails in one line if MLflow could not use the backend URI here.

    Raises:
        UserInputError: If it is PostgreSQL without psycopg2 installed, or a plain `postgresql://` URL (which
            SQLAlchemy 2.1 reads as psycopg 3, not installed).
    """
    if uri.startswith("postgresql://"):
        raise UserInputError(
            f"--backend-store-uri={redact(uri)!r}: write postgresql+psycopg2:// (plain postgresql:// asks "
            "SQLAlchemy for psycopg 3)"
        )
    if uri.startswith("postgresql+psycopg2://"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise UserInputError(
                f"--backend-store-uri={redact(uri)!r}: needs psycopg2; pip install 'alexnet-sweep[server]'"
            ) from None


def main(argv: list[str] | None = None) -> int:
    """Starts PostgreSQL if needed, then `mlflow server` in the foreground until Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    postgres = None
    try:
        uri = args.backend_store_uri
        if uri is None:
            postgres = LocalPostgres(args.postgres_dir, args.postgres_port)
            uri = postgres.start()
        check_backend(uri)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = mlflow_server_command(args)
    url = f"http://{args.host}:{args.port}"
    print(f"MLflow server on {url} with runs in {redact(uri)} and artifacts in {command[-1]}", flush=True)
    print(f"Jobs record into it with: mlflow.tracking_uri={url}", flush=True)
    if postgres is not None:
        print(f"Studies (hydra/sweeper=optuna) live beside it: export ALEXNET_SWEEP_STUDY_STORAGE="
              f"{redact(postgres.study_uri())} (the password is in {postgres.password_file})", flush=True)  # fmt: skip
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = subprocess.Popen(command, env=os.environ | {"MLFLOW_BACKEND_STORE_URI": uri})
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        return server.wait()
    finally:
        if postgres is not None:
            postgres.stop()
