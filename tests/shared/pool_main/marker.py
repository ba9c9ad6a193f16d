"""Imported by :mod:`tests.shared.pool_main.main`: notes the id of each process that imports it."""

import os

with open(os.environ["POOL_MARKER_FILE"], "a") as marks:
    marks.write(f"{os.getpid()}\n")
