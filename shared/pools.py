"""Process pools for CPU-bound or hostile-input work (signature verification, text extraction): the
forkserver their workers are forked from, and what to do with a pool whose task overran, since a
running task cannot be stopped otherwise.

Every worker process, before its first task, runs the parent's main module again (multiprocessing's
rule, so that functions defined there can be found): `python -m services.cli` or the `lienthong`
script, which import the whole application. A worker that imported it itself spent about 0.4 s of
CPU on it, and the archive replaces its extraction workers every thousand files
(docs/performance.md, "The tenth session's changes"). So the forkserver imports, when it starts,
the modules the pools ask for (:func:`preload`) and those the main module imports;
a worker forked from it finds them imported and only runs the main module's own lines (a few ms)."""

from __future__ import annotations

import ast
import multiprocessing
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import ForkServerContext
from pathlib import Path

_PRELOAD: set[str] = set()


def preload(*modules: str) -> None:
    """Have the forkserver import ``modules`` when it starts. One forkserver serves every pool of the
    process (in the embedded mode the signature's verifiers and the archive's extractors), so the
    pools' modules are registered when their module is imported, before either pool starts it."""
    _PRELOAD.update(modules)


def forkserver_context() -> ForkServerContext:
    """The context to create a pool with: its processes forked from a server that imported what
    :func:`preload` registered and what the parent's main module needs (:func:`main_imports`)."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload([*sorted(_PRELOAD), *main_imports()])
    return context


def main_imports(main: types.ModuleType | None = None) -> list[str]:
    """What a worker would otherwise import running the parent's main module again (the
    ``lienthong`` script, or ``python -m services.cli``): the modules its top-level ``import``
    statements name. The forkserver imports them; a worker then runs only the module's own lines. A
    ``package/__main__.py`` main is not run again, and needs nothing. (The forkserver's own
    ``"__main__"`` preload does nothing on Python 3.11: the path it needs is not passed to it.)"""
    main = main if main is not None else sys.modules.get("__main__")
    if main is None:
        return []
    name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if not path or (name is not None and (name == "__main__" or name.endswith(".__main__"))):
        return []
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    modules: set[str] = set()
    for node in tree.body:  # what runs when the module does: not an import under `if TYPE_CHECKING:`
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    # only what the parent has imported (it exists and imports cleanly); never the main module itself,
    # which a worker runs again by its name and must find not imported yet
    if name is not None:
        modules.discard(name)
    return sorted(module for module in modules if module in sys.modules)


def discard_pool(executor: ProcessPoolExecutor) -> None:
    """Stop handing the pool work; its idle processes exit, queued tasks are cancelled."""
    executor.shutdown(wait=False, cancel_futures=True)


def kill_pool(executor: ProcessPoolExecutor) -> None:
    """Kill the pool's processes (a stuck task with them) and wait for them to be gone."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    discard_pool(executor)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=5)
