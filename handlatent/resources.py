"""Files shipped inside the package: the bundled model and the example hands the explorer opens on.

They live in the repository's assets/ folder, installed as the package `handlatent.assets`, and
are found through `importlib.resources`, so a source checkout, an editable install and an
installed wheel all find them the same way (wheels install as files, so the paths are real).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSETS_PACKAGE = "handlatent.assets"
MODELS_FOLDER = "models"
EXAMPLES_FOLDER = "examples"
EXAMPLE_SUFFIX = ".png"


def asset_folder(name: str) -> Path:
    """The folder `name` of the shipped assets (it may not exist: a build that left it out)."""
    try:
        root = resources.files(ASSETS_PACKAGE)
    except ModuleNotFoundError:   # an install made before the assets became package data
        return Path(ASSETS_PACKAGE.replace(".", "/")) / name
    return Path(str(root.joinpath(name)))


def example_images() -> list[Path]:
    """The bundled example hands (PNG files), in name order; empty when none were shipped."""
    folder = asset_folder(EXAMPLES_FOLDER)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == EXAMPLE_SUFFIX)
