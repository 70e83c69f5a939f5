"""One-line error messages shared by the command-line programs (no Qt)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable, TypeVar

T = TypeVar("T")

EXIT_UNEXPECTED = 1


def one_line(text: object) -> str:
    """`text` (an exception or any object) as one line, every run of whitespace one space."""
    return " ".join(str(text).split())


def report_unexpected(prog: str, error: Exception) -> int:
    """One line on stderr for a bug's `error` and exit status 1 (HANDLATENT_DEBUG=1 re-raises)."""
    if os.environ.get("HANDLATENT_DEBUG"):
        raise error
    print(f"{prog}: unexpected error: {type(error).__name__}: {one_line(error)} "
          f"(set HANDLATENT_DEBUG=1 for a traceback)", file=sys.stderr)
    return EXIT_UNEXPECTED


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_writer(prog: str, write: Callable[[], T], interrupted: str) -> tuple[int, T | None]:
    """Run `write()` with SIGTERM treated as Ctrl-C: (0, its result), or after one line on
    stderr (130, None) when interrupted (`interrupted` says what was left) and (1, None) for an
    OSError or ValueError (a bad file, a bad dataset)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return 0, write()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return 130, None
    except (OSError, ValueError) as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 1, None
    finally:
        signal.signal(signal.SIGTERM, previous)
