"""Hostile input against every route of the router app (FakeEngine behind
``build_router_service``, driven in-process through httpx's ASGI transport).

Properties, for any input the strategies produce:

- no 5xx: malformed input is the client's fault and answers 4xx;
- every error is OpenAI-shaped JSON, ``{"error": {"message", "type", "param", "code"}}``;
- no response header carries CR or LF (nothing from a request header is echoed unsanitised);
- afterwards the app still answers a normal request, and nothing is left in flight (engine
  streams closed, pool leases released).

A body over ``router.max_request_body_bytes`` is refused with 413 before it is read: at once
when its content-length says so, and after at most one chunk past the limit when it is sent
chunked without one.

Run time is bounded by ``max_examples`` per property (the whole file takes seconds, < 60 s on
a 2-core machine). ``dimensions`` of embeddings stays small: FakeEngine builds a vector of
that many floats (vLLM refuses sizes the model does not have).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve.config.schema import FrugalConfig
from serve.engine.fake import FakeEngine
from serve.router.app import build_router_app
from serve.router.assembly import build_router_service
from serve.router.engines import LocalEngineClient
from serve.router.pools import StaticReplicaCounter
from serve.tenants.keys import generate_key, hash_key

MAX_BODY_BYTES = 64 * 1024
ADMIN_KEY = "admin-" + "k" * 32
TENANT_ID = "acme"
API_KEY = generate_key()
ERROR_KEYS = {"message", "type", "param", "code"}
CHAT_PATH, COMPLETION_PATH, EMBEDDING_PATH = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
POST_ROUTES = (CHAT_PATH, COMPLETION_PATH, EMBEDDING_PATH)
GET_ROUTES = ("/health", "/metrics", "/v1/models", "/v1/usage", "/admin/keys", "/admin/tenants", "/admin/usage",
              "/admin/invoices", "/admin/status")
HELLO = [{"role": "user", "content": "hello there world"}]
VALID_BODIES: dict[str, dict[str, Any]] = {
    CHAT_PATH: {"model": "chat-a", "messages": HELLO, "max_tokens": 4},
    COMPLETION_PATH: {"model": "chat-a", "prompt": "once upon a time", "max_tokens": 4},
    EMBEDDING_PATH: {"model": "embed-a", "input": "hello"},
}
# Slow enough to be the router's fault if it takes this long with an instant engine.
SLOW_REQUEST_S = 1.0

PROPERTY_SETTINGS = settings(
    max_examples=75,
    deadline=None,  # one slow example on a busy machine is not a failure; the file-level bound is
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def hostile_config() -> FrugalConfig:
    """Two models, a tier alias (its complexity scoring reads unvalidated messages), auth on
    with one tenant key and an admin key, and a small body limit."""

    def model(name: str, task: str) -> dict[str, Any]:
        return {"name": name, "task": task, "pools": [{"name": f"{name}-cpu", "params_b": 0.1, "engine": {"model": f"/m/{name}"}}]}

    return FrugalConfig.model_validate({
        "router": {"max_request_body_bytes": MAX_BODY_BYTES},
        "models": [model("chat-a", "chat"), model("embed-a", "embed")],
        "tiers": {"aliases": ["auto"], "small": "chat-a", "medium": "chat-a", "large": "chat-a"},
        "tenants": {
            "auth_enabled": True,
            "admin_key_env": None,
            "admin_key_sha256": hash_key(ADMIN_KEY),
            "tenants": [{"id": TENANT_ID, "tier": "vip", "keys": [{"id": API_KEY.key_id, "sha256": API_KEY.sha256}]}],
        },
    })


class Harness:
    """The router app over FakeEngines, and an event loop to drive it from sync tests
    (hypothesis runs examples synchronously)."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self.runner = runner
        self.config = hostile_config()
        self.engines = {m.name: FakeEngine(m.name) for m in self.config.models}
        clients = {f"{name}-cpu": LocalEngineClient(f"{name}-cpu", e) for name, e in self.engines.items()}
        self.service = build_router_service(self.config, clients, StaticReplicaCounter({p: (1, 0) for p in clients}))
        # A router bug must come back as the 500 a client would see, not as an exception here.
        transport = httpx.ASGITransport(app=build_router_app(self.service), raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.request(method, path, **kwargs))

    def post(self, path: str, body: bytes | Any, headers: dict[str, Any] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else dumps(body)
        return self.send("POST", path, content=content, headers={**user_headers(), **(headers or {})})

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.run(self.service.close())


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with asyncio.Runner() as runner:
        h = Harness(runner)
        yield h
        h.close()


@pytest.fixture(autouse=True)
def still_serves(harness: Harness) -> Iterator[None]:
    """After every test: a normal request is answered and nothing is left in flight."""
    yield
    for path, body in VALID_BODIES.items():
        response = harness.post(path, body)
        assert response.status_code == 200, response.text
    streamed = harness.post(CHAT_PATH, {**VALID_BODIES[CHAT_PATH], "stream": True})
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    assert all(e.num_active == 0 for e in harness.engines.values())
    assert all(p.local_in_flight == 0 for p in harness.service.dispatcher.monitor.pools.values())


def user_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY.key}", "content-type": "application/json"}


