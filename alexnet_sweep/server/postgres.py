"""A PostgreSQL cluster of our own in a folder, on a loopback port: the default backend of `make server`.

It uses the PostgreSQL programs of the machine (Debian: `apt-get install postgresql`), needs no root and touches no
system cluster. The database `mlflow` belongs to the role `mlflow`, whose password is generated once and kept in
`<folder>/mlflow_password` (mode 600); so does the database `optuna`, where studies (`hydra/sweeper=optuna`) live.
Run as root, the programs run as the `postgres` user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alexnet_sweep.errors import UserInputError

log = logging.getLogger(__name__)

DATABASE = ROLE = "mlflow"
STUDIES = "optuna"  # hydra/sweeper=optuna's studies: a database of their own (both schemas keep alembic_version)
SYSTEM_USER = "postgres"  # who runs PostgreSQL when we are root


@dataclass(frozen=True)
class LocalPostgres:
    """A PostgreSQL cluster kept in `folder` (data, socket, log, password) that listens on 127.0.0.1:`port`."""

    folder: Path
    port: int = 5433  # not 5432, where a system cluster may listen

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", self.folder.resolve())  # the programs run from / (see _run)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def password_file(self) -> Path:
        return self.folder / "mlflow_password"

    def uri(self) -> str:
        """The SQLAlchemy URL MLflow connects with (it holds the password: show it only through `redact`)."""
        password = self.password_file.read_text().strip()
        return f"postgresql+psycopg2://{ROLE}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    def study_uri(self) -> str:
        """The SQLAlchemy URL of the studies' database (it holds the password: show it only through `redact`)."""
        return self.uri().rsplit("/", 1)[0] + f"/{STUDIES}"

    def start(self) -> str:
        """Creates the cluster, role and database on first use, starts the server, and returns `uri()`.

        Raises:
            UserInputError: If PostgreSQL is not installed or does not start (its log is named).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(24))
        if os.geteuid() == 0:
            shutil.chown(self.folder, SYSTEM_USER)
        log_file = self.folder / "postgres.log"
        try:
            if not (self.data_dir / "PG_VERSION").exists():
                self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8",
                          "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
            if not self.running():
                options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
                self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(log_file), "-o", options, "-w", "start")
            self._create_role_and_database()
        except subprocess.CalledProcessError as err:
            program = Path(err.cmd[err.cmd.index("--") + 1 if "--" in err.cmd else 0]).name
            reason = ((err.stderr or "").strip().splitlines() or [f"exit status {err.returncode}"])[-1]
            raise UserInputError(f"PostgreSQL in {self.folder} (port {self.port}): {program} failed: {reason} "
                                 f"(log: {log_file})") from None  # fmt: skip
        return self.uri()

    def running(self) -> bool:
        """Whether the cluster's server is up (`pg_ctl status`)."""
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "status")
        except subprocess.CalledProcessError:
            return False
        return True

    def stop(self) -> None:
        """Stops the server (fast shutdown: open connections are closed)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def _create_role_and_database(self) -> None:
        password = self.password_file.read_text().strip()
        if not self._sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"):
            self._sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        for database in (DATABASE, STUDIES):
            if not self._sql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
                self._sql(f"CREATE DATABASE {database} OWNER {ROLE}")

    def _sql(self, statement: str) -> str:
        return self._run("psql", "-h", str(self.folder), "-p", str(self.port), "-U", "postgres",
                         "-d", "postgres", "-tAc", statement)  # fmt: skip

    def _run(self, program: str, *args: str) -> str:
        command = [postgres_program(program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
        if result.returncode != 0:
            log.debug("%s failed (%d): %s", program, result.returncode, result.stderr.strip())
            raise subprocess.CalledProcessError(result.returncode, command, result.stdout, result.stderr)
        return result.stdout.strip()


def postgres_program(name: str) -> str:
    """Finds a PostgreSQL program: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin (newest first).

    Raises:
        UserInputError: If PostgreSQL is not installed.
    """
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version, reverse=True)
    if candidates:
        return candidates[0]
    raise UserInputError(
        f"PostgreSQL's {name} was not found: install PostgreSQL (Debian: apt-get install postgresql, or make "
        "postgres) or pass --backend-store-uri of a database you have"
    )


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0
