"""A client that goes away mid-request frees its engine slot: the request is aborted inside
vLLM, not generated to the end."""

from __future__ import annotations

import time

import httpx
import pytest


def _engine_busy(service, pool: str) -> int:
    load = service.engine_handle(pool).load.remote().result(timeout_s=10)
    return load.num_running + load.num_waiting


def _wait_idle(service, pool: str, timeout_s: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if _engine_busy(service, pool) == 0:
            return time.perf_counter() - t0
        time.sleep(0.1)
    pytest.fail(f"engine {pool} still busy {timeout_s}s after the client left")


@pytest.fixture
def chat_pool(service, chat_model) -> str:
    return service.config.model(chat_model).pools[0].name


# Long enough that finishing it would take far longer than the assertion allows
# (SmolLM2 on this CPU produces ~30 tokens/s for one stream).
LONG = {"max_tokens": 1500, "ignore_eos": True, "temperature": 0}


def test_streaming_client_disconnect_aborts_in_engine(service, chat_model, chat_pool):
    body = {"model": chat_model, "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True, **LONG}
    with httpx.stream("POST", f"{service.base_url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        events = 0
        for line in r.iter_lines():
            events += line.startswith("data: ")
            if events >= 5:
                assert _engine_busy(service, chat_pool) >= 1
                break  # closes the connection mid-stream
    _wait_idle(service, chat_pool, timeout_s=5)


def test_non_streaming_client_timeout_aborts_in_engine(service, chat_model, chat_pool):
    body = {"model": chat_model, "messages": [{"role": "user", "content": "Tell me a long story."}], **LONG}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{service.base_url}/v1/chat/completions", json=body, timeout=3)
    _wait_idle(service, chat_pool, timeout_s=5)
