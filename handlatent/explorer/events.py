"""A tiny callback registry: `on(name, callback)`, `off(name, callback)`, `emit(name, *args)`."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

log = logging.getLogger("handlatent.explorer")


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
        """Call every callback of `name` with `args`; a callback's exception propagates."""
        self._check(name)
        with self._lock:
            callbacks = list(self._callbacks[name])
        for callback in callbacks:
            callback(*args)
