"""Reading annotation pickles (RHD's ``anno_*.pickle``) without running code.

``pickle.load`` calls whatever a file names, so a pickle downloaded from the internet could run
anything. :func:`load_pickle` uses an unpickler whose ``find_class`` hands out only the few numpy
functions that rebuild arrays, dtypes and scalars (and ``_codecs.encode``, which protocol-2
pickles use for bytes); every other global is refused with one line naming the file, before
anything is called. Containers (dict, list, tuple), numbers and strings need no globals.
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle

__all__ = ["UnsafePickleError", "load_pickle", "ALLOWED_GLOBALS"]

# (module, name) pairs a numpy array pickle needs, old numpy (numpy.core) and numpy >= 2
# (numpy._core) spellings; protocol 5 pickles rebuild contiguous arrays with _frombuffer.
ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle that names a global outside ALLOWED_GLOBALS; `str(err)` is one line."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        # latin1: the published RHD pickle was written by Python 2 (its numpy buffers are str)
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._path}: refused to unpickle {module}.{name} (only numpy arrays, numbers, "
                "strings and plain containers are allowed)")
        if module == "_codecs":
            return codecs.encode
        if module.startswith("numpy.core"):  # numpy >= 2 keeps the code in numpy._core
            try:
                return getattr(importlib.import_module("numpy._core" + module[10:]), name)
            except ImportError:
                pass
        return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._path}: refused a persistent id (not a plain pickle)")


def load_pickle(path) -> object:
    """Unpickle `path` allowing only numpy arrays/dtypes/scalars and plain Python data.

    Raises FileNotFoundError for a missing file, UnsafePickleError for a forbidden global, and
    ValueError (one line naming the path) for a truncated or corrupt file.
    """
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such file", path) from None
    with f:
        try:
            return _NumpyOnlyUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError, UnicodeDecodeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{path}: not a readable pickle (truncated or corrupt: {reason})"
                             ) from None
