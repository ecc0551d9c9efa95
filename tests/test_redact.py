"""Credentials in URIs are masked wherever we show or log a URI."""

import logging

import pytest

from alexnet_sweep.redact import RedactingFilter, has_credentials, redact


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
