"""A tiny callback registry: `on(name, callback)`, `off(name, callback)`, `emit(name, *args)`.

As napari's `EventEmitter._invoke_callback`: a callback that raises is logged with its name and
the event's, and the other callbacks still run; the emitter never sees the exception. A model
finishes changing its state before it emits, so one broken view cannot leave it half-changed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

log = logging.getLogger("handlatent.explorer")


def callback_name(callback: Callable[..., Any]) -> str:
    """A readable name for a callback: its qualified name (bound methods: Class.method)."""
    name = getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None)
    return name if isinstance(name, str) else repr(callback)


class Events:
    """Named lists of callbacks; names are fixed at construction so a typo fails loudly.

    `emit` calls the callbacks in subscription order on the calling thread. Subscribing and
    emitting are thread-safe (the list is copied under a lock before the calls).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._callbacks: dict[str, list[Callable[..., Any]]] = {n: [] for n in names}
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        """The event names this registry knows."""
        return tuple(self._callbacks)

    def _check(self, name: str) -> None:
        if name not in self._callbacks:
            raise ValueError(f"unknown event {name!r}; known: {', '.join(self._callbacks)}")

    def on(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call `callback` on every `emit(name, ...)`; returns it (usable as a decorator)."""
        self._check(name)
        if not callable(callback):
            raise TypeError(f"callback for {name!r} is not callable: {callback!r}")
        with self._lock:
            self._callbacks[name].append(callback)
        return callback

    def off(self, name: str, callback: Callable[..., Any]) -> None:
        """Stop calling `callback` for `name` (no error if it was not subscribed)."""
        self._check(name)
        with self._lock:
            try:
                self._callbacks[name].remove(callback)
            except ValueError:
                pass

    def has_listeners(self, name: str) -> bool:
        """Whether anything is subscribed to `name`."""
        self._check(name)
        with self._lock:
            return bool(self._callbacks[name])

    def emit(self, name: str, *args: Any) -> None:
        """Call every callback of `name` with `args`; one that raises is logged, not re-raised."""
        self._check(name)
        with self._lock:
            callbacks = list(self._callbacks[name])
        for callback in callbacks:
            try:
                callback(*args)
            except Exception:  # noqa: BLE001 - a broken listener must not break the model
                log.exception("a %r callback (%s) raised", name, callback_name(callback))
