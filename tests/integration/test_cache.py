"""The response cache through HTTP on the real engines, stored in a real redis-server: hits
repeat the answer exactly, any change of sampling parameters or system prompt misses, tenants
are isolated, streams replay well formed, and a Redis outage only bypasses the cache."""

from __future__ import annotations

import time
import uuid

import httpx

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def _ask(question: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": question}]


def _chat(service, body: dict, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    r = httpx.post(f"{service.base_url}/v1/chat/completions", json=body, headers=headers, timeout=180)
    assert r.status_code == 200, r.text
    return r


def _fresh(chat_model: str) -> dict:
    # A question no other test asked, so the first request is always a miss.
    return {"model": chat_model, "messages": _ask(f"Name a colour. ({uuid.uuid4().hex[:8]})"), "max_tokens": 12, "temperature": 0}


def test_a_repeated_deterministic_chat_is_a_hit_with_the_same_answer(service, chat_model):
    body = _fresh(chat_model)
    first, second = _chat(service, body), _chat(service, body)
    assert (first.headers["x-frugal-cache"], second.headers["x-frugal-cache"]) == ("miss", "hit")
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    assert second.json()["usage"]["completion_tokens"] == first.json()["usage"]["completion_tokens"]
    assert second.json()["usage"]["cost_usd"] == 0 and first.json()["usage"]["cost_usd"] > 0
    assert float(second.headers["x-frugal-cost-avoided-usd"]) > 0


def test_any_change_of_sampling_parameters_or_system_prompt_misses(service, chat_model):
    body = _fresh(chat_model)
    _chat(service, body)
    variants = [
        {**body, "max_tokens": 13},
        {**body, "top_p": 0.9},
        {**body, "seed": 7},
        {**body, "presence_penalty": 0.5},
        {**body, "messages": [{"role": "system", "content": "Answer in French."}, body["messages"][1]]},
    ]
    assert [_chat(service, v).headers["x-frugal-cache"] for v in variants] == ["miss"] * len(variants)


def test_a_tenant_never_receives_another_tenants_entry(service, chat_model):
    body = _fresh(chat_model)
    alpha, beta = service.keys["alpha"], service.keys["beta"]
    statuses = [_chat(service, body, k).headers["x-frugal-cache"] for k in (alpha, beta, alpha, None)]
    assert statuses == ["miss", "miss", "hit", "miss"]


def test_a_streamed_hit_replays_a_well_formed_stream(client, service, chat_model):
    body = _fresh(chat_model)
    plain = _chat(service, body).json()["choices"][0]["message"]["content"]
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


def test_redis_down_bypasses_the_cache_and_hits_resume_after_restart(service, chat_model, redis_server):
    body = _fresh(chat_model)
    _chat(service, body)
    assert _chat(service, body).headers["x-frugal-cache"] == "hit"
    redis_server.stop()
    try:
        during = [_chat(service, body) for _ in range(3)]  # still answered, from the engine
        assert {r.headers["x-frugal-cache"] for r in during} == {"bypass"}
    finally:
        redis_server.start()
    # The restarted server is empty: the first request after it repopulates, then hits resume.
    deadline = time.monotonic() + 30
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(_chat(service, body).headers["x-frugal-cache"])
        if statuses[-1] == "hit":
            break
        time.sleep(1)
    assert statuses[-1] == "hit", statuses
