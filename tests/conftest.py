"""Tests marked `cuda` need a CUDA device: skipped, saying why, where there is none.

    pytest -m cuda        # on a GPU machine: the CUDA path alone
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
        for item in marked:
            item.add_marker(skip)
