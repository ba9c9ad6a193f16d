"""A circuit breaker per service behind the gateway.

Closed: every request goes through; ``failures`` in a row (the service unreachable, not answering
within the route's timeout, breaking its answer off) open it. Open: the gateway answers
``503 circuit_open`` at once, with ``Retry-After`` the rest of the cool-down, without calling the
service. After the cool-down it is half-open: one request goes through as a probe while the others
still get the 503; the probe's success closes the circuit, its failure opens it for another
cool-down. An answer of the service, whatever its status, is a success: a service that answers
503 itself is up and says so.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from types import TracebackType

from gateway.errors import CircuitOpenError

log = logging.getLogger("lienthong.gateway.circuit")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}


class Circuit:
    """The breaker of one service."""

    def __init__(
        self,
        name: str,
        *,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.on_change = on_change
        self.on_failure = on_failure
        self.status = CLOSED
        self.failures = 0  # in a row
        self.opened_at = 0.0
        self.probing = False

    def _set(self, status: str) -> None:
        if status != self.status:
            log.warning("circuit of the %s service: %s -> %s", self.name, self.status, status)
            self.status = status
            if self.on_change is not None:
                self.on_change(self.name, status)

    def call(self) -> Call:
        """Admit one request to the service, or raise ``CircuitOpenError``."""
        if self.status == OPEN:
            left = self.opened_at + self.cooldown - self.clock()
            if left > 0:
                raise self._refusal(left)
            self._set(HALF_OPEN)
        if self.status == HALF_OPEN:
            if self.probing:
                raise self._refusal(self.cooldown)
            self.probing = True
            return Call(self, probe=True)
        return Call(self, probe=False)

    def _refusal(self, seconds: float) -> CircuitOpenError:
        wait = max(1, math.ceil(seconds))
        return CircuitOpenError(
            f"The {self.name} service failed {self.threshold} times in a row; the gateway tries it again in {wait} s",
            retry_after=wait,
            service=self.name,
        )

    def succeeded(self) -> None:
        self.failures = 0
        self._set(CLOSED)

    def failed(self, reason: str = "failed") -> None:
        if self.on_failure is not None:
            self.on_failure(self.name, reason)
        self.failures += 1
        if self.status == HALF_OPEN or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._set(OPEN)


class Call:
    """One request through a circuit: say how it went with :meth:`succeeded` or :meth:`failed`;
    :meth:`close` (or the end of a ``with`` block) lets another probe go if this one said nothing
    (the caller went away, the path was refused before the service was called)."""

    __slots__ = ("circuit", "done", "probe")

    def __init__(self, circuit: Circuit, *, probe: bool) -> None:
        self.circuit = circuit
        self.probe = probe
        self.done = False

    def succeeded(self) -> None:
        if not self.done:
            self.done = True
            self._release()
            self.circuit.succeeded()

    def failed(self, reason: str = "failed") -> None:
        if not self.done:
            self.done = True
            self._release()
            self.circuit.failed(reason)

    def close(self) -> None:
        if not self.done:
            self.done = True
            self._release()

    def _release(self) -> None:
        if self.probe:
            self.circuit.probing = False

    def __enter__(self) -> Call:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
