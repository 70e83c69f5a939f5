"""The PySide6 6.12 emit() reference leak (app/qt_compat.py): importing the app guards `True`."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QObject, Signal  # noqa: E402

import handlatent.app  # noqa: E402, F401 - applies the guard
from handlatent.app.qt_compat import (EXTRA_REFERENCES, emit_leaks_true,  # noqa: E402
                                      slot_call_leaks_none)


class Probe(QObject):
    ping = Signal(object)


def test_many_emits_leave_true_alive():
    if emit_leaks_true():                      # this PySide6 has the bug: the guard applied
        assert sys.getrefcount(True) > EXTRA_REFERENCES // 2
    probe = Probe()
    seen = []
    probe.ping.connect(seen.append)
    for i in range(50_000):                    # ~5x what True has after startup: aborted
        probe.ping.emit(i)                     # the interpreter without the guard
    assert len(seen) == 50_000 and bool(1) is True


def test_many_slot_calls_leave_none_alive():
    from PySide6.QtCore import QTimer
    if slot_call_leaks_none():                 # this PySide6 has the bug: the guard applied
        assert sys.getrefcount(None) > EXTRA_REFERENCES // 2
    timer = QTimer()
    for _ in range(200_000):                   # more than None has after startup: aborted
        timer.stop()                           # the interpreter without the guard
    assert timer.isActive() is False and None is None
