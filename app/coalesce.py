"""Following a fast stream of values at display rate: only the newest value is shown, at most
once per interval.

During a joint drag the latent changes up to a hundred times a second; the sliders and the
atlas marks need not repaint that often (the eye sees 30–60 changes a second, and each repaint
costs the GUI thread time the drag needs). `Coalescer(show, interval_ms)` calls `show(value)`
with the newest value passed to `push`: at once when nothing was shown for `interval_ms`,
otherwise once the interval is over (values pushed meanwhile replace each other).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QTimer

DISPLAY_INTERVAL_MS = 33     # ~30 repaints a second: smooth to the eye, cheap for the GUI thread


class Coalescer(QObject):
    """Calls `show(newest value)` at most once per `interval_ms` (0: at every `push`)."""

    def __init__(self, show: Callable[[Any], None], interval_ms: int = DISPLAY_INTERVAL_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._show = show
        self.interval_ms = int(interval_ms)
        self._value: Any = None
        self._waiting = False
        self._last = -float("inf")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.flush)

    def push(self, value: Any) -> None:
        """Show `value` now if the interval since the last show is over, else when it is."""
        self._value, self._waiting = value, True
        if self._timer.isActive():
            return
        rest = self._last + self.interval_ms / 1000 - time.perf_counter()
        if rest <= 0:
            self.flush()
        else:
            self._timer.start(max(1, int(rest * 1000 + 0.5)))

    def flush(self) -> None:
        """Show the newest value pushed now (if one waits)."""
        self._timer.stop()
        if self._waiting:
            value, self._value, self._waiting = self._value, None, False
            self._last = time.perf_counter()
            self._show(value)

    @property
    def waiting(self) -> bool:
        """Whether a pushed value has not been shown yet."""
        return self._waiting
