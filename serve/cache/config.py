"""The response cache's configuration (``cache:`` in the Frugal YAML).

Validated once at the edge like the rest of the config: unknown keys fail with their path.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve.constants import (
    CACHE_COALESCE_WAIT_S,
    CACHE_KEY_PREFIX,
    CACHE_MAX_BYTES,
    CACHE_MAX_CONNECTIONS,
    CACHE_MAX_ENTRIES,
    CACHE_MAX_ENTRY_BYTES,
    CACHE_MAX_TTL_S,
    CACHE_RETRY_INTERVAL_S,
    CACHE_SOCKET_TIMEOUT_S,
    CACHE_TTL_S,
    CACHE_WARNING_INTERVAL_S,
    SEMANTIC_EMBED_TIMEOUT_S,
    SEMANTIC_EMBEDDING_MODEL,
    SEMANTIC_INDEX_MAX_VECTORS,
    SEMANTIC_MAX_VECTORS_PER_SCOPE,
    SEMANTIC_THRESHOLD,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticModelConfig(_Strict):
    """Semantic caching for one served model (opt-in per model)."""

    threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        default=SEMANTIC_THRESHOLD, description="least cosine similarity of the last user turns for a hit"
    )
    guard: bool = Field(default=True, description="also require equal numbers, negation, units, entities (serve/cache/guard.py)")


class SemanticConfig(_Strict):
    embedding_model: str = Field(default=SEMANTIC_EMBEDDING_MODEL, description="the served embedding model the router calls")
    embed_timeout_s: Annotated[float, Field(gt=0)] = SEMANTIC_EMBED_TIMEOUT_S
    max_vectors_per_scope: Annotated[int, Field(ge=1)] = SEMANTIC_MAX_VECTORS_PER_SCOPE
    index_max_vectors: Annotated[int, Field(ge=1)] = Field(
        default=SEMANTIC_INDEX_MAX_VECTORS, description="vectors one router replica holds in memory, over all scopes"
    )
    models: dict[str, SemanticModelConfig] = Field(default_factory=dict, description="served model name -> its semantic settings")


class CacheConfig(_Strict):
    enabled: bool = False
    redis_url: str | None = Field(default=None, description="Redis when set, else an in-process LRU per router replica")
    ttl_s: Annotated[float, Field(gt=0, le=CACHE_MAX_TTL_S)] = CACHE_TTL_S
    max_entries: Annotated[int, Field(ge=1)] = Field(default=CACHE_MAX_ENTRIES, description="in-process store only")
    max_bytes: Annotated[int, Field(ge=1)] = Field(default=CACHE_MAX_BYTES, description="in-process store only")
    max_entry_bytes: Annotated[int, Field(ge=1)] = Field(default=CACHE_MAX_ENTRY_BYTES, description="larger answers are not stored")
    cache_nondeterministic: bool = Field(
        default=False, description="also cache requests without temperature 0 or a fixed seed"
    )
    key_prefix: str = Field(default=CACHE_KEY_PREFIX, min_length=1, description="change it to drop every entry")
    socket_timeout_s: Annotated[float, Field(gt=0)] = CACHE_SOCKET_TIMEOUT_S
    max_connections: Annotated[int, Field(ge=1)] = CACHE_MAX_CONNECTIONS
    retry_interval_s: Annotated[float, Field(ge=0)] = Field(
        default=CACHE_RETRY_INTERVAL_S, description="after a Redis failure, bypass the cache this long before trying again"
    )
    warning_interval_s: Annotated[float, Field(ge=0)] = CACHE_WARNING_INTERVAL_S
    coalesce: bool = Field(
        default=True, description="identical cacheable misses on one replica: one goes to the engine, the rest wait for its answer"
    )
    coalesce_streams: bool = Field(
        default=False, description="streamed requests wait too (they trade time to first token for engine time)"
    )
    coalesce_wait_s: Annotated[float, Field(gt=0)] = Field(
        default=CACHE_COALESCE_WAIT_S, description="the longest a request waits for the identical one in flight"
    )
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)

    @model_validator(mode="after")
    def _bounds(self) -> CacheConfig:
        if self.max_entry_bytes > self.max_bytes and self.redis_url is None:
            raise ValueError("max_entry_bytes must not exceed max_bytes")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return self
