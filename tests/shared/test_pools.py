"""Worker pools' forkserver: a new worker does not import again what the parent's main module
imports (0.4 s of CPU for `services.cli`, paid by the archive every thousand files)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import services.archive.extractor as extractor
import services.signature.verification.pool as verifier_pool
from shared import pools

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *command: str) -> tuple[int, list[int]]:
    marks = tmp_path / "marks"
    answer = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={"POOL_MARKER_FILE": str(marks), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    assert "RuntimeWarning" not in answer.stderr, answer.stderr
    return int(answer.stdout.split()[-1]), [int(line) for line in marks.read_text().split()]


@pytest.mark.parametrize(
    "command",
    [("-m", "tests.shared.pool_main.main"), ("tests/shared/pool_main/main.py",)],
    ids=["python -m", "a script"],
)
def test_a_worker_does_not_import_the_main_modules_imports(tmp_path: Path, command: tuple[str, ...]) -> None:
    worker, importers = _run(tmp_path, *command)
    # the parent imported the marker, and the forkserver once for all its workers; the worker not
    assert worker not in importers
    assert len(importers) == 2


def test_main_imports() -> None:
    script = types.ModuleType("__main__")
    script.__file__ = str(ROOT / ".venv" / "bin" / "lienthong")
    if Path(script.__file__).exists():  # the console script, as pip writes it: `from services.cli import app`
        assert pools.main_imports(script) == ["services.cli", "sys"]
    package_main = types.ModuleType("__main__")
    package_main.__spec__ = types.SimpleNamespace(name="pytest.__main__")  # type: ignore[assignment]
    package_main.__file__ = "pytest/__main__.py"
    assert pools.main_imports(package_main) == []  # a worker does not run it again
    cli = types.ModuleType("__main__")
    cli.__spec__ = types.SimpleNamespace(name="services.cli")  # type: ignore[assignment]
    cli.__file__ = str(ROOT / "services" / "cli.py")
    named = pools.main_imports(cli)
    assert "services.cli" not in named  # a worker runs it again by this name: not imported before
    assert {"typer", "uvicorn", "fastapi", "shared.httpserver"} <= set(named)  # what cost the 0.4 s
    assert "shared.db" not in named  # imported under `if TYPE_CHECKING:` only


def test_both_pools_modules_are_preloaded_whichever_starts_the_server() -> None:
    # in the embedded mode one forkserver serves the signature's verifiers and the archive's extractors
    assert set(extractor.PRELOAD) | {verifier_pool.ENGINE} <= pools._PRELOAD
