"""A Session is safe to leave: `with` closes it, and a script that never calls close() still
exits cleanly (its worker threads are stopped at interpreter exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np

from handlatent.explorer import Session
from handlatent.model import ModelConfig, build_model

TINY = ModelConfig(image_size=64, z_y1=4, z_y2=2, z_u=2, hidden=16, decoder_channels=8)
RUNS = 50

# Without the exit hook a script like this aborted at exit ("terminate called without an active
# exception", exit status 134) in every run on a busy 2-core machine. One process imports torch
# and builds the model once (one torch thread: no OpenMP pool to break by forking), then forks
# RUNS children; each opens a session, asks for a decoding and ends as a script ends (SystemExit
# at the top level: atexit, thread shutdown, interpreter teardown), so a run costs no imports.
SCRIPT = textwrap.dedent(f"""
    import gc, os, sys
    import numpy as np
    import torch
    from handlatent.explorer import Session
    from handlatent.model import ModelConfig, build_model

    torch.set_num_threads(1)
    model = build_model(ModelConfig(**{TINY.to_dict()!r})).eval()
    gc.freeze()                 # the children's teardown need not copy the parent's objects
    statuses = []
    for _ in range({RUNS}):
        pid = os.fork()
        if pid == 0:
            session = Session(model)                       # no close(), no `with`
            session.set_latent(np.ones(model.layout.total, np.float32))
            sys.exit(0)
        statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(*statuses)
""")


def test_a_script_that_never_closes_its_session_exits_cleanly_every_time() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    statuses = [int(s) for s in result.stdout.split()]
    assert statuses == [0] * RUNS, (statuses, result.stderr[-500:])
    assert "terminate called" not in result.stderr


def test_with_closes_the_session_and_its_worker_threads() -> None:
    before = set(threading.enumerate())
    with Session(build_model(TINY).eval()) as session:
        session.set_latent(np.ones(session.layout.total, np.float32))
        assert session.wait_idle() and session.last_decoded is not None
        assert set(threading.enumerate()) - before      # the decode and drag workers
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]
    session.set_latent(np.zeros(session.layout.total, np.float32))  # closed: not decoded
    session.close()                                                   # idempotent
