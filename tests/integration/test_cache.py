"""The response cache through HTTP on the real engines, stored in a real redis-server, driven by
the official ``openai`` client: hits repeat the answer exactly, any change of sampling
parameters or system prompt misses, tenants are isolated, streams replay well formed and are
stored only when they finished, the per-request controls (``extra_body={"cache": ...}``) work
and reject bad values with a 400, a hit is in the ledger at cost 0 with its avoided cost,
identical requests in flight reach the engine once, and a Redis outage only bypasses the
cache."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from openai import OpenAI

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
LEDGER_TENANT = "epsilon"  # this file's ledger checks; no other test sends as it


def _client(service, key: str | None = None) -> OpenAI:
    """A client of one tenant (None: the anonymous tenant; with auth off, a string that is not a
    Frugal key is anonymous)."""
    return OpenAI(base_url=f"{service.base_url}/v1", api_key=key or "EMPTY", max_retries=0, timeout=180)


def _chat(client: OpenAI, body: dict, **cache: object):
    """One chat request; returns (the x-frugal-cache status, the parsed completion, headers)."""
    extra = {"extra_body": {"cache": cache}} if cache else {}
    raw = client.chat.completions.with_raw_response.create(**body, **extra)
    return raw.headers["x-frugal-cache"], raw.parse(), raw.headers


def _fresh(chat_model: str, **overrides: object) -> dict:
    # A question no other test asked, so the first request is always a miss. The tag mixes a
    # letter and a digit: the semantic cache's guard never matches two different tags.
    question = f"Name a colour. (q{uuid.uuid4().hex[:8]}7)"
    return {"model": chat_model, "messages": [SYSTEM, {"role": "user", "content": question}],
            "max_tokens": 12, "temperature": 0, **overrides}


def test_a_repeated_deterministic_chat_is_a_hit_with_the_same_answer(service, chat_model):
    client, body = _client(service), _fresh(chat_model)
    (s1, first, h1), (s2, second, h2) = _chat(client, body), _chat(client, body)
    assert (s1, s2) == ("miss", "hit")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage.completion_tokens == first.usage.completion_tokens
    assert second.usage.model_extra["cost_usd"] == 0 and first.usage.model_extra["cost_usd"] > 0
    # The avoided cost is what the answer cost when it was generated, to the digit.
    assert h2["x-frugal-cost-avoided-usd"] == h1["x-frugal-cost-usd"]
    assert float(h2["x-frugal-cost-avoided-usd"]) == first.usage.model_extra["cost_usd"]
    assert h2["x-frugal-pool"] == "cache" and h1["x-frugal-pool"] != "cache"


def test_any_change_of_sampling_parameters_or_system_prompt_misses(service, chat_model):
    client, body = _client(service), _fresh(chat_model)
    _chat(client, body)
    variants = [
        {**body, "max_tokens": 13},
        {**body, "top_p": 0.9},
        {**body, "seed": 7},
        {**body, "presence_penalty": 0.5},
        {**body, "messages": [{"role": "system", "content": "Answer in French."}, body["messages"][1]]},
    ]
    assert [_chat(client, v)[0] for v in variants] == ["miss"] * len(variants)


def test_a_tenant_never_receives_another_tenants_entry(service, chat_model):
    body = _fresh(chat_model)
    alpha, beta, anonymous = (_client(service, service.keys["alpha"]), _client(service, service.keys["beta"]),
                              _client(service))
    statuses = [_chat(c, body)[0] for c in (alpha, beta, alpha, anonymous)]
    assert statuses == ["miss", "miss", "hit", "miss"]


def test_a_streamed_hit_replays_a_well_formed_stream(client, service, chat_model):
    body = _fresh(chat_model)
    plain = _chat(client, body)[1].choices[0].message.content
    raw = client.chat.completions.with_raw_response.create(
        **body, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-frugal-cache"] == "hit"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def _engine_idle(service, chat_model: str, timeout_s: float) -> None:
    pools = [pool.name for pool in service.config.model(chat_model).pools]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all((load := service.call_engine(p, "load")).num_running + load.num_waiting == 0 for p in pools):
            return
        time.sleep(0.1)
    pytest.fail(f"engines {pools} still busy {timeout_s}s after the client left")


def test_a_stream_cut_short_is_not_stored_and_a_finished_one_is(service, chat_model):
    client = _client(service)
    # Far longer than the test waits (about 30 tokens/s per stream here): it cannot finish.
    long = _fresh(chat_model, max_tokens=1500)
    stream = client.chat.completions.create(**long, stream=True, extra_body={"ignore_eos": True})
    for _, _chunk in zip(range(3), stream):
        pass
    stream.close()
    _engine_idle(service, chat_model, timeout_s=5.0)  # the engine aborted it, unfinished
    again = client.chat.completions.with_raw_response.create(
        **long, stream=True, extra_body={"ignore_eos": True, "cache": {"no-store": True}}
    )
    assert again.headers["x-frugal-cache"] == "miss"
    again.parse().close()

    short = _fresh(chat_model)
    raw = client.chat.completions.with_raw_response.create(**short, stream=True)
    assert raw.headers["x-frugal-cache"] == "miss"
    streamed = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    status, replay, _ = _chat(client, short)
    assert status == "hit" and replay.choices[0].message.content == streamed


def test_per_request_controls(service, chat_model):
    client = _client(service)
    body = _fresh(chat_model)
    # no-store: answered (a miss) but not written, so the next plain request misses too.
    assert [_chat(client, body, **{"no-store": True})[0], _chat(client, body)[0], _chat(client, body)[0]] == [
        "miss", "miss", "hit"]
    # no-cache: not answered from the cache although an entry exists; the engine answers.
    status, _, headers = _chat(client, body, **{"no-cache": True})
    assert status == "bypass" and headers["x-frugal-pool"] != "cache"
    # ttl: an entry kept 1 s is gone 1.5 s later.
    short_lived = _fresh(chat_model)
    assert _chat(client, short_lived, ttl=1)[0] == "miss"
    assert _chat(client, short_lived)[0] == "hit"
    time.sleep(1.5)
    assert _chat(client, short_lived)[0] == "miss"
    # A sampled request is not cached unless it asks to be.
    sampled = _fresh(chat_model, temperature=0.7)
    assert [_chat(client, sampled)[0], _chat(client, sampled)[0]] == ["bypass", "bypass"]
    widened = [_chat(client, sampled, **{"allow-nondeterministic": True})[0] for _ in range(2)]
    assert widened == ["miss", "hit"]


def test_identical_requests_in_flight_reach_the_engine_once(service, chat_model):
    """A burst of one deterministic question: the first request goes to the engine, the others
    wait for it and are answered from its entry (without coalescing all four would miss)."""
    body = _fresh(chat_model, max_tokens=64)  # over a second of generation here: they overlap
    barrier = threading.Barrier(4)

    def one(_: int):
        client = _client(service)
        barrier.wait()
        return _chat(client, body)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert sorted(status for status, _, _ in results) == ["hit", "hit", "hit", "miss"]
    assert len({completion.choices[0].message.content for _, completion, _ in results}) == 1
    assert sum(headers["x-frugal-pool"] != "cache" for _, _, headers in results) == 1


@pytest.mark.parametrize("cache", [
    {"no-cache": "yes"},          # not a boolean
    {"ttl": -5},                  # out of range
    {"namespace": "beta"},        # a request cannot choose its namespace
    {"no-store": True, "bogus": 1},
    "no-cache",                   # not an object
])
def test_bad_cache_controls_are_400_naming_the_parameter(client, chat_model, cache):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**_fresh(chat_model), extra_body={"cache": cache})
    error = e.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == "cache"


def test_a_hit_is_in_the_ledger_at_no_cost_with_its_avoided_cost(service, chat_model):
    client = _client(service, service.keys[LEDGER_TENANT])
    before = service.usage(LEDGER_TENANT)
    body = _fresh(chat_model)
    (_, miss, _), (status, hit, headers) = _chat(client, body), _chat(client, body)
    assert status == "hit"
    after = service.wait_usage(LEDGER_TENANT, before["requests"] + 2)
    assert after["requests"] - before["requests"] == 2
    assert after["cache_hits"] - before.get("cache_hits", 0) == 1
    # Tokens are counted for both answers (the client received them twice); money once.
    tokens = miss.usage.completion_tokens + hit.usage.completion_tokens
    assert after["completion_tokens"] - before["completion_tokens"] == tokens
    assert after["cost_usd"] - before.get("cost_usd", 0) == pytest.approx(miss.usage.model_extra["cost_usd"], abs=2e-9)
    avoided = after["avoided_cost_usd"] - before.get("avoided_cost_usd", 0)
    assert avoided == pytest.approx(float(headers["x-frugal-cost-avoided-usd"]), abs=2e-9) and avoided > 0


def test_redis_down_bypasses_the_cache_and_hits_resume_after_restart(service, chat_model, redis_server):
    client, body = _client(service), _fresh(chat_model)
    _chat(client, body)
    assert _chat(client, body)[0] == "hit"
    redis_server.stop()
    try:
        during = [_chat(client, body)[0] for _ in range(3)]  # still answered, from the engine
        assert set(during) == {"bypass"}
    finally:
        redis_server.start()
    # The restarted server is empty: the first request after it repopulates, then hits resume.
    deadline = time.monotonic() + 30
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(_chat(client, body)[0])
        if statuses[-1] == "hit":
            break
        time.sleep(1)
    assert statuses[-1] == "hit", statuses
