"""Recent observed latencies per pool, for dispatch to correct its predictions with.

Each pool keeps the last ``window_size`` observations (bounded memory); observations older
than ``max_age_s`` (if set) are ignored, so a pool's latency under last hour's load does not
stand for now. Percentiles are by linear interpolation between the closest ranks (numpy's
default).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

from serve.constants import DEFAULT_LATENCY_TARGET_PERCENTILE, DEFAULT_LATENCY_WINDOW_SIZE
from serve.dispatch.types import PoolState


class LatencyTracker:
    """A rolling window of (TTFT, TPOT) observations per pool. Not thread-safe: one per
    router replica, used from its event loop."""

    def __init__(
        self,
        window_size: int = DEFAULT_LATENCY_WINDOW_SIZE,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_size < 1:
            raise ValueError("window_size must be at least 1")
        self.window_size = window_size
        self.max_age_s = max_age_s
        self._clock = clock
        self._windows: dict[str, deque[tuple[float, float, float | None]]] = {}

    def observe(self, pool: str, ttft_ms: float, tpot_ms: float | None = None) -> None:
        """Record one finished request. ``tpot_ms`` is None when the request produced at most
        one token (no time between tokens to measure)."""
        window = self._windows.get(pool)
        if window is None:
            window = self._windows[pool] = deque(maxlen=self.window_size)
        window.append((self._clock(), ttft_ms, tpot_ms))

    def _recent(self, pool: str) -> list[tuple[float, float, float | None]]:
        window = self._windows.get(pool)
        if not window:
            return []
        if self.max_age_s is None:
            return list(window)
        oldest = self._clock() - self.max_age_s
        return [obs for obs in window if obs[0] >= oldest]

    def percentile(self, pool: str, p: float) -> tuple[float, float | None] | None:
        """(TTFT, TPOT) at percentile ``p`` (0-100) of the pool's recent observations; TPOT
        is None if no recent request measured one; None if the pool has no recent
        observation."""
        recent = self._recent(pool)
        if not recent:
            return None
        ttft = float(np.percentile([obs[1] for obs in recent], p))
        tpots = [obs[2] for obs in recent if obs[2] is not None]
        tpot = float(np.percentile(tpots, p)) if tpots else None
        return ttft, tpot

    def count(self, pool: str) -> int:
        """Recent observations of the pool."""
        return len(self._recent(pool))

    def annotate(
        self, pools: Iterable[PoolState], default_percentile: float = DEFAULT_LATENCY_TARGET_PERCENTILE
    ) -> None:
        """Set each pool's ``observed_ttft_ms`` / ``observed_tpot_ms`` to its recent
        latencies at its target's percentile (``default_percentile`` without a target), or
        None without observations."""
        for state in pools:
            p = state.target.percentile if state.target is not None else default_percentile
            observed = self.percentile(state.name, p)
            state.observed_ttft_ms, state.observed_tpot_ms = observed if observed is not None else (None, None)
