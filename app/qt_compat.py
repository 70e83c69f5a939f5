"""Work around a reference-count bug of PySide6 6.12 on Python < 3.12.

In PySide6 6.12.0 every `SignalInstance.emit()` returns `True` without taking a reference to
it, so each emit lowers the reference count of the `True` singleton by one. On Python 3.12+
`True` is immortal (PEP 683) and nothing happens; on 3.11 the interpreter aborts with "Fatal
Python error: bool_dealloc" once the count reaches zero. The explorer emits a few signals per
frame: measured here, 1,000 slider changes used up 7,700 of the ~10,000 references `True` has
after startup, so a minute of dragging killed the GUI.

`guard_emit_refcount()` detects the leak with a probe signal and, only if it is there, gives
`True` 2**40 extra references, which makes it as good as immortal, as 3.12 does. It never
removes references, so it is harmless with a fixed PySide6.

Calling a Qt slot from Python (`QTimer.start`, `QTimer.stop`, `QWidget.update`, …) leaks a
reference to `None` the same way (measured: 10,000 `QTimer.stop()` calls, 10,000 references);
the display-rate followers of issue 25 call such slots for every latent change, and a long
benchmark ended in "Fatal Python error: none_dealloc". The guard treats `None` alike.
"""

from __future__ import annotations

import ctypes
import sys

EXTRA_REFERENCES = 1 << 40
PROBE_EMITS = 8


def emit_leaks_true() -> bool:
    """Whether emitting a PySide6 signal drops a reference to `True` (the bug above)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(PROBE_EMITS):
        probe.ping.emit()
    return sys.getrefcount(True) <= before - PROBE_EMITS


def slot_call_leaks_none() -> bool:
    """Whether calling a Qt slot from Python drops a reference to `None` (the same bug)."""
    from PySide6.QtCore import QTimer

    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(PROBE_EMITS):
        timer.stop()
    return sys.getrefcount(None) <= before - PROBE_EMITS


def guard_emit_refcount() -> bool:
    """Make `True` and `None` immortal on CPython < 3.12 when PySide6 leaks them (emits and
    slot calls); True if it did so for either."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    leaked = [obj for obj, leaks in ((True, emit_leaks_true), (None, slot_call_leaks_none))
              if leaks()]
    for obj in leaked:
        # ob_refcnt is the first field of every CPython object (a Py_ssize_t).
        ctypes.c_ssize_t.from_address(id(obj)).value += EXTRA_REFERENCES
    return bool(leaked)
