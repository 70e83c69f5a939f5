"""Re-emit a `handlatent.explorer.Session`'s plain callbacks as Qt signals on the GUI thread.

The session calls its listeners on whatever thread produced the event: "latent_changed" on the
caller's thread, "decoded" from its decode worker. Widgets must only be touched from the GUI
thread, so every view listens to this bridge instead of to the session.

Decoded frames are coalesced here as well: the worker stores the newest frame and posts one
queued notification; if the GUI thread is busy while several frames arrive, it only ever sees
the newest one (newest wins at both ends of the pipe, the session's request queue and this
delivery queue).
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

EVENTS = ("latent_changed", "decoded", "history_changed", "images_changed", "walk_changed",
          "locks_changed", "transfer_changed", "atlas_changed", "error")


def _registry(session: Any) -> Any:
    """The object with on/off: `session.events` (an Events registry) or the session itself."""
    events = getattr(session, "events", None)
    return events if events is not None and hasattr(events, "on") else session


def _known(registry: Any, name: str) -> bool:
    names = getattr(registry, "names", None)
    return names is None or name in names


class SessionBridge(QObject):
    """Qt-signal face of a session. Create it on the GUI thread; call `detach()` before closing."""

    latentChanged = Signal(object)      # z, a numpy array (d,)
    decoded = Signal(object)            # the newest Decoded frame
    historyChanged = Signal()
    imagesChanged = Signal()
    walkChanged = Signal()
    locksChanged = Signal()
    transferChanged = Signal()
    atlasChanged = Signal(object)       # AtlasRows: a part of a latent-atlas request
    error = Signal(str)

    # Private: posted from any thread, delivered queued on the bridge's (GUI) thread.
    _frameReady = Signal()
    _latent = Signal(object)
    _history = Signal()
    _images = Signal()
    _walk = Signal()
    _locks = Signal()
    _transfer = Signal()
    _atlas = Signal(object)
    _error = Signal(str)

    def __init__(self, session: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._lock = threading.Lock()
        self._pending = None          # newest Decoded not yet delivered
        self._posted = False          # a _frameReady is in the event queue
        self.frames_received = 0      # frames the worker produced
        self.frames_delivered = 0     # frames handed to the views (the rest were superseded)
        auto, queued = Qt.ConnectionType.AutoConnection, Qt.ConnectionType.QueuedConnection
        self._frameReady.connect(self._deliver_frame, queued)
        # "latent_changed" is usually raised on the GUI thread by a GUI action: deliver it
        # synchronously then (AutoConnection), queued when it comes from another thread.
        self._latent.connect(self.latentChanged, auto)
        self._history.connect(self.historyChanged, auto)
        self._images.connect(self.imagesChanged, auto)
        self._walk.connect(self.walkChanged, auto)
        self._locks.connect(self.locksChanged, auto)
        self._transfer.connect(self.transferChanged, auto)
        self._atlas.connect(self.atlasChanged, auto)   # from the atlas worker: queued
        self._error.connect(self.error, auto)
        self._callbacks = {
            "latent_changed": self._latent.emit,
            "decoded": self._on_decoded,
            "history_changed": self._history.emit,
            "images_changed": self._images.emit,
            "walk_changed": self._walk.emit,
            "locks_changed": self._locks.emit,
            "transfer_changed": self._transfer.emit,
            "atlas_changed": self._atlas.emit,
            "error": self._on_error,
        }
        self._registry = _registry(session)
        self._callbacks = {name: cb for name, cb in self._callbacks.items()
                           if _known(self._registry, name)}
        for name, cb in self._callbacks.items():
            self._registry.on(name, cb)

    def detach(self) -> None:
        """Stop listening to the session (idempotent)."""
        for name, cb in self._callbacks.items():
            try:
                self._registry.off(name, cb)
            except Exception:  # noqa: BLE001 - a closed session may have dropped its listeners
                pass
        self._callbacks = {}

    # -- called from any thread -------------------------------------------------------------

    def _on_decoded(self, frame: Any) -> None:
        with self._lock:
            self._pending = frame
            self.frames_received += 1
            if self._posted:
                return
            self._posted = True
        self._frameReady.emit()

    def _on_error(self, message: Any) -> None:
        self._error.emit(str(message))

    # -- GUI thread -------------------------------------------------------------------------

    @Slot()
    def _deliver_frame(self) -> None:
        with self._lock:
            frame, self._pending, self._posted = self._pending, None, False
        if frame is not None:
            self.frames_delivered += 1
            self.decoded.emit(frame)

    def push_frame(self, frame: Any) -> None:
        """Show a frame produced on the GUI thread (e.g. by `decode_now`) like a worker frame."""
        self._on_decoded(frame)
