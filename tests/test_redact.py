"""Credentials in URIs are masked wherever we show or log a URI."""

import logging
import os

import mlflow
import pytest

from alexnet_sweep import tracking_store
from alexnet_sweep.errors import UserInputError
from alexnet_sweep.redact import (
    PASSWORD_VARIABLE,
    URI_VARIABLE,
    USERNAME_VARIABLE,
    RedactingFilter,
    has_credentials,
    hide_tracking_credentials,
    is_masked,
    mask_uri,
    redact,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("http://bob:s3cret@host:5000", "http://***@host:5000"),
        ("https://token@host/path", "https://***@host/path"),
        ("postgresql+psycopg2://mlflow:p%40ss@127.0.0.1:5433/mlflow", "postgresql+psycopg2://***@127.0.0.1:5433/mlflow"),
        ("mlflow.tracking_uri=http\\://bob\\:s3cret@host epochs=2", "mlflow.tracking_uri=http\\://***@host epochs=2"),
        ("'http://a:b@x' and 'mysql://c:d@y/db'", "'http://***@x' and 'mysql://***@y/db'"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://127.0.0.1:5000/#/experiments/1", "http://127.0.0.1:5000/#/experiments/1"),
        ("mail bob@example.com", "mail bob@example.com"),
        ("http://a:p@ss@host:5000/x and b@c", "http://***@host:5000/x and b@c"),  # @ in a password
        ("uri='http://a:p\'w@h'", "uri='http://***@h'"),
    ],
)  # fmt: skip
def test_redact_masks_user_info_of_every_uri(text, masked):
    assert redact(text) == masked
    assert has_credentials(text) == (text != masked)


def test_log_records_are_masked_after_formatting(caplog):
    logger = logging.getLogger("test_redact")
    handler = caplog.handler
    handler.addFilter(RedactingFilter())
    logger.warning("store %s, job %d", "http://bob:s3cret@host", 3)
    assert caplog.records[-1].getMessage() == "store http://***@host, job 3"


# --- a password typed on the command line never reaches Hydra (which writes the config into the output folders)

PASSWORD = "s3cret"
HTTP = f"http://alice:{PASSWORD}@host:5000"
POSTGRES = "postgresql+psycopg2://mlflow:p%40ss@127.0.0.1:5433/mlflow"


@pytest.mark.parametrize(
    ("arg", "shown", "real"),
    [
        (f"mlflow.tracking_uri={HTTP}", "mlflow.tracking_uri=http://***@host:5000", HTTP),
        (f"mlflow.tracking_uri=http\\://alice\\:{PASSWORD}@host", "mlflow.tracking_uri=http\\://***@host",
         f"http://alice:{PASSWORD}@host"),
        (f"++mlflow.tracking_uri='{HTTP}'", "++mlflow.tracking_uri='http://***@host:5000'", HTTP),
        ("mlflow.tracking_uri='http://a:p\\'w@h/x'", "mlflow.tracking_uri='http://***@h/x'", "http://a:p'w@h/x"),
        ("mlflow.tracking_uri=http://a:p@ss@h", "mlflow.tracking_uri=http://***@h", "http://a:p@ss@h"),
        (f"mlflow.tracking_uri={POSTGRES}", "mlflow.tracking_uri=postgresql+psycopg2://***@127.0.0.1:5433/mlflow",
         POSTGRES),
    ],
)  # fmt: skip
def test_a_password_on_the_command_line_moves_into_the_environment(make_cfg, arg, shown, real):
    environ = {"HOME": "/root"}
    args = hide_tracking_credentials(["-m", "epochs=1,2", arg, "--cfg", "job"], environ)
    assert args == ["-m", "epochs=1,2", shown, "--cfg", "job"]
    assert environ == {"HOME": "/root", URI_VARIABLE: real}
    assert make_cfg(shown).mlflow.tracking_uri == mask_uri(real), "Hydra reads the masked URI"


@pytest.mark.parametrize(
    "arg",
    [
        "mlflow.tracking_uri=http://host:5000",  # no credentials: MLFLOW_TRACKING_USERNAME/PASSWORD may hold them
        "mlflow.tracking_uri=sqlite:///mlflow.db",
        "mlflow.tracking_uri=http://***@host:5000",  # masked already: connect finds the password in the environment
        "epochs=2",
    ],
)
def test_a_command_line_without_a_password_is_left_as_it_is(arg):
    environ: dict[str, str] = {}
    assert hide_tracking_credentials([arg], environ) == [arg]
    assert environ == {}


@pytest.mark.parametrize(
    ("arg", "shown"),
    [
        ("mlflow.tracking_uri=http://a:x@h1,http://b:y@h2", "mlflow.tracking_uri=http://***@h1,http://***@h2"),
        ("mlflow.tracking_uri=http://a:x@h1]", "mlflow.tracking_uri=http://***@h1]"),  # a grammar error
    ],
)
def test_what_hydra_refuses_is_masked_and_not_carried(arg, shown):
    environ: dict[str, str] = {}
    assert hide_tracking_credentials([arg], environ) == [shown]
    assert environ == {}


