"""The province admin's console pages (agencies and hierarchy, API clients, users, groups,
failed webhook pushes, trust store), the auditor's audit trail and the leaders' statistics."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from gateway.console.calls import ConsoleApiError
from gateway.console.charts import bar_chart
from gateway.console.i18n import language_of, translator
from gateway.console.pages import api_for, posted, redirect, render, signed_in
from shared.auth import Scope

router = APIRouter(prefix="/console", include_in_schema=False)

ADMIN = Scope.REGISTRY_ADMIN


@router.get("/admin/agencies", response_class=HTMLResponse)
async def agencies(request: Request) -> Response:
    """The directory: top-level agencies (or those matching the words), the form to add one."""
    session = signed_in(request, ADMIN)
    q = request.query_params.get("q", "")[:200]
    async with api_for(request, session) as api:
        page = await api.get("/v1/agencies", q=q or None, limit=100, cursor=request.query_params.get("cursor"))
        levels = await api.get("/v1/agency-levels")
    return render(
        request,
        "admin_agencies.html",
        session=session,
        page=page,
        levels=levels,
        q=q,
        values={},
    )


@router.post("/admin/agencies", response_class=HTMLResponse)
async def create_agency(request: Request) -> Response:
    """Add an agency to the directory (under a parent, at a level)."""
    session, form = await posted(request, ADMIN)
    values = {k: str(v).strip() for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    body: dict[str, Any] = {
        "code": values.get("code", "").upper(),
        "name": values.get("name", ""),
        "level": values.get("level", ""),
    }
    if values.get("parent_code"):
        body["parent_code"] = values["parent_code"].upper()
    async with api_for(request, session) as api:
        try:
            created = await api.json("POST", "/v1/agencies", json=body)
        except ConsoleApiError as exc:
            page = await api.get("/v1/agencies", limit=100)
            levels = await api.get("/v1/agency-levels")
            return render(
                request,
                "admin_agencies.html",
                session=session,
                page=page,
                levels=levels,
                q="",
                error=exc.detail,
                values=values,
                status_code=exc.status if exc.status < 500 else 502,
            )
    return redirect(f"/console/admin/agencies/{created['code']}", flash="agency_created")


async def _agency_page(request: Request, code: str, **extra: Any) -> Response:
    session = signed_in(request, ADMIN)
    async with api_for(request, session) as api:
        agency = await api.get(f"/v1/agencies/{code}")
        known = agency["code"]  # the code as the registry spells it; the rest asked side by side
        answers: tuple[Any, ...] = await asyncio.gather(
            api.get("/v1/agencies", parent=known, limit=200),
            api.get(f"/v1/agencies/{known}/clients"),
            api.get("/v1/users", agency=known),
            api.get(f"/v1/agencies/{known}/endpoint"),
            api.get(f"/v1/agencies/{known}/certificates"),
            return_exceptions=True,  # every call over before the client closes; the first refusal shown
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        children, clients, users, endpoint, certificates = answers
    return render(
        request,
        "admin_agency.html",
        session=session,
        agency=agency,
        children=children["items"],
        clients=clients,
        users=users,
        endpoint=endpoint,
        certificates=certificates,
        **extra,
    )


@router.get("/admin/agencies/{code}", response_class=HTMLResponse)
async def agency(code: str, request: Request) -> Response:
    """An agency: its place in the hierarchy, API clients, users, delivery endpoint, certificates."""
    return await _agency_page(request, code)


def _credential_rows(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A client's id and secret, as the page shows them once: (label, value, element id)."""
    return [
        ("client_id", answer["client_id"], "client-id"),
        ("client_secret", answer["client_secret"], "client-secret"),
    ]


@router.post("/admin/agencies/{code}/clients", response_class=HTMLResponse)
async def issue_client(code: str, request: Request) -> Response:
    """Issue an API client for the agency; its secret is shown on this answer only."""
    session, form = await posted(request, ADMIN)
    body = {"name": str(form.get("name") or ""), "role": str(form.get("role") or "agency")}
    async with api_for(request, session) as api:
        created = await api.json("POST", f"/v1/agencies/{code}/clients", json=body)
    rows = _credential_rows(created)
    return await _agency_page(request, code, secret_rows=rows, secret_key="client_issued")


