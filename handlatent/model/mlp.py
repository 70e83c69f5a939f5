"""The fully connected network of the supplement's Table 2, used for all four pose networks."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


class MLP(nn.Sequential):
    """Flatten, `depth` x (FC `hidden`, ReLU) named fc1, relu1, ..., then a linear `out` layer.

    Encoders (depth 2) end in 2 d outputs (mean and log-variance); decoders (depth 1) in the
    63 CPose or 9 viewpoint numbers.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 512,
                 depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        for i in range(1, depth + 1):
            layers += [(f"fc{i}", nn.Linear(in_features if i == 1 else hidden, hidden)),
                       (f"relu{i}", nn.ReLU(inplace=True))]
        layers.append(("out", nn.Linear(hidden, out_features)))
        super().__init__(OrderedDict(layers))
