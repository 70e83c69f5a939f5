"""The thread settings of the explorer, shared by `handlatent-gui` and `handlatent-bench gui` (a
module of its own so that both read them without importing torch at import time)."""

from __future__ import annotations

import sys

GUI_THREADS = 1   # the explorer's decode, drag and atlas workers run at once, each with its own
#   team of torch threads: on few cores one thread each keeps joint drags fastest (docs/gui.md)
GIL_SWITCH_S = 0.001   # how long a Python thread may hold the interpreter lock while another
#   waits (Python's default is 5 ms): the GUI thread, the drag worker and the decoder hand it
#   over within 1 ms, so none of them waits a whole 5 ms slice for a result to be applied


def configure_gui_threads(threads: int = GUI_THREADS) -> None:
    """Set torch's CPU threads and the interpreter's switch interval for the explorer."""
    import torch
    torch.set_num_threads(int(threads))
    sys.setswitchinterval(GIL_SWITCH_S)
