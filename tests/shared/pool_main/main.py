"""A main module importing what its pool's workers do not need (as `services.cli` imports the whole
application): run as ``python -m tests.shared.pool_main.main`` or as a script, it starts a pool from
:func:`shared.pools.forkserver_context` and prints the id of the worker that ran a task."""

import os
import sys
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.getcwd())  # run as a script, the repository is not on the path

import tests.shared.pool_main.marker  # noqa: F401
from shared.pools import forkserver_context

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=forkserver_context()) as pool:
        print(pool.submit(os.getpid).result())
