"""handlatent: latent-space explorer and trainer for the disentangled hand VAE (dVAE).

`load_model` is imported on first use, so `import handlatent` stays light (no torch).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlatent.checkpoint import load_model

try:
    __version__ = version("handlatent")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """Import `load_model` lazily (PEP 562)."""
    if name == "load_model":
        from handlatent.checkpoint import load_model
        return load_model
    raise AttributeError(f"module 'handlatent' has no attribute {name!r}")
