"""serve/cache/coalesce.py and its use in ResponseCache: identical misses in flight at once
lead once and follow; a follower answers from the leader's entry, goes on by itself when the
leader stored nothing, and never waits for its own task or longer than the bound."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from serve.cache import build_cache
from serve.cache.coalesce import Flights
from serve.cache.config import CacheConfig
from serve.cache.controls import CacheControls
from serve.cache.entry import CachedChoice, CachedUsage, CacheEntry
from serve.cache.events import CountingEvents

NO_CONTROLS = CacheControls()


def _chat(**changes: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "Name a colour."}], "temperature": 0} | changes


def _entry(text: str = "Blue.") -> CacheEntry:
    return CacheEntry(
        endpoint="chat",
        choices=(CachedChoice(index=0, text=text, finish_reason="stop"),),
        usage=CachedUsage(prompt_tokens=5, completion_tokens=2, total_tokens=7),
        cost_usd=0.001,
        created_at_s=time.time(),
    )


def _cache(**changes: Any):
    events = CountingEvents()
    return build_cache(CacheConfig.model_validate({"enabled": True} | changes), None, events), events


async def test_flights_lead_once_per_key_and_land_once() -> None:
    flights = Flights(stale_after_s=60)

    async def lead(key: str):
        return flights.lead(key)

    first = await asyncio.create_task(lead("k"))
    assert first is not None and await asyncio.create_task(lead("k")) is None
    assert await asyncio.create_task(lead("other")) is not None
    flights.land(first)
    flights.land(first)  # idempotent
    assert await asyncio.create_task(lead("k")) is not None


async def test_a_task_never_follows_its_own_flight() -> None:
    flights = Flights(stale_after_s=60)
    assert flights.lead("k") is not None
    assert not flights.in_flight("k") and flights.lead("k") is not None


async def test_a_stale_flight_no_longer_holds_its_key() -> None:
    now = [0.0]
    flights = Flights(stale_after_s=10, clock=lambda: now[0])

    async def lead():
        return flights.lead("k")

    assert await asyncio.create_task(lead()) is not None
    now[0] = 5.0
    assert await asyncio.create_task(lead()) is None
    now[0] = 11.0  # the leader never landed
    assert await asyncio.create_task(lead()) is not None


async def test_identical_misses_in_flight_are_answered_from_the_leaders_entry() -> None:
    cache, events = _cache()
    leader = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    assert leader.status == "miss" and leader.flight is not None
    followers = [asyncio.create_task(cache.lookup("chat", _chat(), "t", NO_CONTROLS)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in followers)  # waiting for the leader
    assert await cache.store(leader, _entry())
    found = await asyncio.gather(*followers)
    assert [(f.status, f.match, f.entry.choices[0].text) for f in found] == [("hit", "coalesced", "Blue.")] * 3
    assert found[0].headers()["x-frugal-cost-avoided-usd"] == "0.001"
    assert events.lookups[("hit", "coalesced")] == 3 and len(cache.flights) == 0


async def test_when_the_leader_stores_nothing_one_follower_leads_and_the_rest_follow_it() -> None:
    cache, _ = _cache()
    leader = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    followers = [asyncio.create_task(cache.lookup("chat", _chat(), "t", NO_CONTROLS)) for _ in range(3)]
    await asyncio.sleep(0.05)
    cache.release(leader)  # failed or cancelled: nothing stored
    await asyncio.sleep(0.05)
    done = [f for f in followers if f.done()]
    assert len(done) == 1 and done[0].result().status == "miss" and done[0].result().flight is not None
    assert await cache.store(done[0].result(), _entry("Red."))
    rest = await asyncio.gather(*(f for f in followers if f is not done[0]))
    assert [(r.status, r.match, r.entry.choices[0].text) for r in rest] == [("hit", "coalesced", "Red.")] * 2


async def test_streams_do_not_wait_unless_configured_and_store_less_requests_only_follow() -> None:
    cache, _ = _cache()
    leader = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    stream = await asyncio.create_task(cache.lookup("chat", _chat(stream=True), "t", NO_CONTROLS))
    assert stream.status == "miss" and stream.flight is None  # goes to the engine at once, leads nothing
    no_store = asyncio.create_task(cache.lookup("chat", _chat(), "t", CacheControls(**{"no-store": True})))
    await asyncio.sleep(0.05)
    assert not no_store.done()
    await cache.store(leader, _entry())
    assert (await no_store).status == "hit"

    patient, _ = _cache(coalesce_streams=True)
    first = await patient.lookup("chat", _chat(), "t", NO_CONTROLS)
    waiting = asyncio.create_task(patient.lookup("chat", _chat(stream=True), "t", NO_CONTROLS))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await patient.store(first, _entry())
    assert (await waiting).match == "coalesced"


async def test_coalescing_off_and_the_wait_bound() -> None:
    off, _ = _cache(coalesce=False)
    first = await off.lookup("chat", _chat(), "t", NO_CONTROLS)
    second = await asyncio.create_task(off.lookup("chat", _chat(), "t", NO_CONTROLS))
    assert first.flight is None and second.status == "miss" and second.flight is None

    short, _ = _cache(coalesce_wait_s=0.1)
    await short.lookup("chat", _chat(), "t", NO_CONTROLS)  # a leader that never lands
    t0 = time.monotonic()
    late = await asyncio.create_task(short.lookup("chat", _chat(), "t", NO_CONTROLS))
    assert late.status == "miss" and 0.09 <= time.monotonic() - t0 < 1.0
