"""Ctrl-C (SIGINT) and SIGTERM during training, delivered at a safe point instead of wherever the signal lands."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import keras

from alexnet_sweep.signals import SIGNALS


class DeferredInterrupt(keras.callbacks.Callback):
    """Turns SIGINT and SIGTERM into a KeyboardInterrupt raised between batches (and on leaving the `with` block).

    A KeyboardInterrupt raised asynchronously while TensorFlow sets up a tf.data iterator can abort the whole
    process ("corrupted size vs. prev_size in fastbins", seen here at the start of an epoch), which leaves MLflow
    runs RUNNING. Raised from a Keras callback it unwinds like any exception, so the run ends KILLED. A second
    signal interrupts at once. Outside the main thread (where signals cannot be handled) it does nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._request) for signum in SIGNALS}
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, *rest: Any) -> None:
        self._restore()
        if self.requested and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt from exc  # a stop was asked for: another error must not turn it into FAILED

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _raise_if_requested(self, *args: Any, **kwargs: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = on_epoch_end = _raise_if_requested