@router.post("/admin/clients/{client_id}/rotate", response_class=HTMLResponse)
async def rotate_client(client_id: str, request: Request) -> Response:
    """Rotate an API client's secret (the old one stays valid a day); the new one is shown once."""
    session, form = await posted(request, ADMIN)
    async with api_for(request, session) as api:
        rotated = await api.json("POST", f"/v1/clients/{client_id}/rotate", json={})
    rows = _credential_rows(rotated)
    return await _agency_page(request, str(form.get("agency") or ""), secret_rows=rows, secret_key="client_rotated")


@router.post("/admin/clients/{client_id}/revoke")
async def revoke_client(client_id: str, request: Request) -> Response:
    """Revoke an API client at once."""
    session, form = await posted(request, ADMIN)
    async with api_for(request, session) as api:
        await api.json("POST", f"/v1/clients/{client_id}/revoke")
    return redirect(f"/console/admin/agencies/{form.get('agency') or ''}", flash="client_revoked")


@router.post("/admin/agencies/{code}/users")
async def create_user(code: str, request: Request) -> Response:
    """Add a console user to the agency, with a role and a first password."""
    session, form = await posted(request, ADMIN)
    body = {
        "username": str(form.get("username") or "").strip().lower(),
        "display_name": str(form.get("display_name") or ""),
        "agency_code": code,
        "role": str(form.get("role") or "agency"),
        "password": str(form.get("password") or ""),
    }
    async with api_for(request, session) as api:
        await api.json("POST", "/v1/users", json=body)
    return redirect(f"/console/admin/agencies/{code}", flash="user_created")


@router.get("/admin/groups", response_class=HTMLResponse)
async def groups(request: Request) -> Response:
    """The recipient groups: members and rules."""
    session = signed_in(request, ADMIN)
    async with api_for(request, session) as api:
        found = await api.get("/v1/groups")
        levels = await api.get("/v1/agency-levels")
    return render(
        request,
        "admin_groups.html",
        session=session,
        groups=found,
        levels=levels,
    )


@router.get("/admin/failed-pushes", response_class=HTMLResponse)
async def failed_pushes(request: Request) -> Response:
    """Feed entries a webhook or bus queue did not take after every try."""
    session = signed_in(request, ADMIN)
    async with api_for(request, session) as api:
        page = await api.get("/v1/transfers/failed", limit=100, cursor=request.query_params.get("cursor"))
    return render(request, "admin_failed.html", session=session, page=page)


@router.post("/admin/failed-pushes/{failure_id}/resend")
async def resend(failure_id: str, request: Request) -> Response:
    """Queue a failed entry again for its agency's channel."""
    session, _form = await posted(request, ADMIN)
    async with api_for(request, session) as api:
        await api.json("POST", f"/v1/transfers/failed/{failure_id}/resend")
    return redirect("/console/admin/failed-pushes", flash="resent")


@router.get("/admin/truststore", response_class=HTMLResponse)
async def truststore(request: Request) -> Response:
    """The trust store: its roots and intermediates, its CRLs."""
    session = signed_in(request, ADMIN)
    async with api_for(request, session) as api:
        summary = await api.get("/v1/signatures/trust-store")
        certificates = await api.get("/v1/signatures/trust-store/certificates", limit=200)
        crls = await api.get("/v1/signatures/trust-store/crls", limit=200)
    return render(
        request,
        "admin_truststore.html",
        session=session,
        summary=summary,
        certificates=certificates,
        crls=crls,
    )


@router.get("/admin/audit", response_class=HTMLResponse)
async def audit(request: Request) -> Response:
    """The audit trail, newest first, filtered by agency, actor or action (auditors)."""
    session = signed_in(request, Scope.AUDIT)
    filters = {k: request.query_params.get(k, "")[:64] for k in ("agency", "actor", "action", "cursor")}
    async with api_for(request, session) as api:
        page = await api.get("/v1/audit/entries", limit=100, **filters)
    return render(request, "admin_audit.html", session=session, page=page, filters=filters)


# -- leaders -----------------------------------------------------------------------------------

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_TABLES = ("summary", "levels", "months", "agencies")


