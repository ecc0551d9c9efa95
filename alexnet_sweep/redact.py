"""Keeps credentials in URIs (`http://user:pass@host`, `postgresql://user:pass@host/db`) out of sight and off disk.

`redact` masks the user-info part of every URI in a text; `RedactingFilter` applies it to log records, installed on
Hydra's log handlers (conf/config.yaml) and on MLflow's (`install_on_mlflow_logger`). `hide_tracking_credentials`
keeps a password typed on the command line (`mlflow.tracking_uri=http://alice:pw@host`) away from Hydra, which
writes every override and the whole config into the run and sweep folders: the config holds the masked URI
(`http://***@host`), the real one travels in the process environment (`MLFLOW_TRACKING_URI`, which worker
processes inherit), and `tracking_store.connect` puts the two together again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping, Sequence

from alexnet_sweep.errors import UserInputError

# scheme://userinfo@ — also in Hydra's escaped form of an override value (`http\://user\:pass@host`). The user info
# runs to the last `@` before a `/` or whitespace: a password may hold `@`, quotes, `,` or `;` (only whitespace
# and `/` would end a URI's authority), so a text is masked too much rather than too little.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*\\?://)(?P<userinfo>[^\s/]+)@")
MASK = "***"

TRACKING_URI_KEY = "mlflow.tracking_uri"
URI_VARIABLE = "MLFLOW_TRACKING_URI"  # MLflow's own: the store's whole URI, a password included
USERNAME_VARIABLE = "MLFLOW_TRACKING_USERNAME"  # MLflow's own: HTTP basic auth for a tracking server
PASSWORD_VARIABLE = "MLFLOW_TRACKING_PASSWORD"
_TRACKING_OVERRIDE = re.compile(rf"^\s*(?P<prefix>\+{{0,2}}){re.escape(TRACKING_URI_KEY)}\s*=")
_NO_INSERT = ("-sc", "--shell-completion", "--experimental-rerun")  # they take no config overrides


def redact(text: str) -> str:
    """Returns `text` with the user and password of every URI in it replaced by `***`."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def has_credentials(uri: str) -> bool:
    """Whether a URI carries a user or password."""
    return redact(uri) != uri


def mask_uri(uri: str) -> str:
    """Returns one URI with its user info (all of its authority before the last `@`) replaced by `***`.

    Exact where `redact`'s pattern is not: the rest of the URI is kept character for character.
    """
    start = uri.find("://")
    if start < 0:
        return uri
    start += 3
    end = min((i for i in (uri.find(c, start) for c in "/?#") if i >= 0), default=len(uri))
    userinfo, at, host = uri[start:end].rpartition("@")
    return f"{uri[:start]}{MASK}@{host}{uri[end:]}" if at else uri


def is_masked(uri: str) -> bool:
    """Whether a URI's user info is the mask (`http://***@host`): its real one is to come from the environment."""
    start = uri.find("://")
    return start >= 0 and uri[start + 3 :].startswith(f"{MASK}@")


def hide_tracking_credentials(args: Sequence[str], environ: MutableMapping[str, str]) -> list[str]:
    """Rewrites a command line so that the tracking URI's password never reaches Hydra, and so never a file.

    A `mlflow.tracking_uri=URI` override whose URI carries a user or password is replaced by the masked URI
    (`http://***@host:5000`), and the real URI is put into `environ[MLFLOW_TRACKING_URI]`, where this process's
    jobs and the worker processes it starts (joblib, a local Ray instance, submitit) find it (`tracking_store.connect`).
    Without that override, a `MLFLOW_TRACKING_URI` already in the environment becomes `mlflow.tracking_uri`, masked
    the same way: the environment is the way to keep a password off the command line too.

    Args:
        args: The command line without the program name (Hydra's options and overrides).
        environ: The process environment (`os.environ`), updated in place.

    Returns:
        The command line to hand to Hydra.

    Raises:
        UserInputError: If a URI with credentials cannot be written as a masked override (one line, masked).
    """
    out = list(args)
    found = False
    for index, arg in enumerate(out):
        match = _TRACKING_OVERRIDE.match(arg)
        if match:
            found = True
            out[index] = _masked_override(arg, match["prefix"], environ)
    uri = environ.get(URI_VARIABLE, "")
    if not found and uri and not any(arg in _NO_INSERT for arg in out):
        overrides = [i for i, arg in enumerate(out) if not arg.startswith("-") and "=" in arg]
        at = overrides[-1] + 1 if overrides else 0  # argparse wants Hydra's overrides next to each other
        out.insert(at, _override_for("", mask_uri(uri)))
    return out


def _masked_override(arg: str, prefix: str, environ: MutableMapping[str, str]) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: PLC0415  (only when needed)

    parser = OverridesParser.create()
    try:
        override = parser.parse_override(arg)
    except Exception:  # a grammar error: Hydra reports it, on the masked text
        return redact(arg)
    if override.is_sweep_override():  # several stores: refused later (one store per sweep), never carried
        return redact(arg)
    uri = override.value()
    if not isinstance(uri, str) or mask_uri(uri) == uri or is_masked(uri):
        return arg
    environ[URI_VARIABLE] = uri
    masked = mask_uri(uri)
    for candidate in (redact(arg), _override_for(prefix, masked)):  # the user's own spelling, if it masks exactly
        try:
            if parser.parse_override(candidate).value() == masked:
                return candidate
        except Exception:  # noqa: S112  (try the next spelling)
            continue
    raise UserInputError(
        f"{TRACKING_URI_KEY}={masked!r}: cannot be written without its password; set {URI_VARIABLE} to the whole "
        f"URI in the environment and leave {TRACKING_URI_KEY} off the command line"
    )


def _override_for(prefix: str, uri: str) -> str:
    """`mlflow.tracking_uri='URI'` in Hydra's grammar (a quoted string: `:`, `,`, `=` and spaces stay as they are)."""
    # Backslashes are themselves only before a quote or at the end, where they are doubled.
    escaped = re.sub(r"(\\*)('|$)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), uri)
    return f"{prefix}{TRACKING_URI_KEY}='{escaped}'"


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
