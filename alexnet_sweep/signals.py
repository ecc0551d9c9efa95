"""Ctrl-C (SIGINT) and SIGTERM while runs are being ended: held until the cleanup is done, never a traceback."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held(note: str) -> Iterator[list[int]]:
    """Holds SIGINT and SIGTERM while the body runs: a signal is recorded (and `note` logged once), not raised.

    A second Ctrl-C during the cleanup of the first would otherwise interrupt the cleanup itself and leave runs
    RUNNING. Outside the main thread, where no handler can be set, it holds nothing.

    Args:
        note: What the user is told when a signal arrives meanwhile, e.g. why it has to wait.

    Yields:
        The signals received so far (empty if none): check it after the body to act on them.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if not received:
            log.warning("%s", note)
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
