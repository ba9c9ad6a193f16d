"""The token endpoint under attack: argon2 runs off the event loop in a bounded pool, and failed
authentications slow down the client id and the address that fail, not everyone else."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from shared.ratelimit import AuthThrottle, FailureWindow
from tests.conftest import running_system
from tests.helpers import assert_problem


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of every argon2 verification."""
    calls: list[int] = []
    real = PasswordHasher.verify

    def verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append(threading.get_ident())
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    return calls


async def test_wrong_secrets_in_parallel_do_not_stall_other_requests(tmp_path: Path, argon2_calls: list[int]) -> None:
    limits = {"auth_failures_per_client": 1000, "auth_failures_per_address": 1000, "secret_verify_concurrency": 2}
    # a real argon2 cost for the attacked client's hash, so that each wrong secret takes a while
    auth = {"secret_hash_time_cost": 2, "secret_hash_memory_kib": 8 * 1024}
    async with running_system(tmp_path / "var", limits=limits, auth=auth) as api:
        victim = await api.agency_client()
        argon2_calls.clear()
        finished: list[str] = []

        async def wrong() -> None:
            response = await api.token(victim.client_id, "wrong-secret")
            assert_problem(response, 401, "invalid_client")
            finished.append("wrong")

        async def health() -> None:
            response = await api.http.get("/health")
            assert response.status_code == 200
            finished.append("health")

        batch = [asyncio.create_task(wrong()) for _ in range(20)]
        await asyncio.sleep(0)  # the batch is on its way first
        await asyncio.gather(health(), *batch)
        # the health check did not wait for the batch: it finished while most wrong secrets still queued
        assert finished.index("health") < 8, finished
        assert len(argon2_calls) >= 20
        assert threading.get_ident() not in argon2_calls  # never on the event loop's thread


async def test_failed_authentications_are_throttled_per_client_id(tmp_path: Path, argon2_calls: list[int]) -> None:
    limits = {"auth_failures_per_client": 3, "auth_failures_per_address": 50}
    async with running_system(tmp_path / "var", limits=limits) as api:
        attacked = await api.agency_client()
        other = await api.agency_client()
        for _ in range(3):
            assert_problem(await api.token(attacked.client_id, "guess"), 401, "invalid_client")
        before = len(argon2_calls)
        refused = await api.token(attacked.client_id, "guess")
        assert_problem(refused, 429, "auth_throttled")
        assert int(refused.headers["Retry-After"]) >= 1
        # even the right secret waits: the attacker cannot tell; and argon2 did not run at all
        assert_problem(await api.token(attacked.client_id, attacked.client_secret), 429, "auth_throttled")
        assert len(argon2_calls) == before
        # another client id from the same address still gets its token
        response = await api.token(other.client_id, other.client_secret)
        assert response.status_code == 200, response.text
        metrics = await api.http.get("/metrics")
        assert 'lienthong_auth_throttled_total{key="client",service="gateway"} 2.0' in metrics.text


async def test_failed_authentications_are_throttled_per_address(tmp_path: Path) -> None:
    limits = {"auth_failures_per_client": 100, "auth_failures_per_address": 4}
    async with running_system(tmp_path / "var", limits=limits) as api:
        good = await api.agency_client()
        for n in range(4):
            assert_problem(await api.token(f"no-such-client-{n}", "guess"), 401, "invalid_client")
        assert_problem(await api.token("yet-another", "guess"), 429, "auth_throttled")
        assert_problem(await api.token(good.client_id, good.client_secret), 429, "auth_throttled")


def test_a_success_is_forgiven_and_failures_leave_the_window() -> None:
    now = [0.0]
    window = FailureWindow(2, 10.0, clock=lambda: now[0])
    stamp = window.attempt("a")
    window.forgive("a", stamp)
    window.attempt("a")
    assert window.retry_after("a") is None
    window.attempt("a")
    assert window.retry_after("a") == pytest.approx(10.0)
    now[0] = 10.5
    assert window.retry_after("a") is None
    throttle = AuthThrottle(1, 5, 60)
    done = throttle.attempt("c", "1.2.3.4")
    done()
    assert throttle.refused("c", "1.2.3.4") is None
