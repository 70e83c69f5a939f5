"""Tests marked `cuda` need a CUDA device: skipped, saying why, where there is none.

    pytest -m cuda        # on a GPU machine: the CUDA path alone
"""

from __future__ import annotations

import pytest


@pytest.fixture
def isolated_qsettings(tmp_path, monkeypatch):
    """Qt settings (recent files and models) in a temporary folder, not the user's; no dialogs."""
    from PySide6.QtCore import QSettings
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    monkeypatch.setenv("HANDLATENT_NO_DIALOGS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
        for item in marked:
            item.add_marker(skip)
