"""The response cache (exact and semantic) the router consults before dispatch.

The router needs only these names; see ``serve.cache.service`` for the flow.
"""

from serve.cache.config import CacheConfig, SemanticConfig, SemanticModelConfig
from serve.cache.controls import CacheControls, take_cache_controls
from serve.cache.entry import CacheEntry, entry_from_body
from serve.cache.events import CacheEvents, CountingEvents, NullEvents
from serve.cache.recorder import StreamRecorder
from serve.cache.render import render_body, render_stream
from serve.cache.semantic import Embedder
from serve.cache.service import CacheLookup, ResponseCache, build_cache

__all__ = [
    "CacheConfig",
    "CacheControls",
    "CacheEntry",
    "CacheEvents",
    "CacheLookup",
    "CountingEvents",
    "Embedder",
    "NullEvents",
    "ResponseCache",
    "SemanticConfig",
    "SemanticModelConfig",
    "StreamRecorder",
    "build_cache",
    "entry_from_body",
    "render_body",
    "render_stream",
    "take_cache_controls",
]
