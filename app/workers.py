"""Running a long session call (a walk export) on a worker thread, reporting through Qt signals.

The call receives `progress(i, n)` and `cancel() -> bool` callables; progress is re-emitted as a
queued Qt signal so that the GUI thread updates a QProgressDialog, and cancelling sets a flag
the call polls. The worker never touches a widget.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal


class _Thread(QThread):
    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__()
        self._target = target

    def run(self) -> None:  # noqa: D102 - QThread override
        self._target()


class Job(QObject):
    """Run `fn(progress, cancel)` in a QThread; signals arrive on the creating (GUI) thread."""

    progress = Signal(int, int)
    finished = Signal(object)     # the call's return value
    failed = Signal(str)          # one-line message
    cancelled = Signal()

    def __init__(self, fn: Callable[[Callable[[int, int], None], Callable[[], bool]], Any],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._cancel = threading.Event()
        self._thread = _Thread(self._run)
        self.result: Any = None
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, msecs: int = 30000) -> bool:
        return self._thread.wait(msecs)

    def _run(self) -> None:
        try:
            result = self._fn(lambda i, n: self.progress.emit(int(i), int(n)),
                              self._cancel.is_set)
        except Exception as error:  # noqa: BLE001 - reported to the user, one line
            if self._cancel.is_set():
                self.cancelled.emit()
                return
            self.error = " ".join(f"{error}".split()) or type(error).__name__
            self.failed.emit(self.error)
            return
        if self._cancel.is_set():
            self.cancelled.emit()
            return
        self.result = result
        self.finished.emit(result)
