"""The console's pages. Each page is the API's answer rendered: the routes read the form or the
query, call the API as the signed-in user (``pages.api_for``) and render a template; the rules
stay in the services. Kept out of the OpenAPI document (they are not the API)."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.auth import auth_throttle
from gateway.console import admin as admin_pages
from gateway.console.calls import ConsoleApiError
from gateway.console.i18n import LANG_COOKIE, LANGUAGES
from gateway.console.pages import (
    STATIC,
    ConsoleForbiddenError,
    CsrfError,
    SignInRequiredError,
    api_for,
    codec,
    gateway_of,
    home_of,
    over_tls,
    posted,
    redirect,
    render,
    session_of,
    signed_in,
)
from gateway.console.session import ConsoleSession, csrf_matches, new_session
from shared.audit import audit_throttled
from shared.auth import Scope
from shared.clients import InvalidClientError
from shared.errors import AgencyInactiveError, DependencyUnavailableError

router = APIRouter(prefix="/console", include_in_schema=False)

_CODES = re.compile(r"[\s,;]+")


@router.get("", response_class=HTMLResponse)
async def console_home(request: Request) -> Response:
    """The console's entry: the signed-in user's first page, else the sign-in form."""
    session = session_of(request)
    if session is None or not session.signed_in:
        return RedirectResponse("/console/sign-in", status_code=303)
    return RedirectResponse(home_of(session), status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, error: str | None = None) -> Response:
    """The sign-in form."""
    return render(request, "sign_in.html", error=error if error in ("session_expired",) else None)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """Check the user name and password with the registry (throttled like the token endpoint);
    on success a new session (new CSRF token) for the user's agency and role."""
    anonymous = session_of(request)
    form = await request.form()
    sent = form.get("csrf")
    if anonymous is None or not csrf_matches(anonymous, sent if isinstance(sent, str) else None):
        return render(request, "sign_in.html", error="csrf_failed", status_code=400)
    username = str(form.get("username") or "").strip().lower()[:64]
    password = str(form.get("password") or "")[:200]
    gateway = gateway_of(request)
    throttle = auth_throttle(gateway)
    address = request.client.host if request.client else "unknown"
    refused = throttle.refused(f"user:{username}", address)
    if refused is not None:
        await audit_throttled(  # as a throttled token request: the first per user name or address and window
            gateway,
            gateway.broker,
            client_id=f"user:{username}",
            address=address,
            what=refused[0],
            window_seconds=gateway.settings.limits.auth_failure_window_seconds,
        )
        return render(request, "sign_in.html", error="too_many", username=username, status_code=429)
    succeeded = throttle.attempt(f"user:{username}", address)
    try:
        if not username or not password:
            raise InvalidClientError("empty")
        user = await gateway.registry().sign_in(username, password)
    except InvalidClientError:
        return render(request, "sign_in.html", error="sign_in_refused", username=username, status_code=401)
    except AgencyInactiveError:
        return render(request, "sign_in.html", error="agency_inactive", username=username, status_code=403)
    succeeded()
    session = new_session()
    session.username, session.display_name = user.username, user.display_name
    session.agency_code, session.role, session.scopes = user.agency_code, user.role, tuple(user.scopes)
    response = RedirectResponse(home_of(session), status_code=303)
    codec(request).store(response, session, secure=over_tls(request))
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (its cookie is dropped)."""
    await posted(request)
    response = RedirectResponse("/console/sign-in", status_code=303)
    codec(request).clear(response)
    return response


@router.get("/language/{language}")
async def choose_language(language: str, request: Request, back: str = "/console") -> Response:
    """Remember the chosen language (a cookie) and go back to the page."""
    target = back if back.startswith("/console") and "//" not in back and "\\" not in back else "/console"
    response = RedirectResponse(target, status_code=303)
    if language in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, language, max_age=365 * 86400, path="/console", samesite="strict", secure=over_tls(request)
        )
    return response


# -- clerks ------------------------------------------------------------------------------------

_LIST_FILTERS = ("status", "type", "counterpart", "date_from", "date_to", "urgency", "overdue", "kind", "cursor")


def _filters(request: Request) -> dict[str, str]:
    """The list filters of the query string (only those the API knows, empty ones left out)."""
    return {k: v[:100] for k in _LIST_FILTERS if (v := request.query_params.get(k))}


async def _box(request: Request, box: str) -> Response:
    scope = Scope.RECEIVE if box == "received" else Scope.SEND
    session = signed_in(request, scope)
    filters = _filters(request)
    async with api_for(request, session) as api:
        page = await api.get("/v1/documents", box=box, limit=25, **filters)
    return render(
        request,
        "documents.html",
        session=session,
        box=box,
        page=page,
        filters=filters,
    )


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request) -> Response:
    """The documents the user's agency received, with the list's filters."""
    return await _box(request, "received")


@router.get("/sent", response_class=HTMLResponse)
async def sent(request: Request) -> Response:
    """The documents the user's agency sent, each with its recipients' statuses counted."""
    return await _box(request, "sent")


@router.get("/documents/{document_id}", response_class=HTMLResponse)
async def document(document_id: str, request: Request) -> Response:
    """A document: metadata, attachments, signature verdict, each recipient's status history."""
    session = signed_in(request, Scope.RECEIVE, Scope.SEND)
    async with api_for(request, session) as api:
        doc = await api.get(f"/v1/documents/{document_id}")
    mine = doc["sender_code"] == session.agency_code
    own_delivery = next((d for d in doc["deliveries"] if d["recipient_code"] == session.agency_code), None)
    return render(
        request,
        "document.html",
        session=session,
        doc=doc,
        mine=mine,
        own_delivery=own_delivery,
        statuses=["01", "02", "03", "04", "05", "06", "15", "16"],
    )


