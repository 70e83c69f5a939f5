"""Writing files atomically: a hidden temporary file beside the target, renamed at the end."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def reserve_temp(path: Path, suffix: str) -> Path:
    """Create an empty hidden file beside `path` (normal permissions, unlike mkstemp's 0600)."""
    for _ in range(100):
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}{suffix}"
        try:
            with open(tmp, "xb"):
                return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file with `path`'s suffix, then rename it to `path`;
    on any error (or interrupt) the temporary file is removed and `path` is untouched."""
    path = Path(path)
    tmp = reserve_temp(path, f".partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
