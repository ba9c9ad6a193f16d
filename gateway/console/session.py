"""The console's session: a signed cookie (no server-side store) holding who signed in and the
session's CSRF token, checked on every POST.

The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the request came over TLS, and
signed with a key derived from the gateway's token signing key (HMAC-SHA256, itsdangerous), so a
deployment has no second secret to manage (a gateway restarted after a key rotation ends every
session); it expires ``console_session_seconds`` after sign-in.
A user disabled (or whose agency is suspended) is refused at the next page: the console's calls
carry a token naming ``user:<name>`` and the gateway's credential guard checks it like a client's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "lt_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass
class ConsoleSession:
    """What the cookie holds: the CSRF token always; the user once signed in."""

    csrf: str
    username: str | None = None
    display_name: str | None = None
    agency_code: str | None = None
    role: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def signed_in(self) -> bool:
        return self.username is not None


def session_key(private_key_file: Path) -> bytes:
    """Derive the cookie's signing key from the gateway's private key (never the key itself)."""
    return hmac.new(private_key_file.read_bytes(), b"lienthong console session v1", hashlib.sha256).digest()


class SessionCodec:
    def __init__(self, key: bytes, max_age: int) -> None:
        self.serializer = URLSafeTimedSerializer(key, salt="lienthong.console")
        self.max_age = max_age

    def load(self, request: Request) -> ConsoleSession | None:
        """Return the request's session, None when absent, forged or expired."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: dict[str, Any] = self.serializer.loads(raw, max_age=self.max_age)
            data["scopes"] = tuple(data.get("scopes") or ())
            return ConsoleSession(**data)
        except (BadSignature, TypeError, ValueError):
            return None

    def store(self, response: Response, session: ConsoleSession, *, secure: bool) -> None:
        """Set the cookie holding ``session``."""
        value = self.serializer.dumps({**asdict(session), "scopes": list(session.scopes)})
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.max_age,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=secure,
        )

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/console")


def new_session() -> ConsoleSession:
    """An anonymous session: a fresh CSRF token, nobody signed in."""
    return ConsoleSession(csrf=secrets.token_urlsafe(32))


def csrf_matches(session: ConsoleSession, sent: str | None) -> bool:
    """Compare the token sent with the session's in constant time."""
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())
