"""The Redis client the tenant stores share, and the errors that mean "store unavailable"."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from serve.constants import REDIS_MAX_CONNECTIONS, REDIS_POOL_WAIT_S, REDIS_SOCKET_TIMEOUT_S

# What a store call raises when Redis is down or slow: callers degrade on these (log, count).
STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

REDIS_RETRIES = 1


def build_redis(url: str) -> Redis:
    """A client for ``url`` with its own pool; no connection is made until the first command.

    A burst beyond ``REDIS_MAX_CONNECTIONS`` concurrent commands waits for a connection
    (up to ``REDIS_POOL_WAIT_S``) instead of failing. Short timeouts and one retry: a request
    waits at most a few socket timeouts on a Redis that is down, then the caller's degraded
    path takes over.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_POOL_WAIT_S,
        decode_responses=True,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), REDIS_RETRIES),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def describe(exc: BaseException) -> str:
    """A store error for a log line: its type and message."""
    return f"{type(exc).__name__}: {exc}"
