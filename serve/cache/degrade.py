"""Degrade instead of failing: a circuit breaker with rate-limited warnings.

After a backend failure the breaker stays open for ``retry_interval_s``: calls are skipped at
once (no timeout paid per request while Redis is down), each skip counted. The first call
after the interval tries the backend again; a success closes the breaker and logs that the
backend is back. Warnings are logged at most once per ``warning_interval_s`` per source,
with the number of events since the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from serve.cache.events import CacheEvents

logger = logging.getLogger(__name__)


class RateLimitedWarning:
    """Counts degraded events and logs at most one warning per interval."""

    def __init__(self, source: str, interval_s: float, events: CacheEvents, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.interval_s = interval_s
        self.events = events
        self.clock = clock
        self.num_unreported = 0
        self._last_at: float | None = None

    def degraded(self, operation: str, detail: str) -> None:
        self.events.on_degraded(operation)
        self.num_unreported += 1
        now = self.clock()
        if self._last_at is None or now - self._last_at >= self.interval_s:
            logger.warning(
                "cache %s degraded, bypassing (%s: %s; %d degraded operations since the last warning)",
                self.source, operation, detail, self.num_unreported,
            )
            self._last_at = now
            self.num_unreported = 0


class Breaker:
    def __init__(
        self,
        backend: str,
        retry_interval_s: float,
        warning_interval_s: float,
        events: CacheEvents,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.retry_interval_s = retry_interval_s
        self.clock = clock
        self.failing = False
        self._open_until = 0.0
        self._warning = RateLimitedWarning(backend, warning_interval_s, events, clock)

    def allows(self, operation: str) -> bool:
        """Whether to call the backend now; a refused call is counted as degraded."""
        if self.clock() >= self._open_until:
            return True
        self._warning.degraded(operation, "skipped while the backend is unavailable")
        return False

    def failed(self, operation: str, error: str) -> None:
        self.failing = True
        self._open_until = self.clock() + self.retry_interval_s
        self._warning.degraded(operation, error)

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            logger.warning("cache %s is reachable again", self.backend)
