"""Re-emit a `handlatent.explorer.Session`'s plain callbacks as Qt signals on the GUI thread.

The session and its parts call their listeners on whatever thread produced the event:
"latent_changed" on the caller's thread, "decoded" from the decode worker, "atlas_changed" from
the atlas worker. Widgets must only be touched from the GUI thread, so every view listens to
this bridge instead of to the session.

The bridge is built from the session's own lists of events (`session.events` and each part's):
every event is relayed by the signal of its camel-cased name ("latent_changed" ->
`latentChanged`), and an event without one fails at construction, not silently. Two relays do
more than re-emit: "pending" makes the GUI thread apply the results the session's workers handed
back (`Session.apply_pending`: the session's state changes on this thread only), and decoded
frames (the session's and the compared model's) are coalesced: the worker stores the newest frame and posts one queued notification; if
the GUI thread is busy while several frames arrive, it only ever sees the newest one (newest
wins at both ends of the pipe, the session's request queue and this delivery queue).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance, Slot


FRAME_EVENTS = ("decoded", "compared")   # worker frames: only the newest is delivered


def signal_name(event: str) -> str:
    """The bridge's signal for a session event: "latent_changed" -> "latentChanged"."""
    first, *rest = event.split("_")
    return first + "".join(word.capitalize() for word in rest)


def event_registries(session: Any) -> list[Any]:
    """The session's `events` and those of its parts (`session.parts`), in that order."""
    parts = getattr(session, "parts", {})
    return [session.events, *(part.events for part in parts.values())]


class SessionBridge(QObject):
    """Qt-signal face of a session. Create it on the GUI thread; call `detach()` before closing.

    Raises TypeError if the session emits an event this class has no signal for.
    """

    latentChanged = Signal(object)      # z, a numpy array (d,)
    decoded = Signal(object)            # the newest Decoded frame
    historyChanged = Signal()
    locksChanged = Signal()
    dragged = Signal(object)            # DragUpdate, after its latentChanged
    error = Signal(str)
    pending = Signal()                  # worker results wait: applied on this thread
    walkChanged = Signal()
    imagesChanged = Signal()
    transferChanged = Signal()
    samplingChanged = Signal(str)       # the sampling source
    atlasChanged = Signal(object)       # AtlasRows: a part of a latent-atlas request
    modelChanged = Signal(object)       # ModelSwitch: the session runs another model now
    compareChanged = Signal()           # a compared model was opened or closed
    compared = Signal(object)           # the compared model's Decoded frame of the latent
    comparedTransfer = Signal(object)   # its decoding of the transfer result (or None)
    labelsChanged = Signal()            # a label folder opened, an item saved or removed

    # Private: posted from any thread, delivered on the bridge's (GUI) thread (queued), or at
    # once when posted there (the usual case for events raised by a GUI action).
    _relay = Signal(str, object)
    _frameReady = Signal(str)

    def __init__(self, session: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._lock = threading.Lock()
        self._pending_frames: dict[str, Any] = {}   # signal -> newest frame not yet delivered
        self._posted: set[str] = set()              # signals with a _frameReady queued
        self.frames_received = 0      # frames the worker produced
        self.frames_delivered = 0     # frames handed to the views (the rest were superseded)
        self._relay.connect(self._deliver, Qt.ConnectionType.AutoConnection)
        self._frameReady.connect(self._deliver_frame, Qt.ConnectionType.QueuedConnection)
        self.pending.connect(session.apply_pending)
        self._subscriptions: list[tuple[Any, str, Callable[..., None]]] = []
        for registry in event_registries(session):
            for event in registry.names:
                self._subscriptions.append((registry, event, self._listener(event)))
        for registry, event, listener in self._subscriptions:
            registry.on(event, listener)

    def _listener(self, event: str) -> Callable[..., None]:
        """The session-side callback relaying `event`; TypeError if no signal relays it."""
        name = signal_name(event)
        if not isinstance(getattr(self, name, None), SignalInstance) or name.startswith("_"):
            raise TypeError(f"SessionBridge has no signal for the session's {event!r} event "
                            f"(add a `{name}` Signal)")
        if event in FRAME_EVENTS:
            return lambda frame: self._post_frame(name, frame)
        return lambda *args: self._relay.emit(name, args)

    def detach(self) -> None:
        """Stop listening to the session (idempotent)."""
        for registry, event, listener in self._subscriptions:
            registry.off(event, listener)
        self._subscriptions = []

    # -- called from any thread -------------------------------------------------------------

    def _post_frame(self, name: str, frame: Any) -> None:
        with self._lock:
            self._pending_frames[name] = frame
            if name == "decoded":
                self.frames_received += 1
            if name in self._posted:
                return
            self._posted.add(name)
        self._frameReady.emit(name)

    # -- GUI thread -------------------------------------------------------------------------

    @Slot(str, object)
    def _deliver(self, name: str, args: tuple) -> None:
        getattr(self, name).emit(*args)

    @Slot(str)
    def _deliver_frame(self, name: str) -> None:
        with self._lock:
            frame = self._pending_frames.pop(name, None)
            self._posted.discard(name)
        if frame is not None:
            if name == "decoded":
                self.frames_delivered += 1
            getattr(self, name).emit(frame)

    def push_frame(self, frame: Any) -> None:
        """Show a frame produced on the GUI thread (e.g. by `decode_now`) like a worker frame."""
        self._post_frame("decoded", frame)
