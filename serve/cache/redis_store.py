"""The shared store: Redis through redis-py's asyncio client.

Entries are strings with a millisecond TTL (``SET key value PX ttl``). A scope's vectors are
a Redis hash (a field per member, the entry key, holding the packed record, and
``GENERATION_FIELD``) plus a list ``<scope>:log`` of the members in the order they were
added. A reader's version is ``<generation>:<log length>``: one round trip (``HGET`` +
``LLEN``) tells it nothing changed, and new vectors cost ``LRANGE`` + ``HMGET`` of just those.
When the log outgrows ``LOG_COMPACTION_FACTOR`` times the scope's vector budget, the reader
that notices compacts the scope (drops expired and surplus vectors, starts a new generation,
empties the log) and every reader reloads it once. The hash's and log's TTLs are pushed
forward to their newest vector's; older vectors carry their own expiry, readers skip them once
expired and delete them on a full load. Plain Redis has no vector search, so similarity is
computed in process (``serve.cache.semantic``).

The client is built on first use (no I/O or event-loop binding at construction), with a
bounded blocking pool and socket timeouts, and one immediate retry on a broken connection
(a restarted server) but none on a timeout. Every Redis or socket error becomes
``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from serve.cache.store import UNKNOWN_VERSION, ScopeDelta, StoreUnavailable, VectorRecord, VectorRow

logger = logging.getLogger(__name__)

GENERATION_FIELD = b"~generation"  # members are store keys and never start with "~"
LOG_COMPACTION_FACTOR = 2
_RECORD_HEAD = struct.Struct("<dI")  # expires_at_s, length of the UTF-8 text; then text, float32s
T = TypeVar("T")


def pack_vector(record: VectorRecord) -> bytes:
    text = record.text.encode()
    vector = np.asarray(record.vector, dtype="<f4")
    return _RECORD_HEAD.pack(record.expires_at_s, len(text)) + text + vector.tobytes()


def unpack_vector(raw: bytes) -> tuple[str, np.ndarray, float]:
    """``(text, vector, expires_at_s)``; raises ``ValueError`` on a malformed record."""
    if len(raw) < _RECORD_HEAD.size:
        raise ValueError("short record")
    expires_at_s, text_len = _RECORD_HEAD.unpack_from(raw)
    start = _RECORD_HEAD.size + text_len
    if start > len(raw) or (len(raw) - start) % 4 or len(raw) == start:
        raise ValueError("bad record length")
    text = raw[_RECORD_HEAD.size : start].decode()
    return text, np.frombuffer(raw, dtype="<f4", offset=start).astype(np.float32), expires_at_s


def _new_generation() -> str:
    return secrets.token_hex(8)


def log_key(scope: str) -> str:
    return f"{scope}:log"


class RedisStore:
    """``CacheStore`` on Redis; see the module docstring."""

    def __init__(
        self,
        url: str,
        socket_timeout_s: float,
        max_connections: int,
        max_vectors_per_scope: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.socket_timeout_s = socket_timeout_s
        self.max_connections = max_connections
        self.max_vectors_per_scope = max_vectors_per_scope
        self.clock = clock
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError

            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.socket_timeout_s,  # waiting for a free connection
                socket_timeout=self.socket_timeout_s,
                socket_connect_timeout=self.socket_timeout_s,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            self._client = aioredis.Redis.from_pool(pool)
        return self._client

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        from redis.exceptions import RedisError

        try:
            return await op(self._redis())
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            raise StoreUnavailable(f"{type(e).__name__}: {e}") from e

    async def _transaction(self, queue: Callable[[Any], None], atomic: bool = True) -> list[Any]:
        """Run the queued commands in one round trip, in MULTI/EXEC when ``atomic``."""

        async def op(r: Any) -> list[Any]:
            async with r.pipeline(transaction=atomic) as pipe:
                queue(pipe)
                return await pipe.execute()

        return await self._call(op)

    async def get(self, key: str) -> bytes | None:
        return await self._call(lambda r: r.get(key))

    async def put(self, key: str, value: bytes, ttl_s: float, vector: VectorRecord | None = None) -> bool:
        ttl_ms = max(1, int(ttl_s * 1000))

        def queue(pipe: Any) -> None:
            pipe.set(key, value, px=ttl_ms)
            if vector is not None:
                log = log_key(vector.scope)
                pipe.hsetnx(vector.scope, GENERATION_FIELD, _new_generation())
                pipe.hset(vector.scope, key, pack_vector(vector))
                pipe.rpush(log, key)
                for name in (vector.scope, log):
                    pipe.pexpire(name, ttl_ms, nx=True)
                    pipe.pexpire(name, ttl_ms, gt=True)

        await self._transaction(queue)
        return True

    async def scope_changes(self, scope: str, known_version: str | None) -> ScopeDelta | None:
        log = log_key(scope)
        # Not atomic (cheaper): a compaction between the two reads can pair the old generation
        # with the new log; the reader then misses some vectors until its next check, which
        # sees the new generation and loads the scope in full, atomically.
        generation_raw, length = await self._transaction(lambda p: (p.hget(scope, GENERATION_FIELD), p.llen(log)), atomic=False)
        generation = (generation_raw or b"").decode()
        version = f"{generation}:{length}" if generation else ""
        if version == known_version:
            return None
        if not generation:
            return ScopeDelta("", True, ())
        if length > LOG_COMPACTION_FACTOR * self.max_vectors_per_scope:
            return await self._compact(scope)
        known_generation, _, position = (known_version or "").partition(":")
        if known_generation == generation and position.isdigit() and int(position) <= length:
            members: list[bytes] = await self._call(lambda r: r.lrange(log, int(position), length - 1))
            records: list[bytes | None] = await self._call(lambda r: r.hmget(scope, members)) if members else []
            rows, _ = self._rows(zip(members, records))
            return ScopeDelta(version, False, tuple(rows))
        raw, length = await self._transaction(lambda p: (p.hgetall(scope), p.llen(log)))
        generation = (raw.pop(GENERATION_FIELD, None) or b"").decode()
        rows, stale = self._rows(raw.items())
        if stale:
            # Expired or malformed vectors change no reader's answers (readers skip expired
            # rows): delete them without a new generation.
            await self._call(lambda r: r.hdel(scope, *stale))
        return ScopeDelta(f"{generation}:{length}" if generation else "", True, tuple(rows))

    async def _compact(self, scope: str) -> ScopeDelta:
        raw: dict[bytes, bytes] = await self._call(lambda r: r.hgetall(scope))
        raw.pop(GENERATION_FIELD, None)
        rows, stale = self._rows(raw.items())
        if len(rows) > self.max_vectors_per_scope:  # keep the vectors that live longest
            rows.sort(key=lambda row: row.expires_at_s)
            stale += [row.member.encode() for row in rows[: len(rows) - self.max_vectors_per_scope]]
            rows = rows[len(rows) - self.max_vectors_per_scope :]

        def queue(pipe: Any) -> None:
            if stale:
                pipe.hdel(scope, *stale)
            pipe.hset(scope, GENERATION_FIELD, _new_generation())
            pipe.delete(log_key(scope))

        await self._transaction(queue)
        # A vector added between the HGETALL and the new generation is in the hash but not in
        # these rows: hand out an unknown version, so this reader loads the scope again.
        return ScopeDelta(UNKNOWN_VERSION, True, tuple(rows))

    def _rows(self, items: Iterable[tuple[bytes, bytes | None]]) -> tuple[list[VectorRow], list[bytes]]:
        """Live rows of one dimension, and the members to delete (expired or malformed)."""
        now = self.clock()
        rows: list[VectorRow] = []
        stale: list[bytes] = []
        for member, record in items:
            if record is None:
                continue  # forgotten or compacted away after it was logged
            try:
                text, vector, expires_at_s = unpack_vector(record)
            except (ValueError, UnicodeDecodeError):
                logger.warning("dropping a malformed vector record %r", member)
                stale.append(member)
                continue
            if expires_at_s <= now or (rows and len(vector) != len(rows[0].vector)):
                stale.append(member)
            else:
                rows.append(VectorRow(member.decode(), text, vector, expires_at_s))
        return rows, stale

    async def forget(self, scope: str, members: list[str]) -> None:
        if members:
            await self._call(lambda r: r.hdel(scope, *members))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
