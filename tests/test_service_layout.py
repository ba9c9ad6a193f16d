"""The house rules, checked on the source (docs/development.md, "The shape of a service"):

- every service has the same rooms, and every capability package the same four files;
- all SQL lives in repositories: routers, services and consumers execute none;
- routers get their services through typed dependencies and never build one;
- services (the rules) speak no FastAPI; nothing but shared/runtime.py reads ``app.state``;
- shared/ is a library: it imports no service and not the gateway.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("registry", "exchange", "signature", "archive")
ROOMS = ("app.py", "config.py", "errors.py", "events.py", "models.py", "dependencies.py", "migrations/env.py")
CAPABILITY_FILES = ("router.py", "schemas.py", "service.py", "repository.py")
SESSION_VERBS = {
    "execute",
    "scalar",
    "scalars",
    "get",
    "add",
    "add_all",
    "delete",
    "merge",
    "refresh",
    "flush",
    "stream",
    "commit",
    "rollback",
}
SQL_FREE = ("router.py", "service.py", "consumers.py", "dependencies.py")
# Libraries inside a service: no routes, no tables, so none of a capability's four files
LIBRARIES = ("services/exchange/edxml",)


def capabilities(service: str) -> list[Path]:
    base = ROOT / "services" / service
    return sorted(
        p
        for p in base.iterdir()
        if (p / "__init__.py").exists() and p.name != "migrations" and _rel(p) not in LIBRARIES
    )


def python_files(*parts: str) -> Iterator[Path]:
    for path in sorted((ROOT.joinpath(*parts)).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_rooms(service: str) -> None:
    base = ROOT / "services" / service
    rooms = ROOMS if capabilities(service) else tuple(r for r in ROOMS if r != "dependencies.py")
    missing = [room for room in rooms if not (base / room).exists()]
    assert not missing, f"services/{service} lacks {missing} (see docs/development.md, 'Adding a service')"
    for package in capabilities(service):
        absent = [name for name in CAPABILITY_FILES if not (package / name).exists()]
        assert not absent, f"{_rel(package)} lacks {absent}: a capability has router, schemas, service, repository"


def _sql_uses(module: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            if node.module not in ("sqlalchemy.ext.asyncio", "sqlalchemy.exc"):
                found.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlalchemy" for a in node.names):
            found.append(f"line {node.lineno}: import sqlalchemy")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SESSION_VERBS:
            target = node.func.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name == "session":
                found.append(f"line {node.lineno}: session.{node.func.attr}(…)")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_routers_services_and_consumers_execute_no_sql(service: str) -> None:
    offenders = {
        _rel(path): uses
        for path in python_files("services", service)
        if path.name in SQL_FREE and (uses := _sql_uses(tree(path)))
    }
    assert not offenders, f"SQL belongs in repositories: {offenders}"


@pytest.mark.parametrize("service", SERVICES)
def test_routers_never_build_a_service_or_a_repository(service: str) -> None:
    offenders = []
    for path in python_files("services", service):
        if path.name != "router.py":
            continue
        for node in ast.walk(tree(path)):
            called = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ""
            if called.endswith(("Service", "Repository")):
                offenders.append(f"{_rel(path)}:{node.lineno} builds {called}")
    assert not offenders, f"routes get their services through typed dependencies: {offenders}"


@pytest.mark.parametrize("service", SERVICES)
def test_services_speak_no_fastapi(service: str) -> None:
    offenders = []
    for path in python_files("services", service):
        if path.name not in ("service.py", "repository.py", "consumers.py"):
            continue
        for node in ast.walk(tree(path)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any((m or "").split(".")[0] in ("fastapi", "starlette") for m in [module, *names]):
                offenders.append(f"{_rel(path)}:{node.lineno}")
    assert not offenders, f"services take plain values and streams, not FastAPI objects: {offenders}"


def test_nothing_reads_app_state_but_the_typed_accessor() -> None:
    offenders = []
    for part in ("services", "gateway", "shared"):
        for path in python_files(part):
            if _rel(path) == "shared/runtime.py":
                continue
            for node in ast.walk(tree(path)):
                if isinstance(node, ast.Attribute) and node.attr == "state":
                    offenders.append(f"{_rel(path)}:{node.lineno}")
    assert not offenders, f"reach the runtime with shared.runtime.runtime_of / app_runtime: {offenders}"


def test_shared_imports_no_service_and_not_the_gateway() -> None:
    offenders = []
    for path in python_files("shared"):
        for node in ast.walk(tree(path)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                if module.split(".")[0] in ("services", "gateway"):
                    offenders.append(f"{_rel(path)}:{node.lineno} imports {module}")
    assert not offenders, f"shared/ is a library with no domain knowledge: {offenders}"


def test_the_checks_catch_what_they_look_for() -> None:
    bad = ast.parse(
        "from sqlalchemy import select\n"
        "async def f(self, session):\n"
        "    await self.session.execute(select(1))\n"
        "    await session.get(X, 1)\n"
    )
    assert len(_sql_uses(bad)) == 3
    assert _sql_uses(ast.parse("from sqlalchemy.ext.asyncio import AsyncSession\nx = repo.get(1)\n")) == []


def _sync_dependencies(app: object) -> list[str]:
    """The plain (not async) functions among an app's route dependencies: FastAPI runs each in a
    worker thread, a thread hop per request for what is a constructor."""
    import inspect

    from fastapi.routing import APIRoute

    found: set[str] = set()

    def walk(dependant: object) -> None:
        call = getattr(dependant, "call", None)
        if call is not None:
            target = call if inspect.isfunction(call) or inspect.ismethod(call) else getattr(call, "__call__", call)  # noqa: B004
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                found.add(f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', call)}")
        for sub in getattr(dependant, "dependencies", []):
            walk(sub)

    def routes(router: object) -> Iterator[APIRoute]:
        for route in getattr(router, "routes", []):
            if isinstance(route, APIRoute):
                yield route
            elif (included := getattr(route, "original_router", None)) is not None:  # include_router
                yield from routes(included)

    for route in routes(app):
        for sub in route.dependant.dependencies:
            walk(sub)
    return sorted(found)


def test_route_dependencies_are_coroutines_so_no_request_hops_to_a_thread() -> None:
    from gateway.app import create_app as gateway_app
    from services.runtime import service_factories
    from services.settings import Settings

    settings = Settings()
    apps = [factory(settings) for factory in service_factories().values()] + [gateway_app(settings)]
    offenders = [name for app in apps for name in _sync_dependencies(app)]
    assert offenders == [], f"make these dependencies `async def`: {offenders}"


def test_the_dependency_check_finds_a_plain_function() -> None:
    from fastapi import Depends, FastAPI

    def plain() -> int:
        return 1

    async def coroutine() -> int:
        return 2

    app = FastAPI()

    # defaults, not Annotated: this module's postponed annotations could not see the local functions
    @app.get("/x")
    async def route(a: int = Depends(plain), b: int = Depends(coroutine)) -> int:
        return a + b

    assert [name.rsplit(".", 1)[-1] for name in _sync_dependencies(app)] == ["plain"]