def test_the_command_line_wins_over_mlflow_tracking_uri():
    environ = {URI_VARIABLE: "sqlite:///other.db"}
    assert hide_tracking_credentials([f"mlflow.tracking_uri={HTTP}"], environ) == [
        "mlflow.tracking_uri=http://***@host:5000"
    ]
    assert environ == {URI_VARIABLE: HTTP}
    environ = {URI_VARIABLE: "sqlite:///other.db"}
    assert hide_tracking_credentials(["mlflow.tracking_uri=sqlite:///mine.db"], environ) == [
        "mlflow.tracking_uri=sqlite:///mine.db"
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], [f"mlflow.tracking_uri='{mask_uri(POSTGRES)}'"]),
        (["--info"], [f"mlflow.tracking_uri='{mask_uri(POSTGRES)}'", "--info"]),
        (["-m", "epochs=1,2", "--cfg", "job"], ["-m", "epochs=1,2", f"mlflow.tracking_uri='{mask_uri(POSTGRES)}'",
                                                 "--cfg", "job"]),
        (["--shell-completion", "query=bash"], ["--shell-completion", "query=bash"]),
    ],
)  # fmt: skip
def test_mlflow_tracking_uri_in_the_environment_is_the_store_masked(make_cfg, args, expected):
    environ = {URI_VARIABLE: POSTGRES}
    assert hide_tracking_credentials(args, environ) == expected
    assert environ == {URI_VARIABLE: POSTGRES}
    for arg in expected:
        if arg.startswith("mlflow.tracking_uri="):
            assert make_cfg(arg).mlflow.tracking_uri == mask_uri(POSTGRES)


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        (HTTP, "http://***@host:5000"),
        ("https://token@host/api?x=a@b#y", "https://***@host/api?x=a@b#y"),
        ("http://a:p@ss@host", "http://***@host"),
        ("sqlite:////tmp/a@b/mlflow.db", "sqlite:////tmp/a@b/mlflow.db"),
        ("http://host:5000", "http://host:5000"),
        ("databricks", "databricks"),
    ],
)
def test_mask_uri_masks_exactly_the_user_info(uri, masked):
    assert mask_uri(uri) == masked
    assert is_masked(masked) == (masked != uri)


# --- tracking_store.connect puts the real URI together again from the environment


@pytest.fixture
def bare_environment(monkeypatch):
    for variable in (URI_VARIABLE, USERNAME_VARIABLE, PASSWORD_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_a_masked_uri_connects_with_the_real_one_from_the_environment(bare_environment):
    bare_environment.setenv(URI_VARIABLE, POSTGRES)
    assert tracking_store.real_uri(mask_uri(POSTGRES)) == POSTGRES
    assert tracking_store.real_uri(POSTGRES) == POSTGRES
    assert tracking_store.real_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_a_masked_http_uri_can_rely_on_mlflows_username_and_password(bare_environment):
    bare_environment.setenv(USERNAME_VARIABLE, "alice")
    bare_environment.setenv(PASSWORD_VARIABLE, PASSWORD)
    assert tracking_store.real_uri("http://***@host:5000") == "http://host:5000", "MLflow sends them itself"


@pytest.mark.parametrize(
    ("masked", "environment", "variables"),
    [
        ("http://***@host:5000", {}, "set MLFLOW_TRACKING_URI to the whole URI (or MLFLOW_TRACKING_USERNAME and "
                                     "MLFLOW_TRACKING_PASSWORD) where the job runs"),
        ("http://***@host:5000", {URI_VARIABLE: "http://alice:x@other:5000"}, "set MLFLOW_TRACKING_URI"),
        (mask_uri(POSTGRES), {USERNAME_VARIABLE: "mlflow", PASSWORD_VARIABLE: "x"},
         "set MLFLOW_TRACKING_URI to the whole URI where the job runs"),
    ],
)  # fmt: skip
def test_a_masked_uri_without_its_password_in_the_environment_is_one_line(
    bare_environment, masked, environment, variables
):
    for variable, value in environment.items():
        bare_environment.setenv(variable, value)
    with pytest.raises(UserInputError) as raised:
        tracking_store.connect(masked)
    message = str(raised.value)
    assert message.startswith(f"mlflow.tracking_uri={masked!r}: its user and password are not in this process's ")
    assert variables in message and "\n" not in message


def test_connect_leaves_mlflow_tracking_uri_out_of_the_environment(bare_environment, store):
    tracking_store.connect(store)
    assert URI_VARIABLE not in os.environ, "a later python -m alexnet_sweep would take it as its store"
    assert mlflow.get_tracking_uri() == store
    bare_environment.setenv(URI_VARIABLE, POSTGRES)
    tracking_store.connect(store)
    assert os.environ[URI_VARIABLE] == POSTGRES
