"""Where the cost report reads the ledger: the embedded default's JSONL file or the Redis
stream, through the ledger stores themselves (``serve.tenants``), so the report reads exactly
what the router wrote."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from serve.tenants.ledger_record import LedgerRecord
from serve.tenants.ledger_store import LocalLedgerStore


class RecordSource(Protocol):
    """The read side of a ``serve.tenants.ledger_store.LedgerStore``."""

    async def start(self) -> None: ...

    async def records(self, since_s: float, until_s: float, tenant_id: str | None = None) -> list[LedgerRecord]: ...

    async def close(self) -> None: ...


def period_bounds_s(start: date, end: date) -> tuple[float, float]:
    """[start 00:00 UTC, the day after end 00:00 UTC) as epoch seconds. ``ValueError`` if reversed."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    since = datetime.combine(start, datetime.min.time(), UTC)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
    return since.timestamp(), until.timestamp()


async def read_records(store: RecordSource, start: date, end: date) -> list[LedgerRecord]:
    """The records that finished on the days [start, end] (UTC), oldest first."""
    since_s, until_s = period_bounds_s(start, end)
    await store.start()
    try:
        records = await store.records(since_s, until_s)
    finally:
        await store.close()
    return sorted(records, key=lambda r: r.time_s)


def file_store(path: Path) -> LocalLedgerStore:
    """The JSONL ledger at ``path`` (``<tenants.local_state_dir>/<tenants.ledger.file_name>``).
    Raises ``FileNotFoundError`` naming it when absent."""
    if not path.is_file():
        raise FileNotFoundError(f"no ledger file at {path}")
    return LocalLedgerStore(path)


def redis_store(url: str, prefix: str, stream: str) -> RecordSource:
    """The Redis stream ledger (``tenants.redis_url``, ``tenants.redis_prefix``,
    ``tenants.ledger.stream``); no connection until the first read."""
    from serve.tenants.ledger_redis import RedisLedgerStore
    from serve.tenants.redis_client import build_redis

    return _ClosingStore(RedisLedgerStore(build_redis(url), prefix, stream))


class _ClosingStore:
    """A Redis ledger store that also closes its client (the store leaves that to its owner)."""

    def __init__(self, store: RecordSource) -> None:
        self.store = store

    async def start(self) -> None:
        await self.store.start()

    async def records(self, since_s: float, until_s: float, tenant_id: str | None = None) -> list[LedgerRecord]:
        return await self.store.records(since_s, until_s, tenant_id)

    async def close(self) -> None:
        await self.store.close()
        await self.store.redis.aclose()  # type: ignore[attr-defined]
