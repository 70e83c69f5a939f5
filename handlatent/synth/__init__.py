"""Synthetic hands: kinematics, viewpoints, scenes, the capsule renderer and the dataset writer.

    from handlatent.synth import sample_scene, render_scene, write_dataset
    scene = sample_scene(np.random.default_rng(0), 16)     # every generative factor
    out = render_scene(scene, 128)                          # images + labels (numpy)
    write_dataset("data/synth128", count=50_000, size=128, seed=0)   # = handlatent-synth

Modules: ``kinematics`` (poses, shapes, forward kinematics, capsules), ``camera`` (viewpoint,
handedness, crop intrinsics), ``scene`` (Scene, sampling, rendering, labels), ``store`` (on-disk
format), ``cli`` (``handlatent-synth``), ``render`` (the rasteriser), ``backgrounds``.
The names below are imported on first use, so importing a submodule stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "Scene": "scene",
    "GROUPS": "scene",
    "sample_scene": "scene",
    "scene_range": "scene",
    "concat_scenes": "scene",
    "render_scene": "scene",
    "content_factor_names": "scene",
    "write_dataset": "store",
    "open_arrays": "store",
    "TEMPLATE_NAMES": "kinematics",
    "forward_kinematics": "kinematics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
