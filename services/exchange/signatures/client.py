"""The signature service as the exchange asks it: one file, one verdict with its reasons."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from shared.db import utcnow

VerdictValue = Literal["valid", "invalid", "indeterminate", "unsigned"]

# the signature service's refusals of a file, as verdicts: no signature at all, a verification that
# overran its time, anything else (unreadable, encrypted, a broken signature) is invalid
_REFUSALS: dict[str, VerdictValue] = {"signature_not_found": "unsigned", "verification_timeout": "indeterminate"}


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on a document's main file and why, in the signature service's words."""

    verdict: VerdictValue
    reasons: list[str] = field(default_factory=list)
    checked_at: dt.datetime = field(default_factory=utcnow)


class SignatureServiceUnavailable(Exception):
    """The signature service could not be asked (down, overloaded, or answered with an error)."""


class SignatureClient:
    """Calls ``POST /internal/v1/signatures/verify`` with the exchange's own (internal) token."""

    def __init__(self, http: httpx.AsyncClient, authorization: Callable[[], str], timeout: float) -> None:
        self.http = http
        self.authorization = authorization
        self.timeout = timeout

    async def verify(self, path: Path, *, file_name: str, content_type: str, sender_code: str) -> SignatureCheck:
        """Verify the file at ``path`` (the sender's certificates checked against the registry)."""
        data = await asyncio.to_thread(path.read_bytes)
        try:
            response = await self.http.post(
                "/internal/v1/signatures/verify",
                params={"sender": sender_code},
                files={"file": (file_name, data, content_type)},
                headers={"Authorization": self.authorization()},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise SignatureServiceUnavailable(f"the signature service did not answer ({exc!r})") from exc
        if response.status_code == 200:
            report = response.json()
            return SignatureCheck(report["verdict"], list(report.get("reasons") or []))
        if response.status_code in (413, 422):
            problem = _problem(response)
            reason = str(problem.get("detail") or problem.get("title") or "the file could not be verified")
            if response.status_code == 413:
                return SignatureCheck("indeterminate", [f"too large to verify: {reason}"])
            return SignatureCheck(_REFUSALS.get(str(problem.get("code")), "invalid"), [reason])
        raise SignatureServiceUnavailable(
            f"the signature service answered {response.status_code}: {response.text[:300]}"
        )


def _problem(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
