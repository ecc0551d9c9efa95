"""Keeps credentials in URIs (`http://user:pass@host`, `postgresql://user:pass@host/db`) out of what we show or log.

`redact` masks the user-info part of every URI in a text; `RedactingFilter` applies it to log records, installed on
Hydra's log handlers (conf/config.yaml) and on MLflow's (`install_on_mlflow_logger`).
"""

from __future__ import annotations

import logging
import re

# scheme://userinfo@ — also in Hydra's escaped form of an override value (`http\://user\:pass@host`).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*\\?://)(?P<userinfo>[^\s/@'\"]+)@")
MASK = "***"


def redact(text: str) -> str:
    """Returns `text` with the user and password of every URI in it replaced by `***`."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def has_credentials(uri: str) -> bool:
    """Whether a URI carries a user or password."""
    return redact(uri) != uri


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in URIs in the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_on_mlflow_logger() -> None:
    """Adds the filter to the handlers of MLflow's own logger, which does not propagate to Hydra's handlers."""
    for handler in logging.getLogger("mlflow").handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
