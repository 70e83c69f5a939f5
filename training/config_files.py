"""The bundled training configs (training/configs/*.yaml, package data): found by name or path.

`handlatent-train --config smoke`, `--config smoke.yaml` and `--config path/to/x.yaml` all work
from any folder and from an installed wheel: a path that exists is taken as it is, otherwise a
bare name is looked up among the configs shipped in `handlatent.training`'s `configs/` folder.
Each config's first line is a comment that describes it in one line (`--list-configs` shows it).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from handlatent.training.config import ConfigError

CONFIGS_FOLDER = "configs"
SUFFIXES = (".yaml", ".yml")


def configs_folder() -> Path:
    """The folder of the bundled configs (in a checkout: training/configs/)."""
    return Path(str(resources.files("handlatent.training").joinpath(CONFIGS_FOLDER)))


def bundled_configs() -> dict[str, Path]:
    """Bundled config name (the file name without .yaml) -> its file, in name order."""
    folder = configs_folder()
    if not folder.is_dir():
        return {}
    return dict(sorted((p.stem, p) for p in folder.iterdir() if p.suffix in SUFFIXES))


def resolve_config(spec: str | Path) -> Path:
    """The config file `spec` names: an existing path, or the name of a bundled config (with or
    without .yaml). Raises ConfigError naming `spec` and the bundled names when neither fits."""
    path = Path(spec)
    if path.is_file():
        return path
    known = bundled_configs()
    name = path.stem if path.suffix in SUFFIXES else path.name
    if path.parent == Path(".") and name in known:
        return known[name]
    if path.exists():
        raise ConfigError("expected a YAML file, got a directory", source=str(spec))
    raise ConfigError("no such file, and no bundled config of that name (bundled: "
                      f"{', '.join(known) or 'none'}; handlatent-train --list-configs)",
                      source=str(spec))


def describe(path: Path) -> str:
    """The config's one-line description: the first line of its header comment."""
    with open(path, encoding="utf-8") as f:
        first = f.readline().strip()
    return first.lstrip("#").strip() if first.startswith("#") else ""


def config_listing() -> str:
    """`handlatent-train --list-configs`: each bundled config's name and description."""
    known = bundled_configs()
    width = max((len(name) for name in known), default=0)
    return "\n".join(f"{name:<{width}}  {describe(path)}" for name, path in known.items())
