"""handlatent: latent-space explorer and trainer for the disentangled hand VAE (dVAE).

The notebook API (docs/api.md): `load_model`, `bundled_model`, `load_image`, `to_image`,
`to_array` and `dims_by_kl`, each imported on first use, so `import handlatent` stays light (no
torch).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlatent.checkpoint import bundled_model, load_model
    from handlatent.explorer.stats import dims_by_kl
    from handlatent.image_io import load_image, to_array, to_image

try:
    __version__ = version("handlatent")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# name -> the module that holds it
_LAZY = {"load_model": "handlatent.checkpoint", "bundled_model": "handlatent.checkpoint",
         "load_image": "handlatent.image_io", "to_image": "handlatent.image_io",
         "to_array": "handlatent.image_io", "dims_by_kl": "handlatent.explorer.stats"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import the notebook API's functions lazily (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'handlatent' has no attribute {name!r}")
