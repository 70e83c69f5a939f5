"""Undo/redo of latent states, with edits (a slider drag) collapsed into one step, and of
actions outside the latent (a saved label) in the same order."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class Action:
    """A change outside the latent, kept in the history: `undo` reverts it, `redo` repeats it."""

    name: str
    undo: Callable[[], None]
    redo: Callable[[], None]


Step = Union[np.ndarray, Action]


class History:
    """Two stacks of latents: states to go back to (undo) and to go forward to (redo).

    `record(previous)` is called before a change with the state being left; a new record clears
    the redo stack. At most `limit` undo steps are kept (the oldest are forgotten). Between
    `begin(current)` and the matching `end(current)` (they nest) changes are not recorded one
    by one: `end` records the state the edit began at, once, if the edit changed anything.
    `record_action(action)` puts a done `Action` on the same stack: `undo` and `redo` hand it
    back (instead of a state) for the caller to revert or repeat.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"history limit must be >= 1, got {limit}")
        self.limit = limit
        self._undo: deque[Step] = deque(maxlen=limit)
        self._redo: list[Step] = []
        self._depth = 0
        self._edit_start: np.ndarray | None = None

    @property
    def can_undo(self) -> bool:
        """Whether there is a recorded state to go back to."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether an undone state can be restored."""
        return bool(self._redo)

    @property
    def editing(self) -> bool:
        """Whether an edit is open (changes are not recorded one by one)."""
        return self._depth > 0

    def __len__(self) -> int:
        return len(self._undo)

    def can_undo_from(self, current: np.ndarray) -> bool:
        """Whether `undo` would change something, counting an open edit that moved away."""
        return self.can_undo or (self._edit_start is not None
                                 and not np.array_equal(self._edit_start, current))

    def record(self, previous: np.ndarray) -> None:
        """Remember `previous` (the state before a change) and forget the redo stack."""
        self._undo.append(np.array(previous, dtype=np.float32))
        self._redo.clear()

    def record_action(self, action: Action) -> None:
        """Remember an action that was just done (undo reverts it) and forget the redo stack."""
        self._undo.append(action)
        self._redo.clear()

    def begin(self, current: np.ndarray) -> None:
        """Open an edit (nested edits belong to the outermost one)."""
        if self._depth == 0:
            self._edit_start = np.array(current, dtype=np.float32)
        self._depth += 1

    def end(self, current: np.ndarray) -> bool:
        """Close an edit (extra calls are ignored); True if the outermost one ended and was
        recorded as one step."""
        if self._depth == 0:
            return False
        self._depth -= 1
        if self._depth > 0:
            return False
        start, self._edit_start = self._edit_start, None
        if start is None or np.array_equal(start, current):
            return False
        self.record(start)
        return True

    def close(self, current: np.ndarray) -> bool:
        """Close every open edit at once; True if that recorded a step."""
        if self._depth == 0:
            return False
        self._depth = 1
        return self.end(current)

    def undo(self, current: np.ndarray) -> Step | None:
        """The state to return to (`current` goes to the redo stack), or the action to revert
        (it goes to the redo stack itself), or None if none."""
        if not self._undo:
            return None
        step = self._undo.pop()
        self._redo.append(step if isinstance(step, Action) else
                          np.array(current, dtype=np.float32))
        return step

    def redo(self, current: np.ndarray) -> Step | None:
        """The state undone last (`current` goes back to the undo stack), or the action to
        repeat, or None if none."""
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step if isinstance(step, Action) else
                          np.array(current, dtype=np.float32))
        return step

    def put_back(self, step: Step, undone: bool) -> None:
        """Return an action that failed to undo (`undone`) or redo to where it was."""
        (self._redo if undone else self._undo).pop()
        (self._undo if undone else self._redo).append(step)