def _selection(request: Request) -> dict[str, str]:
    """The statistics' selection from the query: months ``from``/``to`` (YYYY-MM), ``root`` agency."""
    chosen: dict[str, str] = {}
    for name in ("from", "to"):
        value = request.query_params.get(name, "")
        if _MONTH.match(value):
            chosen[name] = value
    root = request.query_params.get("root", "").strip().upper()[:30]
    if root:
        chosen["root"] = root
    return chosen


def figure(rows: list[tuple[str, float]], *, title: str) -> Markup:
    """A chart with its title shown above it."""
    return Markup("<figure><figcaption>{}</figcaption>{}</figure>").format(title, bar_chart(rows, title=title))


@router.get("/statistics", response_class=HTMLResponse)
async def statistics(request: Request) -> Response:
    """Directive 15's figures: the summary, by administrative level, by month, the slowest
    agencies, each as a chart and as a table of the same numbers."""
    session = signed_in(request, Scope.STATS, ADMIN)
    chosen = _selection(request)
    async with api_for(request, session) as api:
        summary = await api.get("/v1/statistics/summary", **chosen)
        levels = await api.get("/v1/statistics/levels", **chosen)
        months = await api.get("/v1/statistics/months", **chosen)
        slowest = await api.get("/v1/statistics/agencies", sort="slowest", limit=10, **chosen)
    t = translator(language_of(request))
    slow_rows = [r for r in slowest["rows"] if r.get("p90_hours_to_01") is not None]
    charts = {
        "levels": figure(
            [(r.get("level_name") or r["level"], r["documents_sent"]) for r in levels["rows"]],
            title=f"{t('by_level')}: {t('documents_sent')}",
        ),
        "adoption": figure(
            [(r.get("level_name") or r["level"], 100 * (r.get("adoption_share") or 0)) for r in levels["rows"]],
            title=f"{t('by_level')}: {t('adoption')} (%)",
        ),
        "months": figure(
            [(r["month"], r["documents_sent"]) for r in months["rows"]], title=f"{t('by_month')}: {t('documents_sent')}"
        ),
        "slowest": figure(
            [(f"{r['agency_code']} {r.get('agency_name') or ''}", r["p90_hours_to_01"]) for r in slow_rows],
            title=f"{t('slowest')}: p90 01 (h)",
        ),
    }
    query = "&".join(f"{k}={v}" for k, v in chosen.items())
    return render(
        request,
        "statistics.html",
        session=session,
        summary=summary["rows"][0] if summary["rows"] else None,
        selection=summary,
        levels=levels["rows"],
        months=months["rows"],
        slowest=slow_rows,
        charts=charts,
        chosen=chosen,
        query=query,
    )


@router.get("/statistics/{table}.{extension}")
async def statistics_export(table: str, extension: str, request: Request) -> Response:
    """A statistics table as the API exports it (CSV or XLSX), to paste into a report."""
    session = signed_in(request, Scope.STATS, ADMIN)
    if table not in _TABLES or extension not in ("csv", "xlsx"):
        return render(request, "error.html", message_key="not_found", status_code=404)
    params = {**_selection(request), "format": extension}
    if table == "agencies":
        params["sort"] = "slowest"
    async with api_for(request, session) as api:
        answer = await api.call("GET", f"/v1/statistics/{table}/export", params=params)
    keep = ("content-type", "content-disposition")
    return Response(answer.content, headers={k: v for k, v in answer.headers.items() if k.lower() in keep})


# -- more of the admin's changes ---------------------------------------------------------------


@router.post("/admin/agencies/{code}/status")
async def agency_status(code: str, request: Request) -> Response:
    """Suspend, reactivate or retire an agency (retiring names its successor)."""
    session, form = await posted(request, ADMIN)
    body: dict[str, Any] = {"status": str(form.get("status") or "")}
    for field in ("reason", "successor_code"):
        if value := str(form.get(field) or "").strip():
            body[field] = value.upper() if field == "successor_code" else value
    async with api_for(request, session) as api:
        await api.json("POST", f"/v1/agencies/{code}/status", json=body)
    return redirect(f"/console/admin/agencies/{code}", flash="saved")


