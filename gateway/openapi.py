"""One OpenAPI document for the whole API: the gateway's own routes merged with each service's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.routes import service_for
from gateway.runtime import GatewayDep

router = APIRouter(include_in_schema=False)


async def _service_schema(client: httpx.AsyncClient) -> dict[str, Any] | None:
    try:
        response = await client.get("/openapi.json")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


async def merged_schema(app: FastAPI, clients: dict[str, httpx.AsyncClient]) -> dict[str, Any]:
    """Merge the public paths and schemas of every service into the gateway's document."""
    schema: dict[str, Any] = dict(app.openapi())
    schema["paths"] = dict(schema.get("paths", {}))
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    names = list(clients)
    results = await asyncio.gather(*(_service_schema(clients[name]) for name in names))
    missing = []
    for name, service_schema in zip(names, results, strict=True):
        if service_schema is None:
            missing.append(name)
            continue
        for path, item in service_schema.get("paths", {}).items():
            if service_for(path) == name:
                schema["paths"][path] = item
        for key, value in service_schema.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(key, value)
        for key, value in service_schema.get("components", {}).get("securitySchemes", {}).items():
            components.setdefault("securitySchemes", {}).setdefault(key, value)
    if missing:
        schema.setdefault("info", {})["x-services-unavailable"] = missing
    _document_problems(schema)
    return schema


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable, branch on it (never on `detail`).",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "examples": ["recipient_invalid", "delivery_transition_invalid"]},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "validation errors, when any"},
    },
    "additionalProperties": True,
}
COMMON_ERRORS = {
    "400": "Bad request",
    "401": "No valid access token",
    "403": "The token lacks the scope, or the agency may not do this",
    "404": "Not found, or not visible to the caller",
    "409": "Conflicts with the current state",
    "422": "The request does not validate",
    "429": "Too many requests from this client for this route class (rate_limited; see Retry-After)",
    "503": "A service is unavailable or too slow (dependency_unavailable, circuit_open; see Retry-After)",
}


def _document_problems(schema: dict[str, Any]) -> None:
    """Every error answer is problem+json: say so, with one Problem schema, on every /v1 operation."""
    schema["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete") or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                for status, description in COMMON_ERRORS.items():
                    responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)


@router.get("/openapi.json")
async def openapi_json(request: Request, gateway: GatewayDep) -> JSONResponse:
    """The one OpenAPI document of the whole API (merged from the services', kept once complete)."""
    cached = gateway.merged_openapi
    if cached is None:
        cached = await merged_schema(request.app, gateway.clients)
        if "x-services-unavailable" not in cached.get("info", {}):
            gateway.merged_openapi = cached
    return JSONResponse(cached)


@router.get("/docs")
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="LienThong API")
