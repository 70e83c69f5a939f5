"""Weight surgery: a model's weights taken from another model's where the shapes allow, layers
given new inputs widened with zero weights (warm starts, handlatent-train's run.init)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from handlatent.model.growth import input_axis as layer_input_axis


@dataclass(frozen=True)
class Transplant:
    """What `transplant` did: the tensors taken as they were, those widened to new inputs, and
    the top-level modules left (partly) at their fresh initialisation."""

    taken: list[str]
    grown: list[str]
    fresh: list[str]


def input_axis(model: nn.Module, name: str) -> int | None:
    """The axis of parameter `name` that runs over its layer's inputs (convolutions, linear
    layers' weights: growth.input_axis), else None."""
    module_name, _, leaf = name.rpartition(".")
    return layer_input_axis(model.get_submodule(module_name)) if leaf == "weight" else None


def widened(old: torch.Tensor, new: torch.Tensor, axis: int | None) -> torch.Tensor | None:
    """`old` in the leading slice of a zero tensor shaped like `new`, when the two differ only
    in the input `axis`, longer in `new` (a layer given new inputs, e.g. the bone maps of a
    guided decoder: at zero they change nothing, and they learn, as their inputs are not zero);
    else None."""
    differ = [i for i, (a, b) in enumerate(zip(old.shape, new.shape)) if a != b]
    if axis is None or old.dim() != new.dim() or differ != [axis] \
            or old.shape[axis] > new.shape[axis]:
        return None
    out = torch.zeros_like(new)
    out.narrow(axis, 0, old.shape[axis]).copy_(old)
    return out


def transplant(model: nn.Module, source: Mapping[str, torch.Tensor], strict: bool) -> Transplant:
    """Load into `model` every tensor of the state dict `source` that fits its own, widened
    (`widened`) where only a layer's inputs grew. `strict`: every tensor must fit as it is
    (load_state_dict's RuntimeError otherwise)."""
    own = model.state_dict()
    taken = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    grown = {k: w for k, v in source.items() if k in own and k not in taken
             and (w := widened(v, own[k], input_axis(model, k))) is not None}
    model.load_state_dict(taken | grown, strict=strict)
    fresh = sorted({k.split(".")[0] for k in own if k not in taken and k not in grown})
    return Transplant(list(taken), list(grown), fresh)