@router.post("/admin/agencies/{code}/endpoint", response_class=HTMLResponse)
async def endpoint(code: str, request: Request) -> Response:
    """Set how the agency receives: pull, a webhook (its signing secret shown once) or a bus queue."""
    session, form = await posted(request, ADMIN)
    body: dict[str, Any] = {"mode": str(form.get("mode") or "")}
    for field in ("webhook_url", "amqp_queue"):
        if value := str(form.get(field) or "").strip():
            body[field] = value
    async with api_for(request, session) as api:
        changed = await api.json("PUT", f"/v1/agencies/{code}/endpoint", json=body)
    if changed.get("webhook_secret"):
        rows = [
            ("webhook_url", changed["webhook_url"], "webhook-url"),
            ("secret", changed["webhook_secret"], "webhook-secret"),
        ]
        return await _agency_page(request, code, secret_rows=rows, secret_key="webhook_secret_shown")
    return redirect(f"/console/admin/agencies/{code}", flash="saved")


@router.post("/admin/users/{username}")
async def change_user(username: str, request: Request) -> Response:
    """Disable or enable a console user, or give it a new password."""
    session, form = await posted(request, ADMIN)
    body: dict[str, Any] = {}
    if (status := str(form.get("status") or "")) in ("active", "disabled"):
        body["status"] = status
    if password := str(form.get("password") or ""):
        body["password"] = password
    async with api_for(request, session) as api:
        await api.json("PATCH", f"/v1/users/{username}", json=body)
    return redirect(f"/console/admin/agencies/{form.get('agency') or ''}", flash="saved")


@router.post("/admin/agencies/{code}/certificates")
async def add_certificate(code: str, request: Request) -> Response:
    """Register a certificate of the agency: its seal's or a signer's (PEM)."""
    session, form = await posted(request, ADMIN)
    body = {"kind": str(form.get("kind") or "seal"), "certificate": str(form.get("certificate") or "")}
    async with api_for(request, session) as api:
        await api.json("POST", f"/v1/agencies/{code}/certificates", json=body)
    return redirect(f"/console/admin/agencies/{code}", flash="saved")


@router.get("/admin/hierarchy", response_class=HTMLResponse)
async def hierarchy(request: Request) -> Response:
    """The whole directory as a tree: each agency under its parent."""
    session = signed_in(request, ADMIN)
    async with api_for(request, session) as api:
        tree = await api.get("/v1/agencies/tree")
    return render(request, "admin_hierarchy.html", session=session, tree=tree)


_CODES = re.compile(r"[\s,;]+")


@router.post("/admin/groups", response_class=HTMLResponse)
async def create_group(request: Request) -> Response:
    """Create a recipient group: static members by code and/or one rule (a level, under an agency)."""
    session, form = await posted(request, ADMIN)
    body: dict[str, Any] = {
        "name": str(form.get("name") or "").strip(),
        "title": str(form.get("title") or ""),
        "members": [c.upper() for c in _CODES.split(str(form.get("members") or "")) if c],
        "rules": [],
    }
    rule = {k: v for k in ("level", "under") if (v := str(form.get(f"rule_{k}") or "").strip())}
    if rule:
        body["rules"].append({**rule, **({"under": rule["under"].upper()} if "under" in rule else {})})
    async with api_for(request, session) as api:
        try:
            await api.json("POST", "/v1/groups", json=body)
        except ConsoleApiError as exc:
            found = await api.get("/v1/groups")
            levels = await api.get("/v1/agency-levels")
            return render(
                request,
                "admin_groups.html",
                session=session,
                groups=found,
                levels=levels,
                error=exc.detail,
                status_code=exc.status if exc.status < 500 else 502,
            )
    return redirect("/console/admin/groups", flash="saved")


@router.post("/admin/truststore", response_class=HTMLResponse)
async def trust(request: Request) -> Response:
    """Add a root or intermediate CA certificate (PEM) to the trust store."""
    session, form = await posted(request, ADMIN)
    body = {"kind": str(form.get("kind") or "root"), "certificate": str(form.get("certificate") or "")}
    async with api_for(request, session) as api:
        await api.json("POST", "/v1/signatures/trust-store/certificates", json=body)
    return redirect("/console/admin/truststore", flash="saved")
