"""What every console page shares: the templates, the session of the request, who may see a page,
the CSRF check of every POST, and the answers (a page, a redirect, a refusal)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.console.calls import ConsoleApi
from gateway.console.i18n import MESSAGES, STATUS_NAMES, language_of, translator
from gateway.console.session import CSRF_FIELD, CSRF_HEADER, ConsoleSession, SessionCodec, csrf_matches, new_session
from gateway.console.session import session_key as derive_key
from gateway.runtime import GatewayRuntime
from shared.auth import Scope
from shared.runtime import runtime_of

HERE = Path(__file__).parent
STATIC = HERE / "static"
# the console's pages load only their own script and stylesheet; forms post only to the console
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class SignInRequiredError(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


class ConsoleForbiddenError(Exception):
    """Signed in, but the user's role does not open this page."""


class CsrfError(Exception):
    """A POST without the session's CSRF token."""


def gateway_of(request: Request) -> GatewayRuntime:
    return runtime_of(request, GatewayRuntime)


_codecs: weakref.WeakKeyDictionary[GatewayRuntime, SessionCodec] = weakref.WeakKeyDictionary()


def codec(request: Request) -> SessionCodec:
    """The gateway's session codec, made on first use from its signing key as it is then."""
    gateway = gateway_of(request)
    found = _codecs.get(gateway)
    if found is None:
        key = derive_key(gateway.settings.private_key_file)
        found = _codecs[gateway] = SessionCodec(key, gateway.settings.gateway.console_session_seconds)
    return found


def over_tls(request: Request) -> bool:
    """Whether the request came over TLS (itself, or from a trusted TLS-terminating proxy)."""
    if request.url.scheme == "https":
        return True
    gateway = gateway_of(request)
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return gateway.settings.gateway.forwarded_proto_trusted and proto == "https"


def session_of(request: Request) -> ConsoleSession | None:
    return codec(request).load(request)


def signed_in(request: Request, *scopes: str) -> ConsoleSession:
    """Return the signed-in session (else redirect to sign in); with ``scopes``, the user's role
    must hold one of them (else 403)."""
    session = session_of(request)
    if session is None or not session.signed_in:
        raise SignInRequiredError
    if scopes and not set(scopes) & set(session.scopes):
        raise ConsoleForbiddenError
    return session


async def posted(request: Request, *scopes: str) -> tuple[ConsoleSession, FormData]:
    """A POST's session and form, after the CSRF check (the form field or the htmx header)."""
    session = signed_in(request, *scopes)
    form = await request.form()
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_matches(session, sent if isinstance(sent, str) else None):
        raise CsrfError
    return session, form


def api_for(request: Request, session: ConsoleSession) -> ConsoleApi:
    """A caller of the API as the session's user, through this gateway."""
    assert session.username and session.agency_code is not None
    return ConsoleApi(
        request.app,
        gateway_of(request),
        client_id=f"user:{session.username}",
        agency_code=session.agency_code,
        scopes=list(session.scopes),
        address=request.client.host if request.client else "127.0.0.1",
    )


def home_of(session: ConsoleSession) -> str:
    """The first page of a user's role."""
    scopes = set(session.scopes)
    if Scope.RECEIVE in scopes or Scope.SEND in scopes:
        return "/console/inbox"
    if Scope.REGISTRY_ADMIN in scopes:
        return "/console/admin/agencies"
    if Scope.STATS in scopes:
        return "/console/statistics"
    if Scope.AUDIT in scopes:
        return "/console/admin/audit"
    return "/console/sign-in"


def _nav(session: ConsoleSession | None) -> list[tuple[str, str]]:
    """The menu: (path, message key) the user's role opens."""
    if session is None or not session.signed_in:
        return []
    scopes = set(session.scopes)
    items: list[tuple[str, str]] = []
    if Scope.RECEIVE in scopes:
        items.append(("/console/inbox", "inbox"))
    if Scope.SEND in scopes:
        items += [("/console/sent", "sent"), ("/console/send", "send")]
    if Scope.SEARCH in scopes:
        items.append(("/console/search", "search"))
    if Scope.REGISTRY_ADMIN in scopes:
        items += [
            ("/console/admin/agencies", "agencies"),
            ("/console/admin/hierarchy", "hierarchy"),
            ("/console/admin/groups", "group_list"),
            ("/console/admin/failed-pushes", "failed_pushes"),
            ("/console/admin/truststore", "truststore"),
        ]
    if Scope.AUDIT in scopes:
        items.append(("/console/admin/audit", "audit"))
    if Scope.STATS in scopes or Scope.REGISTRY_ADMIN in scopes:  # the statistics API answers both
        items.append(("/console/statistics", "statistics"))
    return items


def render(
    request: Request,
    template: str,
    *,
    session: ConsoleSession | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page in the request's language; an anonymous visitor gets a session (for the
    sign-in form's CSRF token) set with the answer."""
    fresh = None
    if session is None:
        session = session_of(request)
        if session is None:
            session = fresh = new_session()
    language = language_of(request)
    t: Callable[[str], str] = translator(language)
    # the message a redirect after a POST names (``redirect(…, flash=key)``): one of the catalogue's,
    # never a text of the address's own
    flash = request.query_params.get("flash")
    context.setdefault("flash", flash if flash in MESSAGES else None)
    html = templates.get_template(template).render(
        request=request,
        t=t,
        lang=language,
        session=session,
        csrf=session.csrf,
        nav=_nav(session),
        here=request.url.path,
        here_full=quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="/"),
        status_name=lambda code: t(code) if code in STATUS_NAMES else code,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    response.headers["Cache-Control"] = "no-store"
    if fresh is not None:
        codec(request).store(response, fresh, secure=over_tls(request))
    return response


def redirect(path: str, **query: str) -> Response:
    """A 303 to a console page (after a POST), with a ``flash`` key or other query values."""
    if query:
        path += ("&" if "?" in path else "?") + "&".join(f"{k}={quote(v)}" for k, v in query.items())
    return RedirectResponse(path, status_code=303)
