"""A client that goes away mid-request frees its engine slot within a second: the request is
aborted inside vLLM, not generated to the end."""

from __future__ import annotations

import time

import httpx
import pytest


def _engine_busy(service, pools: list[str]) -> int:
    busy = 0
    for pool in pools:
        load = service.call_engine(pool, "load")
        busy += load.num_running + load.num_waiting
    return busy


def _wait_idle(service, pools: list[str], timeout_s: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if _engine_busy(service, pools) == 0:
            return time.perf_counter() - t0
        time.sleep(0.1)
    pytest.fail(f"engines {pools} still busy {timeout_s}s after the client left")


@pytest.fixture
def chat_pool(service, chat_model) -> list[str]:
    """Every pool of the chat model: dispatch may send a request to any of them."""
    return [pool.name for pool in service.config.model(chat_model).pools]


# Long enough that finishing it would take far longer than the assertion allows
# (SmolLM2 on this CPU produces ~30 tokens/s for one stream).
LONG = {"max_tokens": 1500, "ignore_eos": True, "temperature": 0}


TENANT = "delta"  # this file's and test_dispatch's kill test's tenant: their ledger checks


def test_streaming_client_disconnect_aborts_in_engine(service, chat_model, chat_pool):
    """...and the ledger records the request once, as cancelled, with the tokens it consumed."""
    before = service.usage(TENANT)
    body = {"model": chat_model, "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True, **LONG}
    auth = {"authorization": f"Bearer {service.keys[TENANT]}"}
    with httpx.stream("POST", f"{service.base_url}/v1/chat/completions", json=body, headers=auth, timeout=60) as r:
        assert r.status_code == 200
        events = 0
        for line in r.iter_lines():
            events += line.startswith("data: ")
            if events >= 5:
                assert _engine_busy(service, chat_pool) >= 1
                break  # closes the connection mid-stream
    _wait_idle(service, chat_pool, timeout_s=1.0)
    after = service.wait_usage(TENANT, before["requests"] + 1)
    assert after["requests"] == before["requests"] + 1
    assert after["cancelled"] == before["cancelled"] + 1
    consumed = after["completion_tokens"] - before["completion_tokens"]
    assert 1 <= consumed < LONG["max_tokens"]  # what the engine produced before the abort, far from all


def test_non_streaming_client_timeout_aborts_in_engine(service, chat_model, chat_pool):
    body = {"model": chat_model, "messages": [{"role": "user", "content": "Tell me a long story."}], **LONG}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{service.base_url}/v1/chat/completions", json=body, timeout=3)
    _wait_idle(service, chat_pool, timeout_s=1.0)
