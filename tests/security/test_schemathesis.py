"""schemathesis against the gateway's OpenAPI document, on both databases: for every operation a
bounded number of generated requests (valid ones, then ones that break the schema), each sent
with the token of a role the authorization matrix lets through (tests/security/test_authz_matrix.py),
and not one answer may be a server error (5xx) or disagree with the document (status code,
content type, body schema).

The system is served by a real HTTP server (uvicorn, in the test's event loop); hypothesis draws
the cases in a worker thread and sends them with schemathesis's own client, so what is checked is
what a client sees on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.roles import Role
from tests.conftest import running_system
from tests.helpers import Api, serving
from tests.security.test_authz_matrix import ANONYMOUS, CALLERS, OWN, RULES

EXAMPLES = {GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}  # per operation and database
# the suite's run is the same every time (derandomized); LIENTHONG_TEST_FUZZ_SCALE=20 explores
# twenty times as many cases, different ones each run
SCALE = int(os.environ.get("LIENTHONG_TEST_FUZZ_SCALE", "1"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FIXED: dict[tuple[str, str], dict[str, Any]] = {("GET", "/v1/feed"): {"query": {"wait": 0}}}  # no long poll
BOOTSTRAP = "bootstrap admin"  # registry:admin, audit:read and stats:read, no agency
SKIPPED = {("POST", "/v1/auth/token")}  # generated credentials are all wrong: 401, throttled after a few (429)


async def role_tokens(api: Api) -> dict[str, dict[str, str]]:
    """A client of each role for one agency, with a token; the bootstrap admin's too."""
    code = (await api.create_agency())["code"]
    tokens: dict[str, dict[str, str]] = {ANONYMOUS: {}}
    for role in (Role.AGENCY, Role.REGISTRY_ADMIN, Role.AUDITOR, Role.STATISTICS):
        created = await api.http.post(
            f"/v1/agencies/{code}/clients", json={"name": str(role), "role": role}, headers=await api.admin()
        )
        assert created.status_code == 201, created.text
        body = created.json()
        token = await api.token(body["client_id"], body["client_secret"])
        assert token.status_code == 200, token.text
        tokens[role] = {"Authorization": f"Bearer {token.json()['access_token']}"}
    tokens[BOOTSTRAP] = await api.admin()
    return tokens


def caller_for(method: str, path: str) -> str:
    """The first role the matrix lets through on the caller's own things (the most code runs); the
    bootstrap admin for an operation the matrix has no rule for yet (the matrix fails on it)."""
    rule = RULES.get((method, path))
    if rule is None:
        return BOOTSTRAP
    return next((str(caller) for caller in CALLERS if rule.expected(str(caller), OWN) < 400), BOOTSTRAP)


def checker(
    operation: str, base_url: str, session: requests.Session, headers: dict[str, str], found: list[str]
) -> Callable[[schemathesis.Case[Any]], None]:
    """The body of one operation's hypothesis test: send the case, check the answer, keep the first
    failure (raising would make hypothesis shrink it: time the suite has not)."""

    def check(case: schemathesis.Case[Any]) -> None:
        found.append("")  # a request sent
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:
            found.append(f"{operation}: {type(exc).__name__}: {str(exc)[:1500]}")

    return check


def fuzz(schema: Any, base_url: str, tokens: dict[str, dict[str, str]], failures: list[str]) -> int:
    """Run every operation's cases (in this worker thread); return how many requests were sent."""
    sent = 0
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in SKIPPED:
            continue
        for mode, examples in EXAMPLES.items():
            found: list[str] = []
            label = f"{key[0]} {key[1]} ({mode.value})"
            check = checker(label, base_url, session, tokens[caller_for(*key)], found)
            run: Callable[[], None] = given(case=operation.as_strategy(generation_mode=mode, **FIXED.get(key, {})))(
                check
            )
            settings = hypothesis.settings(
                max_examples=examples * SCALE,
                deadline=None,
                database=None,
                derandomize=SCALE == 1,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            )
            with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # no negative case for some operations
                settings(run)()
            sent += found.count("")
            failures.extend([f for f in found if f][:1])
    return sent


async def test_no_server_error_and_no_schema_violation(
    database_url: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_system(tmp_path / "var", database_url) as api:
        tokens = await role_tokens(api)
        document = (await api.http.get("/openapi.json")).json()
        assert "x-services-unavailable" not in document["info"]
        schema = schemathesis.openapi.from_dict(document)
        failures: list[str] = []
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert api.app is not None
            async with serving(api.app) as base_url:  # its lifespan is the test's
                sent = await asyncio.to_thread(fuzz, schema, base_url, tokens, failures)
            # a NUL byte: PostgreSQL refuses the statement (SQLite finds nothing); a 400, answered
            # once, never a 500 nor an error raised again after the answer
            lookup = await api.http.post("/v1/agencies/lookup", json={"codes": ["\x00"]}, headers=tokens[Role.AGENCY])
            errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert sent > 100
    assert not failures, f"{len(failures)} operations answered wrongly:\n\n" + "\n\n".join(failures)
    assert lookup.status_code == (400 if database_url else 200), lookup.text
    assert not errors, "errors logged while the cases ran:\n" + "\n".join(errors[:20])