@router.get("/documents/{document_id}/attachments/{attachment_id}")
async def attachment(document_id: str, attachment_id: str, request: Request) -> Response:
    """Download an attachment through the API (sender and recipients only, as the API decides)."""
    session = signed_in(request, Scope.RECEIVE)
    async with api_for(request, session) as api:
        answer = await api.call("GET", f"/v1/documents/{document_id}/attachments/{attachment_id}")
    keep = ("content-type", "content-disposition", "x-content-sha256", "etag")
    headers = {k: v for k, v in answer.headers.items() if k.lower() in keep}
    headers["Content-Security-Policy"] = "sandbox"
    return Response(answer.content, headers=headers)


@router.post("/deliveries/{delivery_id}/status")
async def report_status(delivery_id: str, request: Request) -> Response:
    """Report a national status for the user's agency's copy of a document."""
    session, form = await posted(request, Scope.RECEIVE)
    document_id = str(form.get("document_id") or "")
    body: dict[str, Any] = {"status": str(form.get("status") or "")}
    if note := str(form.get("note") or "").strip():
        body["note"] = note
    async with api_for(request, session) as api:
        await api.json("POST", f"/v1/deliveries/{delivery_id}/status", json=body)
    return redirect(f"/console/documents/{document_id}", flash="status_reported")


@router.post("/documents/{document_id}/recall")
async def recall(document_id: str, request: Request) -> Response:
    """Ask every recipient to give the document back (13)."""
    session, form = await posted(request, Scope.SEND)
    async with api_for(request, session) as api:
        await api.json("POST", f"/v1/documents/{document_id}/recall", json={"reason": str(form.get("reason") or "")})
    return redirect(f"/console/documents/{document_id}", flash="recall_requested")


async def _groups(request: Request, session: ConsoleSession) -> list[dict[str, Any]]:
    async with api_for(request, session) as api:
        groups: list[dict[str, Any]] = await api.get("/v1/groups")
    return groups


@router.get("/send", response_class=HTMLResponse)
async def send_form(request: Request, relation: str | None = None, of: str | None = None) -> Response:
    """The form to send a document; with ``relation=update|replace&of=<id>``, an update or a
    replacement of a document the agency sent, its fields filled in."""
    session = signed_in(request, Scope.SEND)
    original: dict[str, Any] | None = None
    async with api_for(request, session) as api:
        if relation in ("update", "replace") and of:
            original = await api.get(f"/v1/documents/{of}")
    return render(
        request,
        "send.html",
        session=session,
        groups=await _groups(request, session),
        relation=relation if original else None,
        original=original,
        values={},
        today=dt.date.today().isoformat(),
    )


