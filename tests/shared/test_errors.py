"""Every error a service returns is RFC 9457 problem+json, with a stable `code`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from shared.errors import (
    PROBLEM_JSON,
    ConflictError,
    LienThongError,
    NotFoundError,
    UnauthorizedError,
    install_error_handlers,
)

SECRET_MESSAGE = "password=hunter2 in the connection string"


class WidgetMissingError(NotFoundError):
    code, title = "widget_missing", "Widget not found"


class Widget(BaseModel):
    name: str = Field(min_length=1)
    count: int


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/widgets/{widget_id}")
    async def get_widget(widget_id: int) -> dict[str, int]:
        raise WidgetMissingError(f"No widget {widget_id}", widget_id=widget_id, hints=["check the id"])

    @app.post("/widgets")
    async def create_widget(widget: Widget) -> Widget:
        raise ConflictError()

    @app.get("/private")
    async def private() -> None:
        raise UnauthorizedError("Send a token")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_MESSAGE)

    @app.post("/race")
    async def race() -> None:
        raise IntegrityError("INSERT INTO agency (code) VALUES (?)", ("000.00.00.H41",), Exception("UNIQUE"))

    @app.get("/base")
    async def base() -> None:
        raise LienThongError("internal trouble")

    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: Starlette re-raises unexpected errors after answering 500.
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_service_error_renders_every_rfc9457_field(http: httpx.AsyncClient) -> None:
    response = await http.get("/widgets/42")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "https://lienthong.gov.vn/problems/widget-missing",
        "title": "Widget not found",
        "status": 404,
        "code": "widget_missing",
        "detail": "No widget 42",
        "instance": "/widgets/42",
        "widget_id": 42,
        "hints": ["check the id"],
    }


async def test_detail_defaults_to_title(http: httpx.AsyncClient) -> None:
    response = await http.post("/widgets", json={"name": "x", "count": 1})
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["title"], body["detail"]) == ("conflict", "Conflict", "Conflict")


async def test_unauthorized_asks_for_a_bearer_token(http: httpx.AsyncClient) -> None:
    response = await http.get("/private")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"


async def test_unexpected_exception_is_a_500_problem_without_its_message(http: httpx.AsyncClient) -> None:
    response = await http.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["code"] == "internal"
    assert body["status"] == 500
    assert body["instance"] == "/boom"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_integrity_error_is_a_409_conflict_without_the_sql(http: httpx.AsyncClient) -> None:
    response = await http.post("/race")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "conflict"
    assert "INSERT" not in response.text
    assert "000.00.00.H41" not in response.text


async def test_base_error_is_internal(http: httpx.AsyncClient) -> None:
    response = await http.get("/base")
    assert response.status_code == 500
    assert response.json()["code"] == "internal"


async def test_body_validation_error_is_422_validation_failed_with_errors(http: httpx.AsyncClient) -> None:
    response = await http.post("/widgets", json={"name": "", "count": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["code"] == "validation_failed"
    assert body["type"] == "https://lienthong.gov.vn/problems/validation-failed"
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "name"), ("body", "count")}
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])


async def test_path_validation_error_is_422(http: httpx.AsyncClient) -> None:
    response = await http.get("/widgets/not-a-number")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "widget_id"]


async def test_unknown_route_is_a_404_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "not_found"


async def test_wrong_method_is_a_405_problem(http: httpx.AsyncClient) -> None:
    response = await http.delete("/widgets/1")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "method_not_allowed"


async def test_wrong_method_names_the_allowed_methods(http: httpx.AsyncClient) -> None:
    response = await http.delete("/widgets/1")
    assert response.headers.get("allow") == "GET"
