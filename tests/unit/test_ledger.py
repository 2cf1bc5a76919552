"""serve/tenants/ledger*.py and usage.py: exactly-once records, outage buffering, aggregates."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serve.tenants.ledger import Ledger, LedgerRecord
from serve.tenants.ledger_redis import RedisLedgerStore
from serve.tenants.ledger_store import LocalLedgerStore
from serve.tenants.redis_client import build_redis
from serve.tenants.units import day_of, to_nano_usd
from serve.tenants.usage import METRICS, group
from serve.bench.redis_server import RedisServer

NOW_S = 1_750_000_000.0  # 2025-06-15


def make_record(i: int, tenant: str = "acme", model: str = "m1", **fields: object) -> LedgerRecord:
    rng = random.Random(i)
    values: dict[str, object] = {
        "request_id": f"req-{i}",
        "time_s": NOW_S + i,
        "tenant_id": tenant,
        "key_id": "0123456789ab",
        "model": model,
        "pool": "cpu",
        "prompt_tokens": rng.randint(1, 500),
        "completion_tokens": rng.randint(0, 500),
        "cache_hit": rng.random() < 0.2,
        "cost_usd": rng.randint(0, 10**6) / 1e9,
        "avoided_cost_usd": rng.randint(0, 10**5) / 1e9,
        "billed_usd": rng.randint(0, 10**7) / 1e9,
        "latency_ms": rng.uniform(1, 2000),
        "status": rng.choice(["ok", "ok", "ok", "failed", "cancelled"]),
    }
    values.update(fields)
    return LedgerRecord.model_validate(values)


def expected_sums(records: list[LedgerRecord]) -> dict[str, int]:
    return {
        "requests": len(records),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "completion_tokens": sum(r.completion_tokens for r in records),
        "cancelled": sum(r.status == "cancelled" for r in records),
        "cache_hits": sum(r.cache_hit for r in records),
        "cost_nano_usd": sum(to_nano_usd(r.cost_usd) for r in records),
        "billed_nano_usd": sum(to_nano_usd(r.billed_usd) for r in records),
    }


def summed(rows: list) -> dict[str, int]:
    total = dict.fromkeys(METRICS, 0)
    for row in rows:
        for name, value in row.sums.items():
            total[name] += value
    return {k: total[k] for k in expected_sums([])}


@pytest.fixture(params=["local", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "local":
        yield LocalLedgerStore(tmp_path / "ledger.jsonl")
        return
    redis = build_redis(request.getfixturevalue("redis_url"))
    yield RedisLedgerStore(redis, "t", "t:ledger")
    await redis.aclose()


async def test_each_request_written_once_and_aggregates_match(store: object) -> None:
    records = [make_record(i, tenant=f"t{i % 3}", model=f"m{i % 2}") for i in range(300)]
    await store.start()
    assert await store.append(records[:200]) == 200
    # a resent batch (an unanswered write retried) and duplicates inside a batch write nothing twice
    assert await store.append(records[150:300] + records[290:300]) == 100
    written = await store.records(NOW_S, NOW_S + 10**6)
    assert sorted(r.request_id for r in written) == sorted(r.request_id for r in records)
    assert written == sorted(written, key=lambda r: r.time_s)
    assert {r.request_id: r for r in written}["req-7"] == records[7]  # round trip, every field
    rows = await store.usage([day_of(NOW_S)])
    assert summed(rows) == expected_sums(records)
    t1 = await store.usage([day_of(NOW_S)], "t1")
    assert {r.tenant_id for r in t1} == {"t1"}
    assert summed(t1) == expected_sums([r for r in records if r.tenant_id == "t1"])
    by_model = {g.model: g for g in group(rows, ("model",), internal=True)}
    assert by_model["m0"].requests == 150
    assert by_model["m0"].billed_usd == pytest.approx(
        sum(to_nano_usd(r.billed_usd) for r in records if r.model == "m0") / 1e9, abs=0
    )


async def test_local_ledger_survives_restart_and_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first = LocalLedgerStore(path)
    await first.start()
    await first.append([make_record(i) for i in range(10)])
    with path.open("a") as f:
        f.write('{"request_id": "torn", "time_s": 17')  # a crash in the middle of a write
    again = LocalLedgerStore(path)
    await again.start()
    assert again.num_torn_lines == 1
    assert await again.append([make_record(i) for i in range(5, 15)]) == 5
    third = LocalLedgerStore(path)
    await third.start()
    assert third.num_torn_lines == 1 and len(third.seen) == 15
    assert summed(await third.usage([day_of(NOW_S)])) == expected_sums([make_record(i) for i in range(15)])


async def test_ledger_buffers_through_a_redis_outage(redis_server: RedisServer, redis_url: str) -> None:
    redis = build_redis(redis_url)
    store = RedisLedgerStore(redis, "t", "t:ledger")
    ledger = Ledger(store, buffer_size=1000)
    await ledger.start()
    try:
        records = [make_record(i) for i in range(100)]
        for record in records[:40]:
            await ledger.record(record)
        await asyncio.wait_for(ledger.flush(), 5)
        redis_server.stop()
        started = time.perf_counter()
        for record in records[40:]:
            await ledger.record(record)  # returns at once while the store is down
        assert time.perf_counter() - started < 0.1
        await asyncio.sleep(0.5)
        assert len(ledger.buffer) == 60 and ledger.num_write_errors >= 1
        redis_server.start()  # empty: the test server keeps nothing across restarts
        await asyncio.wait_for(ledger.flush(), 10)
        for record in records[40:]:  # recorded again (a confused caller): still once
            await ledger.record(record)
        await asyncio.wait_for(ledger.flush(), 5)
        written = await store.records(NOW_S, NOW_S + 10**6)
        print(f"\nledger: 60 records buffered through the outage, {ledger.num_write_errors} failed writes, "
              f"{len(written)} records in the stream afterwards")
        assert sorted(r.request_id for r in written) == sorted(r.request_id for r in records[40:])
        assert summed(await store.usage([day_of(NOW_S)])) == expected_sums(records[40:])
        assert ledger.num_written == 160 and ledger.num_dropped == 0
    finally:
        redis_server.start()
        await ledger.close()
        await redis.aclose()


async def test_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    class DownStore(LocalLedgerStore):
        async def append(self, records):  # type: ignore[no-untyped-def]
            raise ConnectionError("down")

    ledger = Ledger(DownStore(None), buffer_size=5)
    await ledger.start()
    for i in range(8):
        await ledger.record(make_record(i))
    assert len(ledger.buffer) == 5 and ledger.num_dropped == 3
    ledger.buffer.clear()  # let close() finish at once
    ledger._empty.set()
    await ledger.close()


async def test_two_writers_same_request_id_written_once(redis_url: str) -> None:
    """Two replicas (own pools) recording overlapping request ids: each id lands once."""
    clients = [build_redis(redis_url), build_redis(redis_url)]
    ledgers = [Ledger(RedisLedgerStore(c, "t", "t:ledger"), 1000) for c in clients]
    for ledger in ledgers:
        await ledger.start()
    try:
        records = [make_record(i) for i in range(200)]
        await asyncio.gather(*(ledgers[i % 2].record(r) for i, r in enumerate(records)),
                             *(ledgers[(i + 1) % 2].record(r) for i, r in enumerate(records[::3])))
        await asyncio.gather(*(ledger.flush() for ledger in ledgers))
        store = ledgers[0].store
        written = await store.records(NOW_S, NOW_S + 10**6)
        assert len(written) == 200
        assert summed(await store.usage([day_of(NOW_S)])) == expected_sums(records)
    finally:
        for ledger in ledgers:
            await ledger.close()
        for client in clients:
            await client.aclose()


async def test_finish_records_failed_and_cancelled_requests(tmp_path: Path) -> None:
    """The facade's finish: settle + exactly one ledger record, whatever the outcome."""
    from serve.tenants.config import TenantsConfig
    from serve.tenants.service import build_tenants

    config = TenantsConfig(local_state_dir=str(tmp_path), anonymous_tier="paid")
    tenants = build_tenants(config, clock=lambda: NOW_S)
    await tenants.start()
    ctx = await tenants.authenticate(None)
    outcomes = [("ok", 10, 20), ("failed", 10, 0), ("cancelled", 10, 7)]
    for i, (status, prompt, completion) in enumerate(outcomes):
        ticket = await tenants.admit(ctx, "m1", 100)
        billed = await tenants.finish(ticket, request_id=f"r{i}", prompt_tokens=prompt, completion_tokens=completion,
                                      cost_usd=0.0001, latency_ms=12.5, status=status, pool="cpu",
                                      error_code="engine_unavailable" if status == "failed" else None)
        assert billed == pytest.approx((prompt + completion) * 0.002 / 1000)
        # a second finish of the same ticket neither bills nor records again
        assert await tenants.finish(ticket, request_id=f"r{i}", prompt_tokens=0, completion_tokens=0,
                                    cost_usd=0.0, latency_ms=0.0) == billed
    await tenants.close()

    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    records = [LedgerRecord.model_validate_json(line) for line in lines]
    assert [(r.request_id, r.status, r.completion_tokens) for r in records] == [
        ("r0", "ok", 20), ("r1", "failed", 0), ("r2", "cancelled", 7)
    ]
    assert records[1].error_code == "engine_unavailable" and records[0].tenant_id == "anonymous"
    # the embedded default's state survives a restart: ledger aggregates and monthly counters
    again = build_tenants(config, clock=lambda: NOW_S)
    await again.start()
    usage = await again.reports.usage(None, None, ("tenant",))
    spend = await again.limiter.spend("anonymous", "2025-06")
    await again.close()
    assert [(g.tenant_id, g.requests, g.failed, g.cancelled) for g in usage] == [("anonymous", 3, 1, 1)]
    assert spend.requests == 3 and spend.billed_nano_usd == sum(to_nano_usd(r.billed_usd) for r in records)
