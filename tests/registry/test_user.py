"""Console users from the command line: `lienthong registry create-user` makes the first registry
admin straight in the registry's database (the API and the console's own checks are in
tests/gateway/test_console.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from typer.testing import CliRunner, Result

from services.cli import app as cli

DEMO_CSV = Path(__file__).resolve().parents[2] / "services" / "registry" / "data" / "demo-province.csv"


async def test_the_first_admin_is_created_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "LIENTHONG_VAR_DIR": str(tmp_path), "LIENTHONG_NEW_USER_PASSWORD": "mat-khau-quan-tri-1"}
    runner = CliRunner()

    def run(*args: str, **extra: str) -> Result:
        return runner.invoke(cli, list(args), env={**env, **extra})

    imported = await asyncio.to_thread(run, "registry", "import", str(DEMO_CSV))
    assert imported.exit_code == 0, imported.output
    create = ("registry", "create-user", "--username", "quantri", "--agency", "000.00.00.H10", "--name", "Quản trị")
    created = await asyncio.to_thread(run, *create)
    assert created.exit_code == 0, created.output
    assert "created registry_admin user quantri" in created.output
    again = await asyncio.to_thread(run, *create)
    assert again.exit_code == 1 and "exists already" in again.output
    short = await asyncio.to_thread(run, *create[:3], "quantri2", *create[4:], LIENTHONG_NEW_USER_PASSWORD="ngan")
    assert short.exit_code == 1 and "password" in short.output
    unknown = await asyncio.to_thread(run, *create[:3], "quantri3", "--agency", "000.00.99.H41", "--name", "X")
    assert unknown.exit_code == 1
    with sqlite3.connect(tmp_path / "registry.db") as db:
        rows = db.execute("SELECT username, role, password_hash FROM agency_user").fetchall()
    assert [(u, r) for u, r, _ in rows] == [("quantri", "registry_admin")]
    assert rows[0][2].startswith("$argon2id$") and "mat-khau" not in rows[0][2]
