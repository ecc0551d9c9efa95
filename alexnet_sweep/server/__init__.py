"""`python -m alexnet_sweep.server` (`make server`): an MLflow tracking server for a team, on PostgreSQL.

By default it starts a PostgreSQL cluster of its own under `server/postgres` (see `postgres.py`) and serves
artifacts from `server/artifacts` through the server, so jobs on other machines need only its URL:
`mlflow.tracking_uri=http://HOST:PORT`. `--backend-store-uri` points it at a database you already have instead.
It listens on 127.0.0.1 unless `--host` says otherwise.

Modules: `cli` (the command line and `mlflow server`), `postgres` (the PostgreSQL cluster of our own).
"""