@router.post("/send", response_class=HTMLResponse)
async def send(request: Request) -> Response:
    """Send the form's document with its attachments (multipart, as an agency system sends)."""
    session, form = await posted(request, Scope.SEND)
    values = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    metadata: dict[str, Any] = {
        "code_number": values.get("code_number", ""),
        "code_notation": values.get("code_notation", ""),
        "type_name": values.get("type_name", ""),
        "subject": values.get("subject", ""),
        "promulgation_date": values.get("promulgation_date", ""),
        "signer": {"position": values.get("signer_position") or None, "full_name": values.get("signer_name") or None},
        "urgency": int(values["urgency"]) if values.get("urgency", "").isdigit() else 0,
        "recipients": [c.upper() for c in _CODES.split(values.get("recipients", "")) if c],
        "groups": [str(g) for g in form.getlist("groups") if isinstance(g, str) and g],
    }
    for field in ("promulgation_place", "due_date"):
        if values.get(field):
            metadata[field] = values[field]
    relation, of = values.get("relation"), values.get("of")
    if relation in ("update", "replace") and of:
        metadata["relation"] = {"kind": relation, "document_id": of}
    files = [
        ("files", (f.filename or "tep-dinh-kem", await f.read(), f.content_type or "application/octet-stream"))
        for f in form.getlist("files")
        if isinstance(f, UploadFile) and f.filename
    ]
    try:
        async with api_for(request, session) as api:
            accepted = await api.json(
                "POST",
                "/v1/documents",
                data={"metadata": json.dumps(metadata, ensure_ascii=False)},
                files=files or [("files", ("", b"", "application/octet-stream"))],
            )
    except ConsoleApiError as exc:
        return render(
            request,
            "send.html",
            session=session,
            groups=await _groups(request, session),
            relation=relation if relation in ("update", "replace") else None,
            original={"id": of} if of else None,
            values=values,
            error=exc.detail,
            today=dt.date.today().isoformat(),
            status_code=exc.status if 400 <= exc.status < 500 else 502,
        )
    return redirect(f"/console/documents/{accepted['id']}", flash="document_sent")


@router.get("/search", response_class=HTMLResponse)
async def search(request: Request, q: Annotated[str, Query(max_length=2000)] = "") -> Response:
    """Search the archive: the documents the agency sent or received, by words without diacritics."""
    session = signed_in(request, Scope.SEARCH)
    results = None
    if q.strip():
        async with api_for(request, session) as api:
            results = await api.get("/v1/archive/search", q=q[:2000], limit=25)
    return render(request, "search.html", session=session, q=q, results=results)


# -- wiring ------------------------------------------------------------------------------------


def install_console(app: FastAPI) -> None:
    """Serve the console under /console: its pages, its pinned static files, its error pages."""
    app.include_router(router)
    app.include_router(admin_pages.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    async def on_sign_in_required(request: Request, _exc: Exception) -> Response:
        if not request.headers.get("hx-request"):
            return RedirectResponse("/console/sign-in?error=session_expired", status_code=303)
        return Response(status_code=204, headers={"HX-Redirect": "/console/sign-in?error=session_expired"})

    async def on_forbidden(request: Request, _exc: Exception) -> Response:
        return render(request, "error.html", message_key="forbidden", status_code=403)

    async def on_csrf(request: Request, _exc: Exception) -> Response:
        return render(request, "error.html", message_key="csrf_failed", status_code=403)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleApiError)
        if exc.status == 401:  # the user was disabled, or the agency suspended: the session is over
            response = RedirectResponse("/console/sign-in?error=session_expired", status_code=303)
            codec(request).clear(response)
            return response
        status = exc.status if exc.status < 500 else 502
        return render(request, "error.html", message_key="error", detail=exc.detail, status_code=status)

    async def on_unavailable(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", message_key="error", detail=str(exc), status_code=503)

    previous_unavailable = app.exception_handlers.get(DependencyUnavailableError)

    async def unavailable(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/console") and not request.url.path.startswith("/console/static"):
            return await on_unavailable(request, exc)
        assert previous_unavailable is not None
        answer = previous_unavailable(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(SignInRequiredError, on_sign_in_required)
    app.add_exception_handler(ConsoleForbiddenError, on_forbidden)
    app.add_exception_handler(CsrfError, on_csrf)
    app.add_exception_handler(ConsoleApiError, on_api_error)
    if previous_unavailable is not None:
        app.add_exception_handler(DependencyUnavailableError, unavailable)
