"""The official openai client against the real service: chat, streaming, completions,
embeddings, models, and every client error as an OpenAI-shaped 4xx."""

from __future__ import annotations

import math
import time

import httpx
import openai
import pytest

QUESTION = "What is the capital of France?"


def test_models_lists_both_defaults(client, chat_model, embed_model):
    ids = {m.id for m in client.models.list().data}
    assert {chat_model, embed_model} <= ids


def test_chat_answers_the_capital_of_france(client, chat_model):
    resp = client.chat.completions.create(
        model=chat_model, messages=[{"role": "user", "content": QUESTION}], max_tokens=30, temperature=0
    )
    answer = resp.choices[0].message.content
    assert "Paris" in answer
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.completion_tokens > 0 and resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_chat_streaming_with_usage(client, chat_model):
    stream = client.chat.completions.create(
        model=chat_model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=30,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert "Paris" in text
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_without_usage_has_no_usage_chunk_and_ends_with_done(service, chat_model):
    body = {"model": chat_model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": True}
    with httpx.stream("POST", f"{service.base_url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert not any('"usage"' in e and '"choices":[]' in e for e in events)


def test_streamed_and_plain_answers_agree(client, chat_model):
    kwargs = dict(model=chat_model, messages=[{"role": "user", "content": QUESTION}], max_tokens=20, temperature=0)
    plain = client.chat.completions.create(**kwargs).choices[0].message.content
    streamed = "".join(
        c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs, stream=True) if c.choices
    )
    assert plain == streamed


def test_completions(client, chat_model):
    resp = client.completions.create(model=chat_model, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert "Paris" in resp.choices[0].text
    assert resp.usage.completion_tokens == 8 or resp.choices[0].finish_reason == "stop"


def test_completions_streaming(client, chat_model):
    chunks = list(client.completions.create(model=chat_model, prompt="One, two,", max_tokens=6, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_embeddings_are_semantically_sensible(client, embed_model):
    resp = client.embeddings.create(
        model=embed_model, input=[QUESTION, "Which city is France's capital?", "How do I bake bread?"]
    )
    vecs = [d.embedding for d in resp.data]
    assert len(vecs) == 3 and len(vecs[0]) == 384

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cos(vecs[0], vecs[1]) > 0.8 > cos(vecs[0], vecs[2])
    assert resp.usage.prompt_tokens > 0


def test_n_choices(client, chat_model):
    resp = client.chat.completions.create(
        model=chat_model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=5, n=2, temperature=1, seed=1
    )
    assert len(resp.choices) == 2


def _assert_openai_error(exc: openai.APIStatusError, status: int, param: str | None = None) -> dict:
    assert exc.status_code == status
    err = exc.response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert _assert_openai_error(e.value, 404, "model")["code"] == "model_not_found"


@pytest.mark.parametrize(
    "overrides, param",
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"n": 1000}, "n"),
        ({"messages": []}, "messages"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"top_p": 7}, "top_p"),
    ],
)
def test_out_of_range_parameters_are_400(client, chat_model, overrides, param):
    kwargs = {"model": chat_model, "messages": [{"role": "user", "content": "x"}], **overrides}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**kwargs)
    _assert_openai_error(e.value, 400, param)


def test_prompt_longer_than_context_is_400(client, chat_model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "word " * 5000}])
    assert "context" in _assert_openai_error(e.value, 400)["message"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"model": 5}', b"[" * 100000])
def test_malformed_bodies_are_400(service, body):
    r = httpx.post(f"{service.base_url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_chat_to_embedding_model_is_400(client, embed_model):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=embed_model, messages=[{"role": "user", "content": "x"}])


def test_oversized_body_is_413(service, chat_model):
    big = "x" * (service.config.router.max_request_body_bytes + 10)
    r = httpx.post(
        f"{service.base_url}/v1/chat/completions",
        json={"model": chat_model, "messages": [{"role": "user", "content": big}]},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_health_does_not_wait_on_engines(service):
    t0 = time.perf_counter()
    r = httpx.get(f"{service.base_url}/health")
    assert r.status_code == 200 and time.perf_counter() - t0 < 2


def test_service_still_serves_after_errors(client, chat_model):
    resp = client.chat.completions.create(
        model=chat_model, messages=[{"role": "user", "content": QUESTION}], max_tokens=10, temperature=0
    )
    assert resp.choices[0].message.content
