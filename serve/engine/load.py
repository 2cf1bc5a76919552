"""Engine load as the scheduler sees it: running and waiting requests, KV-cache use.

vLLM reports scheduler statistics to stat loggers after each engine step; ``LoadTracker``
keeps the latest figures. Between steps (an idle engine logs nothing) the count of unfinished
requests is authoritative, so a snapshot never reports work on an engine that has none.
"""

from __future__ import annotations

from typing import Any

from serve.engine.protocol import EngineLoad


class LoadTracker:
    def __init__(self) -> None:
        self.num_running = 0
        self.num_waiting = 0
        self.kv_cache_usage = 0.0
        self.tokens_processed = 0

    def add_tokens(self, num_tokens: int) -> None:
        self.tokens_processed += num_tokens

    def record(self, num_running: int, num_waiting: int, kv_cache_usage: float) -> None:
        self.num_running, self.num_waiting, self.kv_cache_usage = num_running, num_waiting, kv_cache_usage

    def snapshot(self, num_unfinished: int) -> EngineLoad:
        if num_unfinished == 0:
            return EngineLoad(tokens_processed=self.tokens_processed)
        running = min(self.num_running, num_unfinished)
        return EngineLoad(
            num_running=running,
            num_waiting=max(num_unfinished - running, 0),
            kv_cache_usage=self.kv_cache_usage,
            tokens_processed=self.tokens_processed,
        )


def make_load_logger_factory(tracker: LoadTracker) -> Any:
    """A vLLM stat-logger factory feeding ``tracker`` (vLLM's logger interface is imported
    here, not at module import)."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _LoadLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
            if iteration_stats is not None:
                tracker.add_tokens(iteration_stats.num_generation_tokens + iteration_stats.num_prompt_tokens)
            if scheduler_stats is not None:
                tracker.record(
                    scheduler_stats.num_running_reqs,
                    scheduler_stats.num_waiting_reqs,
                    scheduler_stats.kv_cache_usage,
                )

        def log_engine_initialized(self) -> None:
            pass

    return _LoadLogger