def dumps(value: Any) -> bytes:
    """JSON as a lenient client writes it: NaN and Infinity literals, any integer size."""
    return json.dumps(value, allow_nan=True).encode()


def check(response: httpx.Response) -> None:
    """The properties every answer keeps, whatever was sent."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    for name, value in response.headers.raw:
        assert b"\r" not in value and b"\n" not in value, (name, value)
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers.get("content-type", "").startswith("application/json"), response.text[:200]
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    elif response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [e for e in response.text.split("\n\n") if e]
        assert events and all(e.startswith("data: ") for e in events)
        assert events[-1] == "data: [DONE]"


# --- strategies --------------------------------------------------------------------------

EDGE_NUMBERS = st.sampled_from([
    0, -0.0, 1, -1, 0.5, 2**31, -(2**31), 2**63, 2**64, 10**30, -(10**30), 10**400, -(10**400),
    1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf,
])
TEXT = st.text(max_size=200) | st.sampled_from(["", " ", "\x00", "\u202e", "😀" * 50, "a" * 5000, "\\", "{{x}}"])
SCALARS = st.none() | st.booleans() | EDGE_NUMBERS | st.integers() | st.floats() | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(TEXT, children, max_size=6),
    max_leaves=20,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "", "root"]) | JSON_VALUES},
    optional={"content": JSON_VALUES | st.lists(st.fixed_dictionaries({"type": st.just("text") | TEXT, "text": JSON_VALUES})),
              "name": JSON_VALUES, "tool_calls": JSON_VALUES, "tool_call_id": JSON_VALUES},
)
FIELDS = [
    "model", "messages", "prompt", "input", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
    "stream", "stream_options", "stop", "seed", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
    "logit_bias", "user", "tools", "tool_choice", "response_format", "encoding_format", "echo", "suffix",
    "min_tokens", "ignore_eos", "priority", "request_id", "best_of", "prompt_logprobs", "truncate_prompt_tokens",
]
SPECIAL_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["chat-a", "embed-a", "auto", "", "CHAT-A", "chat-a\x00"]) | JSON_VALUES,
    "messages": st.lists(MESSAGE | JSON_VALUES, max_size=5) | JSON_VALUES,
    "prompt": st.lists(st.integers() | EDGE_NUMBERS, max_size=5) | TEXT | JSON_VALUES,
    "input": st.lists(st.lists(st.integers(), max_size=4) | TEXT, max_size=4) | JSON_VALUES,
    "stream": st.booleans() | JSON_VALUES,
    "stream_options": st.fixed_dictionaries({"include_usage": JSON_VALUES}) | JSON_VALUES,
}


@st.composite
def request_bodies(draw: st.DrawFn, path: str) -> dict[str, Any]:
    """A valid body for ``path`` with some fields replaced, removed or added."""
    body = dict(VALID_BODIES[path])
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(SPECIAL_VALUES.get(name, JSON_VALUES))
    if draw(st.booleans()):
        body.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=3)))  # unknown fields
    if path == EMBEDDING_PATH and draw(st.booleans()):
        body["dimensions"] = draw(st.integers(1, 64))
    return body


def _nest(depth: int, kind: str) -> str:
    return {"list": "[" * depth + "]" * depth, "object": '{"a":' * depth + "1" + "}" * depth}[kind]


# --- properties: bodies ------------------------------------------------------------------


@pytest.mark.parametrize("path", POST_ROUTES)
def test_any_json_body_is_answered_without_5xx(harness: Harness, path: str) -> None:
    @PROPERTY_SETTINGS
    @given(body=request_bodies(path))
    def run(body: dict[str, Any]) -> None:
        check(harness.post(path, body))

    run()


@st.composite
def mangled_bytes(draw: st.DrawFn) -> tuple[str, bytes]:
    """A path, and random bytes or a valid body of it with bytes inserted (invalid UTF-8 among
    them) or cut short."""
    path = draw(st.sampled_from(POST_ROUTES))
    valid = dumps(VALID_BODIES[path])
    cut = draw(st.integers(0, len(valid)))
    junk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"]))
    body = draw(st.sampled_from([valid[:cut] + junk + valid[cut:], valid[:cut], draw(st.binary(max_size=2000))]))
    return path, body


@PROPERTY_SETTINGS
@given(case=mangled_bytes())
def test_any_bytes_are_answered_without_5xx(harness: Harness, case: tuple[str, bytes]) -> None:
    path, body = case
    check(harness.post(path, body))


def test_deep_nesting(harness: Harness) -> None:
    for path in POST_ROUTES:
        valid = json.dumps(VALID_BODIES[path])[:-1]  # without its closing brace
        for kind in ("list", "object"):
            for depth in (50, 1000, 20000):
                nested = _nest(depth, kind)
                for raw in (
                    nested,
                    f'{valid}, "extra": {nested}}}',
                    f'{valid}, "messages": [{{"role": "user", "content": {nested}}}], "prompt": {nested}, "input": {nested}}}',
                    f'{valid}, "model": {nested}}}',
                ):
                    check(harness.post(path, raw.encode()))


EDGE_LITERALS = ["NaN", "Infinity", "-Infinity", "-0", "-0.0", "1e308", "-1e308", "1e309", "1" + "0" * 400,
                 "-" + "9" * 400, "4.9e-324", "0.0000000000000000000001", "1E400", "true", "null", '"12"', "[]", "{}"]
NUMERIC_FIELDS = ["max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "seed", "presence_penalty",
                  "frequency_penalty", "top_logprobs", "logprobs", "min_tokens", "priority", "best_of"]


@pytest.mark.parametrize("path", POST_ROUTES)
def test_edge_number_literals(harness: Harness, path: str) -> None:
    valid = json.dumps(VALID_BODIES[path])[:-1]
    fields = NUMERIC_FIELDS if path != EMBEDDING_PATH else ["dimensions", "priority", "truncate_prompt_tokens", "user"]
    for field in fields:
        for literal in EDGE_LITERALS:
            if field == "dimensions" and literal not in ("-0", "-0.0", "true", "null", '"12"', "[]", "{}", "NaN"):
                continue  # FakeEngine allocates ``dimensions`` floats: see the module docstring
            check(harness.post(path, f'{valid}, "{field}": {literal}}}'.encode()))


# Lone surrogates: valid JSON escapes that no UTF-8 encoder accepts (tokenizers, response
# rendering, cache keys, the ledger).
@pytest.mark.parametrize(("path", "body"), [
    (CHAT_PATH, b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'),
    (CHAT_PATH, b'{"model": "chat-a", "messages": [{"role": "user", "content": "hi \\udfff there"}]}'),
    (CHAT_PATH, b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud83d"}]}'),
    (CHAT_PATH, b'{"model": "chat-a", "messages": [{"role": "\\ud800", "content": "hi"}]}'),
    (COMPLETION_PATH, b'{"model": "chat-a", "prompt": "\\ud800\\ud800"}'),
    (EMBEDDING_PATH, b'{"model": "embed-a", "input": "hi \\ud800"}'),
    (EMBEDDING_PATH, b'{"model": "embed-a", "input": ["ok", "\\udc00"]}'),
    (CHAT_PATH, b'{"model": "chat-a", "messages": [{"role": "user", "content": "hi"}], "\\ud800": 1}'),
])
def test_lone_surrogates_are_refused_or_served(harness: Harness, path: str, body: bytes) -> None:
    check(harness.post(path, body))


# The tier alias scores the messages' text before the schema validates them: scoring must stay
# linear in the text's length (a quadratic regex blocks the router's event loop for everyone).
@pytest.mark.parametrize("text", ["\n" * 24_000, " \n" * 12_000, "a" * 24_000, "1" * 24_000, "- " * 12_000])
def test_tier_scoring_of_long_text_is_fast(harness: Harness, text: str) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "max_tokens": 2}
    started = time.perf_counter()
    response = harness.post(CHAT_PATH, body)
    elapsed_s = time.perf_counter() - started
    check(response)
    assert elapsed_s < SLOW_REQUEST_S, f"{elapsed_s:.1f}s for {len(text)} characters"


# --- properties: headers, methods, paths -----------------------------------------------------

HEADER_BYTES = st.binary(max_size=300) | st.sampled_from([
    b"Bearer x\r\nX-Injected: 1", b"Bearer \r\n\r\nHTTP/1.1 200 OK", b"Bearer " + b"A" * 65536, b"Bearer",
    b"Bearer ", b"bearer " + API_KEY.key.encode() + b"\r\n", b"Basic YWxhZGRpbjpvcGVuc2VzYW1l", b"\x00\x00",
    "Bearer frg-ünïcødé".encode("latin-1", "replace"), "Bearer frg-😀".encode(), b"Bearer frg-" + b"0" * 12 + b".x",
    b"Bearer frg-" + API_KEY.key_id.encode() + b"." + b"A" * 200, b"Bearer " + API_KEY.key.encode()[:-1],
    b"Bearer " + ADMIN_KEY.encode() + b"\x00", b"Bearer\t" + API_KEY.key.encode(),
])
CONTENT_TYPES = st.sampled_from([
    b"application/json", b"text/plain", b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded",
    b"application/json; charset=utf-16", b"", b"\xff\xfe", b"application/json\r\nX-Injected: 1",
]) | st.binary(max_size=50)
CONTENT_LENGTHS = st.sampled_from([b"-1", b"0", b"1", b"abc", b"\xb2", "١٢".encode(), b"1e3", b" 12", b"99999999999999999999",
                                   b"+5", b"0x10", b""])
OTHER_HEADERS = st.sampled_from([b"x-forwarded-for", b"host", b"transfer-encoding", b"x-request-id", b"cookie",
                                 b"accept", b"accept-encoding", b"expect", b"x-frugal-pool", b"cache-control"])


def _raw_headers(authorization: bytes | None, content_type: bytes | None, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    headers = [(b"authorization", authorization)] if authorization is not None else []
    if content_type is not None:
        headers.append((b"content-type", content_type))
    return headers + extra


@settings(PROPERTY_SETTINGS, max_examples=150)
@given(
    path=st.sampled_from(POST_ROUTES + ("/v1/usage", "/admin/keys", "/admin/status", "/v1/models")),
    authorization=st.none() | HEADER_BYTES,
    content_type=st.none() | CONTENT_TYPES,
    extra=st.lists(st.tuples(OTHER_HEADERS, HEADER_BYTES), max_size=3),
    content_length=st.none() | CONTENT_LENGTHS,
)
def test_hostile_headers(
    harness: Harness, path: str, authorization: bytes | None, content_type: bytes | None, extra: list,
    content_length: bytes | None,
) -> None:
    method = "POST" if path in POST_ROUTES else "GET"
    headers = _raw_headers(authorization, content_type, extra)
    if content_length is not None:
        headers.append((b"content-length", content_length))
    check(harness.send(method, path, content=dumps(VALID_BODIES.get(path, {})), headers=headers))


ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"]


def test_every_method_on_every_route(harness: Harness) -> None:
    for path in POST_ROUTES + GET_ROUTES + ("/admin/keys/0123456789ab", "/admin/tenants/acme2"):
        for method in ALL_METHODS:
            response = harness.send(method, path, headers={"authorization": "Bearer nope"})
            check(response)
            assert response.status_code != 200 or method in ("GET", "HEAD"), (method, path)


def test_get_on_post_routes_is_405(harness: Harness) -> None:
    for path in POST_ROUTES:
        response = harness.send("GET", path)
        check(response)
        assert response.status_code == 405 and response.headers.get("allow") == "POST"


PATH_SEGMENTS = st.text(max_size=40) | st.sampled_from(
    ["..", "%2e%2e", "%00", "a" * 5000, "%ff%fe", "0123456789ab", "acme", "%0d%0aX-Injected:%201", "\u202e", "~"]
)


def test_hostile_paths_and_queries(harness: Harness) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}

    @PROPERTY_SETTINGS
    @given(
        route=st.sampled_from(["/admin/keys/{}", "/admin/tenants/{}", "/v1/{}", "/{}", "/v1/chat/{}", "/admin/{}"]),
        segment=PATH_SEGMENTS,
        query=st.dictionaries(st.sampled_from(["start", "end", "group_by", "format", "period", "tenant_id", "x", ""]),
                              PATH_SEGMENTS, max_size=4),
        method=st.sampled_from(["GET", "DELETE", "PATCH", "PUT", "POST"]),
        body=JSON_VALUES,
    )
    def run(route: str, segment: str, query: dict[str, str], method: str, body: Any) -> None:
        if segment in (API_KEY.key_id, TENANT_ID) and method != "GET":
            return  # the normal key and tenant must keep working: changing them is not hostile input
        # Percent-encoded as a client must send it; the hand-made escapes ("%0d%0a") stay as they are.
        url = httpx.URL("http://test" + route.format(quote(segment, safe="%")), params=query)
        check(harness.send(method, str(url), headers=admin, content=dumps(body)))

    run()


@given(body=JSON_VALUES | st.fixed_dictionaries(
    {}, optional={"tenant_id": PATH_SEGMENTS | JSON_VALUES, "tier": st.sampled_from(["free", "paid", "vip", "none"]) | JSON_VALUES,
                  "name": TEXT | JSON_VALUES, "revoked": JSON_VALUES, "monthly_budget_usd": EDGE_NUMBERS | JSON_VALUES}))
@PROPERTY_SETTINGS
def test_admin_bodies(harness: Harness, body: Any) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    if isinstance(body, dict) and body.get("tenant_id") == TENANT_ID:
        return  # see test_hostile_paths_and_queries
    for method, path in (("POST", "/admin/keys"), ("PUT", "/admin/tenants/other"), ("PATCH", "/admin/keys/0123456789ab")):
        check(harness.send(method, path, content=dumps(body), headers=admin))


# --- the body limit ----------------------------------------------------------------------------


class CountingBody:
    """A request body sent in chunks, counting how many chunks the server pulled."""

    def __init__(self, total_bytes: int, chunk_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.chunk_bytes = chunk_bytes
        self.num_pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = b'{"model": "chat-a", "messages": [{"role": "user", "content": "'
        sent = 0
        while sent < self.total_bytes:
            self.num_pulled += 1
            chunk = head if sent == 0 else b"x" * min(self.chunk_bytes, self.total_bytes - sent)
            sent += len(chunk)
            yield chunk
        yield b'"}]}'


@settings(max_examples=40, deadline=None)
@given(
    excess=st.integers(1, 3 * MAX_BODY_BYTES),
    chunk_bytes=st.integers(256, 16 * 1024),
    declared=st.booleans(),
    path=st.sampled_from(POST_ROUTES),
)
def test_bodies_over_the_limit_are_refused_early(harness: Harness, excess: int, chunk_bytes: int, declared: bool, path: str) -> None:
    total = MAX_BODY_BYTES + excess
    body = CountingBody(total, chunk_bytes)
    headers = user_headers()
    if declared:
        headers["content-length"] = str(total + 4)
    response = harness.send("POST", path, content=body, headers=headers)
    check(response)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    if declared:
        assert body.num_pulled == 0  # refused on the header alone
    else:
        # The router stops pulling once it holds more than the limit: one chunk past it at most.
        assert body.num_pulled <= MAX_BODY_BYTES // chunk_bytes + 2


def test_a_lying_content_length_does_not_get_past_the_limit(harness: Harness) -> None:
    body = CountingBody(4 * MAX_BODY_BYTES, 4096)
    headers = {**user_headers(), "content-length": "10"}
    response = harness.send("POST", CHAT_PATH, content=body, headers=headers)
    check(response)
    assert response.status_code == 413 and body.num_pulled <= MAX_BODY_BYTES // 4096 + 2


def test_empty_bodies(harness: Harness) -> None:
    for path in POST_ROUTES + ("/admin/keys",):
        for content_length in (None, "0"):
            headers = {"authorization": f"Bearer {ADMIN_KEY if path.startswith('/admin') else API_KEY.key}"}
            if content_length is not None:
                headers["content-length"] = content_length
            response = harness.send("POST", path, content=b"", headers=headers)
            check(response)
            assert response.status_code == 400
