"""One exception tree for every service, rendered as RFC 9457 ``application/problem+json``.

    LienThongError                 500 internal (never raised for bad input)
    ├── BadRequestError            400 bad_request
    │   └── RequestValidationProblem 422 validation_failed  (FastAPI/pydantic validation)
    ├── UnprocessableError         422 unprocessable
    ├── UnauthorizedError          401 unauthorized
    ├── ForbiddenError             403 forbidden
    │   └── AgencyInactiveError    403 agency_inactive
    ├── NotFoundError              404 not_found
    ├── ConflictError              409 conflict
    ├── PayloadTooLargeError       413 payload_too_large
    │   └── RequestTooLargeError   413 request_too_large  (the body past its route's limit)
    ├── UnsupportedMediaTypeError  415 unsupported_media_type
    ├── TooManyRequestsError       429 too_many_requests (with Retry-After)
    │   └── AuthThrottledError     429 auth_throttled     (too many failed token requests)
    ├── HeadersTooLargeError       431 headers_too_large
    └── DependencyUnavailableError 503 dependency_unavailable
        └── DatabaseBusyError      503 database_busy      (a lock not granted in time; with Retry-After)

Errors of the cross-service contract live here too: ``AgencyInactiveError`` (403
``agency_inactive``) is what the registry, the gateway and the exchange all answer when an agency
that is suspended or retired tries to act.

Services subclass these with their own stable ``code`` (``agency_not_found``,
``delivery_transition_invalid`` …). The ``code`` is the contract: clients branch on it, never on
the human ``detail``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("lienthong.errors")


class LienThongError(Exception):
    """Base of every error a service renders as problem+json."""

    status: int = 500
    code: str = "internal"
    title: str = "Internal error"

    retry_after: int | None = None
    """Seconds after which trying again may succeed (sent as ``Retry-After``)."""

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        retry_after = extra.pop("retry_after", None)
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        if retry_after is not None:
            self.retry_after = retry_after

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Return the RFC 9457 body of this error."""
        body: dict[str, Any] = {
            "type": f"https://lienthong.gov.vn/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequestError(LienThongError):
    status, code, title = 400, "bad_request", "Bad request"


class RequestValidationProblem(BadRequestError):
    status, code, title = 422, "validation_failed", "The request is not valid"


class UnprocessableError(LienThongError):
    status, code, title = 422, "unprocessable", "The request is well-formed but cannot be processed"


class UnauthorizedError(LienThongError):
    status, code, title = 401, "unauthorized", "Authentication required"


class ForbiddenError(LienThongError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFoundError(LienThongError):
    status, code, title = 404, "not_found", "Not found"


class ConflictError(LienThongError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLargeError(LienThongError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class RequestTooLargeError(PayloadTooLargeError):
    code, title = "request_too_large", "The request is larger than this route accepts"


class TooManyRequestsError(LienThongError):
    status, code, title = 429, "too_many_requests", "Too many requests"
    retry_after = 1


class AuthThrottledError(TooManyRequestsError):
    code, title = "auth_throttled", "Too many failed authentications; wait before trying again"


class HeadersTooLargeError(LienThongError):
    status, code, title = 431, "headers_too_large", "The request headers are too large"


class UnsupportedMediaTypeError(LienThongError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class DependencyUnavailableError(LienThongError):
    status, code, title = 503, "dependency_unavailable", "A dependency is unavailable"


class DatabaseBusyError(DependencyUnavailableError):
    code, title = "database_busy", "The database is busy; try again shortly"
    retry_after = 2


class DatabaseConnectionLostError(DependencyUnavailableError):
    code, title = "database_connection_lost", "The connection to the database was lost; try again"
    retry_after = 1


class AgencyInactiveError(ForbiddenError):
    """An agency that is suspended or retired tried to act (get a token, call the API, send)."""

    code, title = "agency_inactive", "The agency is not active"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "headers_too_large",
}


class TextInvalidError(BadRequestError):
    code, title = "text_invalid", "Text that is not valid Unicode"


# PostgreSQL: character_not_in_repertoire (a NUL byte), untranslatable_character
_TEXT_SQLSTATES = ("22021", "22P05")


def _sqlstate(exc: BaseException) -> str | None:
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(getattr(current, "orig", None), "sqlstate", None)
        if isinstance(state, str):
            return state
        current = current.__cause__ or current.__context__
    return None


# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available, query_canceled
# (statement_timeout / lock_timeout)
_BUSY_SQLSTATES = ("40001", "40P01", "55P03", "57014")
_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")


def is_database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the database did not grant a lock in time (SQLite "database is
    locked", PostgreSQL lock timeouts, deadlocks and serialization failures): trying again helps."""
    if _sqlstate(exc) in _BUSY_SQLSTATES:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(message in str(current).lower() for message in _BUSY_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def problem_response(error: LienThongError, request: Request, headers: dict[str, str] | None = None) -> JSONResponse:
    """Render an error as a problem+json response."""
    headers = dict(headers or {})
    if error.retry_after is not None:
        headers.setdefault("Retry-After", str(error.retry_after))
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        error.to_problem(instance=request.url.path),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as problem+json, including framework and unexpected ones."""

    async def on_lienthong_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LienThongError)
        if exc.status >= 500:
            log.error("request failed: %s", exc.detail, exc_info=exc)
        return problem_response(exc, request)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        problem = RequestValidationProblem("The request does not match the schema: see errors", errors=errors)
        return problem_response(problem, request)

    async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = LienThongError(str(exc.detail))
        error.status = exc.status_code
        error.code = _STATUS_CODES.get(exc.status_code, "http_error")
        error.title = str(exc.detail)
        return problem_response(error, request, headers=dict(exc.headers or {}))

    async def on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
        # A uniqueness check passed, then a concurrent request inserted the same key first.
        log.info("integrity error answered 409: %s", exc)
        return problem_response(
            ConflictError("A concurrent request changed the same data; read it again and retry"), request
        )

    async def on_operational_error(request: Request, exc: Exception) -> JSONResponse:
        if is_database_busy(exc):
            log.warning("database busy, answered 503: %s", exc)
            return problem_response(DatabaseBusyError("The database is busy; try again in a moment"), request)
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Input no handler foresaw: text that cannot be stored (lone UTF-16 surrogates in JSON
        # strings) or nesting deeper than the parser allows. The database refused the statement,
        # so nothing changed; the caller gets a 400, not a 500.
        if _caused_by(exc, UnicodeError) or _sqlstate(exc) in _TEXT_SQLSTATES:
            log.info("request refused: text not valid Unicode: %s", exc)
            return problem_response(TextInvalidError("The request holds text that is not valid Unicode"), request)
        if is_database_busy(exc):
            log.warning("database busy, answered 503: %s", exc)
            return problem_response(DatabaseBusyError("The database is busy; try again in a moment"), request)
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            # the database went away under the request (restarted, its backend killed): the connection
            # and the pool's older ones are replaced, a retry gets a new one (what was lost during a
            # COMMIT, or in a statement that was its own transaction, may have committed: a retry with
            # the same Idempotency-Key gets its answer)
            log.warning("database connection lost, answered 503: %s", exc)
            return problem_response(
                DatabaseConnectionLostError("The connection to the database was lost; try again in a moment"), request
            )
        if _caused_by(exc, RecursionError):
            log.info("request refused: nested too deeply")
            return problem_response(BadRequestError("The request is nested too deeply"), request)
        log.exception("unexpected error", exc_info=exc)
        return problem_response(LienThongError("An unexpected error occurred; it has been logged"), request)

    app.add_exception_handler(LienThongError, on_lienthong_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(IntegrityError, on_integrity_error)
    app.add_exception_handler(OperationalError, on_operational_error)
    # any other error of the database driver (PostgreSQL refusing a NUL byte: 400) is answered
    # here, inside the middleware, not by the last-resort handler, which answers and then raises
    # again (a traceback logged, and the request counted as failed, for a plain 400)
    app.add_exception_handler(DBAPIError, on_unexpected)
    app.add_exception_handler(Exception, on_unexpected)
