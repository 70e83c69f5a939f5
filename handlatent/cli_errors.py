"""One-line error messages shared by the command-line programs (no Qt)."""

from __future__ import annotations

import os
import sys

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
