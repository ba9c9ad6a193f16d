"""The archive's tests run their systems with attachment text extraction on (off elsewhere)."""

from __future__ import annotations

import pytest

import tests.conftest


@pytest.fixture(autouse=True)
def _extract_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tests.conftest, "EXTRACT_TEXT", True)
