"""serve/cache/keys.py (what the key covers, who may be cached) and serve/cache/controls.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serve.cache.controls import CacheControls, take_cache_controls
from serve.cache.keys import (
    entry_key,
    is_deterministic,
    namespace_id,
    request_digest,
    scope_key,
    semantic_query,
    unreplayable_field,
)
from serve.router.errors import FrugalError

CHAT: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Spain?"},
    ],
    "temperature": 0,
    "max_tokens": 32,
}
COMPLETION: dict[str, Any] = {"model": "m", "prompt": "Once upon a time", "temperature": 0, "max_tokens": 16}

# Every sampling parameter of vLLM's chat and completion requests, with a non-default value.
SAMPLING = {
    "temperature": 0.7, "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": 7, "n": 2, "max_tokens": 5,
    "max_completion_tokens": 5, "presence_penalty": 0.5, "frequency_penalty": 0.5, "repetition_penalty": 1.1,
    "stop": ["\n"], "stop_token_ids": [2], "logit_bias": {"50": 1}, "min_tokens": 2, "ignore_eos": True,
    "bad_words": ["x"], "allowed_token_ids": [1, 2], "length_penalty": 0.9, "use_beam_search": True,
    "include_stop_str_in_output": True, "skip_special_tokens": False, "spaces_between_special_tokens": False,
    "truncate_prompt_tokens": 8, "response_format": {"type": "json_object"}, "structured_outputs": {"regex": "a+"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "tool_choice": "none",
    "chat_template_kwargs": {"enable_thinking": False}, "add_generation_prompt": False, "echo": True,
    "reasoning_effort": "low", "vllm_xargs": {"a": 1}, "suffix": "end",
}


def _with(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out.update(changes)
    return out


@pytest.mark.parametrize("name", sorted(SAMPLING))
def test_every_sampling_parameter_changes_the_key(name: str) -> None:
    for endpoint, data in (("chat", CHAT), ("completion", COMPLETION)):
        assert request_digest(endpoint, _with(data, **{name: SAMPLING[name]})) != request_digest(endpoint, data)


def test_messages_system_prompt_model_and_prompt_change_the_key() -> None:
    base = request_digest("chat", CHAT)
    system = copy.deepcopy(CHAT)
    system["messages"][0]["content"] = "You are verbose."
    earlier = copy.deepcopy(CHAT)
    earlier["messages"][1]["content"] = "Capital of Italy?"
    role = copy.deepcopy(CHAT)
    role["messages"][0]["role"] = "developer"
    for changed in (system, earlier, role, _with(CHAT, model="other"), _with(CHAT, messages=CHAT["messages"][1:])):
        assert request_digest("chat", changed) != base
    assert request_digest("completion", _with(COMPLETION, prompt="Once upon a time,")) != request_digest("completion", COMPLETION)
    # The same fields on the other endpoint are another key.
    assert request_digest("chat", COMPLETION) != request_digest("completion", COMPLETION)


def test_stream_flags_cache_field_and_ids_do_not_change_the_key() -> None:
    base = request_digest("chat", CHAT)
    same = _with(
        CHAT, stream=True, stream_options={"include_usage": True}, cache={"ttl": 5}, user="u-1",
        request_id="r", priority=3, stream_interval=8,
    )
    assert request_digest("chat", same) == base
    # Key order and integral floats do not matter either.
    reordered = dict(reversed(list(_with(CHAT, temperature=0.0, max_tokens=32.0).items())))
    assert request_digest("chat", reordered) == base


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=8) | st.booleans(), max_size=4))
def test_unknown_fields_are_part_of_the_key(extra: dict[str, Any]) -> None:
    data = _with(COMPLETION, **{f"x_{k}": v for k, v in extra.items()})
    assert (request_digest("completion", data) == request_digest("completion", COMPLETION)) == (not extra)


def test_namespaces_are_isolated_and_cannot_collide() -> None:
    digest = request_digest("chat", CHAT)
    keys = {entry_key("p", ns, digest) for ns in ("tenant-a", "tenant-b", "", "a:e:b", "tenant-a ", "tenant-A")}
    assert len(keys) == 6
    # A namespace crafted to look like another's key prefix does not reach into it.
    crafted = f"{namespace_id('tenant-a')}:e:{digest}"
    assert entry_key("p", crafted, digest) != entry_key("p", "tenant-a", digest)
    assert all(len(namespace_id(ns)) == 64 for ns in ("", "x" * 1000, "\ud800"))
    assert scope_key("p", "tenant-a", "s") != scope_key("p", "tenant-b", "s")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"temperature": 0.7, "seed": 3}, True),
        ({"seed": 0}, True),
        ({"top_k": 1, "temperature": 1}, True),
        ({"use_beam_search": True}, True),
        ({}, False),  # the engine's default temperature applies
        ({"temperature": 0.7}, False),
        ({"temperature": 0.7, "seed": None}, False),
        ({"seed": True}, False),
        ({"seed": "3"}, False),
        ({"temperature": False}, False),
    ],
)
def test_is_deterministic(changes: dict[str, Any], expected: bool) -> None:
    data = {k: v for k, v in COMPLETION.items() if k != "temperature"} | changes
    assert is_deterministic(data) is expected


def test_unreplayable_outputs() -> None:
    assert unreplayable_field(CHAT) is None
    assert unreplayable_field(_with(CHAT, logprobs=False)) is None
    assert unreplayable_field(_with(CHAT, logprobs=True, top_logprobs=2)) == "logprobs"
    assert unreplayable_field(_with(COMPLETION, logprobs=0)) == "logprobs"
    assert unreplayable_field(_with(COMPLETION, prompt_logprobs=1)) == "prompt_logprobs"
    assert unreplayable_field(_with(CHAT, return_token_ids=True)) == "return_token_ids"


def test_semantic_query_scope_and_text() -> None:
    query = semantic_query("chat", CHAT)
    assert query is not None and query.text == "And of Spain?"
    reworded = copy.deepcopy(CHAT)
    reworded["messages"][-1]["content"] = "  What   about Spain?\n"
    other = semantic_query("chat", reworded)
    assert other is not None and other.scope == query.scope and other.text == "What about Spain?"
    # Anything but the last user turn is the scope.
    system = copy.deepcopy(CHAT)
    system["messages"][0]["content"] = "You are verbose."
    for changed in (system, _with(CHAT, temperature=0.5), _with(CHAT, max_tokens=8), _with(CHAT, model="x")):
        found = semantic_query("chat", changed)
        assert found is not None and found.scope != query.scope
    parts = copy.deepcopy(CHAT)
    parts["messages"][-1]["content"] = [{"type": "text", "text": "And of Spain?"}]
    assert semantic_query("chat", parts) is not None


def test_semantic_query_only_for_short_text_user_turns() -> None:
    assert semantic_query("completion", COMPLETION) is None
    assistant_last = _with(CHAT, messages=CHAT["messages"][:3])
    assert semantic_query("chat", assistant_last) is None
    image = copy.deepcopy(CHAT)
    image["messages"][-1]["content"] = [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "what?"}]
    assert semantic_query("chat", image) is None
    long = copy.deepcopy(CHAT)
    long["messages"][-1]["content"] = "word " * 400
    assert semantic_query("chat", long) is None


def test_take_cache_controls_pops_and_parses() -> None:
    data = {"model": "m", "cache": {"no-cache": True, "no-store": True, "ttl": 60, "s-maxage": 5, "allow-nondeterministic": True}}
    controls = take_cache_controls(data)
    assert "cache" not in data
    assert controls == CacheControls(**{"no-cache": True, "no-store": True, "ttl": 60.0, "s-maxage": 5.0, "allow-nondeterministic": True})
    assert take_cache_controls({"model": "m"}) == CacheControls()
    assert take_cache_controls({"cache": None}) == CacheControls()
    assert take_cache_controls({"cache": {}}) == CacheControls()


@pytest.mark.parametrize(
    "raw",
    [
        "no-cache", [], 1, True,
        {"no-cache": "true"}, {"no-cache": 1}, {"no-store": None}, {"ttl": "60"}, {"ttl": True}, {"ttl": 0},
        {"ttl": -5}, {"ttl": 10**9}, {"s-maxage": -1}, {"no_cache": True}, {"namespace": "other-tenant"},
    ],
)
def test_bad_cache_controls_are_400_naming_cache(raw: Any) -> None:
    data = {"model": "m", "cache": raw}
    with pytest.raises(FrugalError) as err:
        take_cache_controls(data)
    assert err.value.body.status_code == 400 and err.value.body.param == "cache"
    assert "cache" in err.value.body.message


CONFIG_YAML = """
enabled: true
redis_url: redis://127.0.0.1:6379/0
ttl_s: 3600
max_entries: 10000
max_bytes: 268435456
cache_nondeterministic: false
socket_timeout_s: 0.1
retry_interval_s: 1.0
semantic:
  embedding_model: all-MiniLM-L6-v2
  embed_timeout_s: 0.5
  models:
    SmolLM2-135M-Instruct: {threshold: 0.84, guard: true}
"""


def test_cache_config_yaml_and_unknown_keys() -> None:
    import yaml
    from pydantic import ValidationError

    from serve.cache.config import CacheConfig

    config = CacheConfig.model_validate(yaml.safe_load(CONFIG_YAML))
    assert config.semantic.models["SmolLM2-135M-Instruct"].threshold == 0.84
    assert CacheConfig().enabled is False and CacheConfig().redis_url is None
    with pytest.raises(ValidationError, match="semantic.models.m.treshold"):
        CacheConfig.model_validate({"semantic": {"models": {"m": {"treshold": 0.9}}}})
    with pytest.raises(ValidationError, match="redis_url"):
        CacheConfig(redis_url="localhost:6379")
    with pytest.raises(ValidationError):
        CacheConfig(max_bytes=10, max_entry_bytes=100)
