"""Run by tests/test_train.py under torchrun: train, then save what this rank held.

    torchrun --standalone --nproc_per_node=2 tests/ddp_probe.py CONFIG OUT [KEY=VALUE ...]

Writes OUT/rank<R>.probe: this rank's weights after the run (the module DDP wrapped) and every
`distributed.all_reduce_sum` it took part in (input and output), so that the test can compare
the two ranks and check the validation means against the parts each rank contributed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from handlatent.training import distributed
from handlatent.training.config import load_config
from handlatent.training.train import train


def main(argv: list[str]) -> int:
    config, out, *sets = argv
    reduces, wrapped = [], []
    real_reduce, real_init = distributed.all_reduce_sum, DistributedDataParallel.__init__

    def recording_reduce(t: torch.Tensor, d: distributed.Dist) -> torch.Tensor:
        result = real_reduce(t, d)
        reduces.append((t.detach().cpu().clone(), result.detach().cpu().clone()))
        return result

    def recording_init(self: DistributedDataParallel, *args, **kwargs) -> None:
        real_init(self, *args, **kwargs)
        wrapped.append(self)

    distributed.all_reduce_sum = recording_reduce
    DistributedDataParallel.__init__ = recording_init
    train(load_config(config, sets), out)
    weights = {k: v.detach().cpu().clone() for k, v in wrapped[0].module.model.state_dict().items()}
    torch.save({"weights": weights, "reduces": reduces},
               Path(out) / f"rank{os.environ['RANK']}.probe")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
