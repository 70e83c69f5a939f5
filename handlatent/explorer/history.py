"""Undo/redo of latent states, with edits (a slider drag) collapsed into one step."""

from __future__ import annotations

from collections import deque

import numpy as np

DEFAULT_LIMIT = 500


class History:
    """Two stacks of latents: states to go back to (undo) and to go forward to (redo).

    `record(previous)` is called before a change with the state being left; a new record clears
    the redo stack. At most `limit` undo steps are kept (the oldest are forgotten).
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"history limit must be >= 1, got {limit}")
        self.limit = limit
        self._undo: deque[np.ndarray] = deque(maxlen=limit)
        self._redo: list[np.ndarray] = []

    @property
    def can_undo(self) -> bool:
        """Whether there is a state to go back to."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether an undone state can be restored."""
        return bool(self._redo)

    def __len__(self) -> int:
        return len(self._undo)

    def record(self, previous: np.ndarray) -> None:
        """Remember `previous` (the state before a change) and forget the redo stack."""
        self._undo.append(np.array(previous, dtype=np.float32))
        self._redo.clear()

    def undo(self, current: np.ndarray) -> np.ndarray | None:
        """The state to return to (`current` goes to the redo stack), or None if none."""
        if not self._undo:
            return None
        self._redo.append(np.array(current, dtype=np.float32))
        return self._undo.pop()

    def redo(self, current: np.ndarray) -> np.ndarray | None:
        """The state undone last (`current` goes back to the undo stack), or None if none."""
        if not self._redo:
            return None
        self._undo.append(np.array(current, dtype=np.float32))
        return self._redo.pop()

    def clear(self) -> None:
        """Forget everything."""
        self._undo.clear()
        self._redo.clear()
