"""What a cached answer is keyed on, and which requests may be cached at all.

The exact key is a SHA-256 over the canonical JSON of the request body minus the fields
that cannot change the output (``NON_OUTPUT_FIELDS``: stream flags, the ``cache`` controls,
ids and scheduling hints). Everything else is in the key: the model, every message
(the system prompt included) or the prompt, every sampling parameter, tools, response
format and any field this module does not know, so an unknown parameter can only split
entries, never merge them. Integral floats among the top-level parameters are written as
integers (``temperature: 0`` and ``0.0`` are one key); nothing else is normalised.

Store keys carry the namespace as a hash, so no namespace string (whatever characters it
holds) can collide with another or reach into another's keys.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from serve.constants import SEMANTIC_MAX_TEXT_CHARS

CacheEndpoint = Literal["chat", "completion"]

# Fields that change how an answer is delivered or accounted, never what it says.
NON_OUTPUT_FIELDS = frozenset(
    {"stream", "stream_options", "cache", "user", "priority", "request_id", "stream_interval", "metadata", "store", "service_tier"}
)
# Outputs an entry cannot replay (log-probabilities, token ids, transfer handles): requests
# asking for them bypass the cache.
UNREPLAYABLE_FIELDS = (
    "logprobs",
    "prompt_logprobs",
    "return_token_ids",
    "return_token_offsets",
    "return_prompt_text",
    "return_mm_kwargs",
    "kv_transfer_params",
    "ec_transfer_params",
)


def _canonical(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def digest(obj: dict[str, Any]) -> str:
    """Hex SHA-256 of ``obj``'s canonical JSON: sorted keys, and integral floats among its
    top-level values (the sampling parameters) written as integers. Nested values are taken
    as they are: a ``0.0`` deep in a tool schema splits entries from ``0``, never merges."""
    canonical = {k: _canonical(v) for k, v in obj.items()}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _output_fields(endpoint: CacheEndpoint, data: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in data.items() if k not in NON_OUTPUT_FIELDS}
    fields["__endpoint__"] = endpoint
    return fields


def request_digest(endpoint: CacheEndpoint, data: dict[str, Any]) -> str:
    """The exact key of a request body (see the module docstring)."""
    return digest(_output_fields(endpoint, data))


def unreplayable_field(data: dict[str, Any]) -> str | None:
    """The first field asking for an output a cached entry cannot replay, else None."""
    return next((f for f in UNREPLAYABLE_FIELDS if data.get(f) is not None and data.get(f) is not False), None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_deterministic(data: dict[str, Any]) -> bool:
    """Whether the request asks for a reproducible answer: temperature 0, ``top_k`` 1, beam
    search, or a fixed integer ``seed``. An absent temperature is not 0 (the engine's
    default, often the model's generation config, applies)."""
    temperature = data.get("temperature")
    if _is_number(temperature) and temperature == 0:
        return True
    if data.get("top_k") == 1 and not isinstance(data.get("top_k"), bool):
        return True
    if data.get("use_beam_search") is True:
        return True
    seed = data.get("seed")
    return isinstance(seed, int) and not isinstance(seed, bool)


def normalise_text(text: str) -> str:
    """NFKC, whitespace runs collapsed to one space, stripped; case is kept (the guard reads it)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def message_text(content: Any) -> str | None:
    """A message's content as text: a string, or a list made only of text parts; else None."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(content) and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    return None


@dataclass(frozen=True)
class SemanticQuery:
    """The part of a chat request the semantic cache compares (``text``, the normalised last
    user turn) and the part that must be identical (``scope``, a digest of everything else)."""

    scope: str
    text: str


def semantic_query(endpoint: CacheEndpoint, data: dict[str, Any]) -> SemanticQuery | None:
    """The semantic view of a chat request whose last message is a user turn of text no
    longer than ``SEMANTIC_MAX_TEXT_CHARS``; None for anything else (completions included)."""
    messages = data.get("messages")
    if endpoint != "chat" or not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    raw = message_text(last.get("content"))
    if raw is None:
        return None
    text = normalise_text(raw)
    if not text or len(text) > SEMANTIC_MAX_TEXT_CHARS:
        return None
    context = _output_fields(endpoint, data)
    context["messages"] = messages[:-1]
    context["__last__"] = {k: v for k, v in last.items() if k != "content"}
    return SemanticQuery(scope=digest(context), text=text)


def namespace_id(namespace: str) -> str:
    """A fixed-length hex id of a namespace string: distinct namespaces never share keys."""
    raw = namespace.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


def entry_key(prefix: str, namespace: str, request_digest_hex: str) -> str:
    return f"{prefix}:{namespace_id(namespace)}:e:{request_digest_hex}"


def scope_key(prefix: str, namespace: str, scope: str) -> str:
    # The braces are a Redis hash tag: a scope's keys (hash and log) share one cluster slot.
    return f"{prefix}:{namespace_id(namespace)}:s:{{{scope}}}"
