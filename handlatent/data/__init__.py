"""Datasets: ``open_dataset(spec)`` turns a dataset spec into a torch ``Dataset``.

A spec is a path, optionally with a kind prefix: ``PATH`` or ``synth:PATH`` open a directory
written by ``handlatent-synth`` (:class:`handlatent.data.synthetic.SyntheticHandDataset`). Readers
for real datasets (``rhd:``, ``stb:``, ``freihand:``, ``labels:``: a label folder written by the
explorer, also found from a plain path to it) are added with :func:`register_reader`. Every dataset's
items are dicts with the keys of ``SyntheticHandDataset`` (``labelled`` tells whether the 3D
labels are real).
"""

from __future__ import annotations

import os
import re
from typing import Callable

__all__ = ["open_dataset", "register_reader", "readers", "spec_kind", "CROPPING_READERS"]

_READERS: dict[str, Callable] = {}
_PREFIX = re.compile(r"^([a-z][a-z0-9_]+):(.*)$", re.S)  # 2+ letters: not a drive letter


def register_reader(kind: str, reader: Callable) -> None:
    """Make ``open_dataset("KIND:PATH", **kw)`` call ``reader(PATH, **kw)``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]+", kind):
        raise ValueError(f"bad dataset kind {kind!r}")
    _READERS[kind] = reader


def readers() -> list[str]:
    return sorted(_READERS)


def _open_synth(path, **kwargs):
    from handlatent.data.synthetic import SyntheticHandDataset

    return SyntheticHandDataset(path, **kwargs)


register_reader("synth", _open_synth)


def _open_rhd(path, **kwargs):
    from handlatent.data.rhd import open_rhd

    return open_rhd(path, **kwargs)


def _open_stb(path, **kwargs):
    from handlatent.data.stb import open_stb

    return open_stb(path, **kwargs)


def _open_labels(path, **kwargs):
    from handlatent.data.labelled import open_labels

    return open_labels(path, **kwargs)


def _open_freihand(path, **kwargs):
    from handlatent.data.freihand import open_freihand

    return open_freihand(path, **kwargs)


register_reader("rhd", _open_rhd)  # handlatent/data/rhd.py
register_reader("stb", _open_stb)  # handlatent/data/stb.py
register_reader("freihand", _open_freihand)  # handlatent/data/freihand.py
register_reader("labels", _open_labels)  # handlatent/data/labelled.py: the explorer's labels
# Readers of real photographs crop the hand to `size` pixels: callers pass the model's size.
CROPPING_READERS = frozenset({"rhd", "stb", "freihand", "labels"})
LABELS_INDEX = "labels.json"   # a plain path to a folder holding it is a label folder


def spec_kind(spec) -> str:
    """The reader kind `open_dataset(spec)` uses: the `KIND:` prefix, or for a plain path
    "labels" (a folder holding labels.json) or "synth"."""
    s = os.fspath(spec)
    m = _PREFIX.match(s)
    if m is not None and not os.path.exists(s):
        return m.group(1)
    return "labels" if os.path.isfile(os.path.join(s, LABELS_INDEX)) else "synth"


def open_dataset(spec, **kwargs):
    """Open the dataset named by ``spec`` (a path, or ``KIND:PATH``).

    Raises ``FileNotFoundError`` or ``ValueError`` with one line naming the path and the problem.
    """
    s = os.fspath(spec)
    m = _PREFIX.match(s)
    if m is not None and not os.path.exists(s):
        kind, path = m.group(1), m.group(2)
        if kind not in _READERS:
            raise ValueError(f"{s}: unknown dataset kind {kind!r} (known: {', '.join(readers())})")
        if not path:
            raise ValueError(f"{s}: no path after '{kind}:'")
        return _READERS[kind](path, **kwargs)
    return _READERS[spec_kind(s)](s, **kwargs)
