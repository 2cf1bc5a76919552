"""Dispatch: choose a pool for a request, call it, retry once elsewhere if the call fails.

The policy (serve.dispatch) decides from live pool state; this module carries the decision
out. A call "fails" when the engine raises or answers 503 before any output: then the
request is retried once, on the next pool of the decision's order (never the pool that just
failed when another exists; with a single pool, Ray Serve routes the retry to another of its
replicas when one is ready). A failure after output has started cannot be retried: the
client already has part of an answer.

Every call holds a lease on its pool's in-flight count, released exactly once on every exit
path (finished, failed, cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from serve.dispatch.types import Decision, DispatchPolicy, RequestEstimate
from serve.engine.protocol import Endpoint, EngineReply, ErrorBody
from serve.router.errors import FrugalError, engine_unavailable
from serve.router.pools import PoolMonitor, PoolRuntime

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # the first call and one retry


class Lease:
    """One request's place in a pool's in-flight count."""

    def __init__(self, pool: PoolRuntime) -> None:
        self.pool = pool
        self.released = False
        pool.local_in_flight += 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.pool.local_in_flight -= 1


@dataclass
class Dispatched:
    """A call under way: its first reply is in hand, the rest streams from ``replies``."""

    pool: PoolRuntime
    decision: Decision
    first: EngineReply
    replies: AsyncIterator[EngineReply]
    lease: Lease
    attempts: int
    retried_from: str | None = None


def _retryable(reply: EngineReply) -> bool:
    return isinstance(reply, ErrorBody) and reply.status_code == 503


class Dispatcher:
    def __init__(self, monitor: PoolMonitor, policy: DispatchPolicy, pools_by_model: dict[str, list[str]]) -> None:
        self.monitor = monitor
        self.policy = policy
        self.pools_by_model = pools_by_model

    def decide(self, estimate: RequestEstimate) -> Decision:
        states = self.monitor.states(self.pools_by_model[estimate.model])
        decision = self.policy.choose(estimate, states)
        for name in decision.wake:
            self.monitor.wake(name)
        return decision

    def _order(self, decision: Decision, model: str) -> list[str]:
        """The decision's order, then any other pool of the model (last resort for retries)."""
        order = list(dict.fromkeys(decision.pools))
        order += [p for p in self.pools_by_model[model] if p not in order]
        return order

    async def call(
        self, estimate: RequestEstimate, decision: Decision, endpoint: Endpoint, request: Any, request_id: str
    ) -> Dispatched:
        """Start the request on the decision's first pool; on failure before output, retry
        once on the next. Raises ``FrugalError`` (the engine's own error, or 503)."""
        order = self._order(decision, estimate.model)
        tried: list[str] = []
        last_error: FrugalError | None = None
        for attempt in range(MAX_ATTEMPTS):
            untried = [p for p in order if p not in tried]
            name = untried[0] if untried else tried[-1]
            pool = self.monitor.pools[name]
            tried.append(name)
            lease = Lease(pool)
            # A retry gets a fresh engine request id: the failed one may still be known there.
            attempt_id = request_id if attempt == 0 else f"{request_id}-r{attempt}"
            replies = pool.client.generate(endpoint, request, attempt_id)
            try:
                first = await anext(replies)
            except StopAsyncIteration:
                lease.release()
                last_error = engine_unavailable("the engine returned nothing")
            except Exception as exc:
                lease.release()
                logger.warning("pool %s failed request %s: %r", name, request_id, exc)
                self.monitor.mark_failed(name)
                last_error = engine_unavailable(type(exc).__name__)
            except BaseException:  # cancelled while waiting for the engine
                lease.release()
                await replies.aclose()
                raise
            else:
                if not _retryable(first):
                    return Dispatched(pool, decision, first, replies, lease, attempt + 1, tried[0] if attempt else None)
                lease.release()
                await replies.aclose()
                self.monitor.mark_failed(name)
                last_error = FrugalError.from_body(first)
                last_error.headers = {"Retry-After": "1"}
            if attempt + 1 < MAX_ATTEMPTS:
                logger.info("retrying request %s after pool %s failed", request_id, name)
        assert last_error is not None
        raise last_error
