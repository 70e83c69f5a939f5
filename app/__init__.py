"""The Qt desktop explorer (installed as handlatent.app): views and wiring over
handlatent.explorer.Session. Entry point: handlatent-gui (handlatent.app.cli:main)."""

from handlatent.app.qt_compat import guard_emit_refcount

guard_emit_refcount()   # PySide6 6.12's emit() leaks references to True (see qt_compat)
