"""The explorer window as the GUI tests open it (test_gui, test_gui_models, test_gui_drag)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def shown_window(qtbot, session, timeout_ms: int,
                 ready: Callable[[object], bool] = lambda w: True) -> Iterator[object]:
    """A MainWindow on `session`, shown and exposed, once its first frame is painted and
    `ready(window)` holds; shut down when the block ends."""
    from handlatent.app.main_window import MainWindow
    w = MainWindow(session)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.frames_shown > 0 and ready(w), timeout=timeout_ms)
    try:
        yield w
    finally:
        w.shutdown()
