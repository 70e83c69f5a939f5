"""Warm-starting a wider or differently guided image decoder from a trained one, drawing the
same image at the start (function-preserving growth, as in Net2Net, Chen et al., ICLR 2016).

A stage's new output channels keep their fresh initialisation, and every layer that reads them
gets zero weights for them, so the grown decoder computes what the old one did until training
moves those weights; residual blocks start as the identity (image_decoder.Refine). Layers whose
input ends with the bone maps (a guided decoder's doubling stages and the residual blocks' first
convolutions) keep the maps' weights on the maps wherever the channels before them grew.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from handlatent.model.bone_maps import NUM_FINGERS


def input_axis(module: nn.Module) -> int | None:
    """The axis of `module`'s weight that runs over its inputs (convolutions and linear layers),
    else None."""
    if isinstance(module, nn.ConvTranspose2d):
        return 0
    return 1 if isinstance(module, (nn.Conv2d, nn.Linear)) else None


def _axis_map(old: int, new: int, guided_old: int, guided_new: int) -> torch.Tensor:
    """For each of `new` input positions the old position it takes, or -1 (a zero weight): the
    channels before the bone maps map to their leading old ones, the maps to the old maps."""
    taken = torch.full((new,), -1, dtype=torch.long)
    keep = min(old - guided_old, new - guided_new)
    taken[:keep] = torch.arange(keep)
    if guided_old and guided_new:
        taken[new - guided_new:] = torch.arange(old - guided_old, old)
    return taken


def grown(old: torch.Tensor, new: torch.Tensor, axis_in: int | None, guided_old: int,
          guided_new: int) -> torch.Tensor:
    """`new` (its fresh values) with `old` copied in: the leading slice of every axis, the input
    axis `axis_in` mapped by `_axis_map` with zeros where the old layer had no input."""
    maps = []
    for axis, (o, n) in enumerate(zip(old.shape, new.shape)):
        if axis == axis_in:
            maps.append(_axis_map(o, n, guided_old, guided_new))
        else:
            m = torch.full((n,), -1, dtype=torch.long)
            m[:min(o, n)] = torch.arange(min(o, n))
            maps.append(m)
    out = new.detach().clone()
    if axis_in is not None:
        out.index_fill_(axis_in, torch.nonzero(maps[axis_in] < 0).flatten(), 0)
    where_new = torch.meshgrid(*[torch.nonzero(m >= 0).flatten() for m in maps], indexing="ij")
    where_old = torch.meshgrid(*[m[m >= 0] for m in maps], indexing="ij")
    out[where_new] = old.to(out.dtype)[where_old]
    return out


def grow_state(model: nn.Module, old_state: Mapping[str, torch.Tensor], guided_old: int
               ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict for `model` (a DVAE or any module holding an image decoder) taking every
    tensor of `old_state` that has a counterpart, grown where shapes differ; and the names of
    the tensors left fresh (no counterpart). `guided_old`: bone-map channels of the old decoder
    (0 or NUM_FINGERS)."""
    state, fresh = {}, []
    modules = dict(model.named_modules())
    for name, tensor in model.state_dict().items():
        old = old_state.get(name)
        if old is None or old.dim() != tensor.dim():
            fresh.append(name)
            continue
        if old.shape == tensor.shape:
            state[name] = old
            continue
        module_name, _, leaf = name.rpartition(".")
        module = modules[module_name]
        axis = input_axis(module) if leaf == "weight" else None
        guided_new = NUM_FINGERS if _reads_maps(module_name, module) and guided_old >= 0 else 0
        state[name] = grown(old, tensor, axis, guided_old if guided_new else 0, guided_new)
    return state, fresh


def _reads_maps(name: str, module: nn.Module) -> bool:
    """Whether the layer `name` of a guided image decoder reads the bone maps after its input
    channels: the doubling stages' convolutions, the RGB stage's and the residual blocks' first."""
    if not name.startswith("image_decoder.") or input_axis(module) is None:
        return False
    tail = name[len("image_decoder."):]
    return (tail.startswith("blocks.") and tail.endswith(".0")) or tail == "to_rgb.0" \
        or tail.endswith(".conv1")
