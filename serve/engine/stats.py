"""Wrap an engine's reply stream with the run statistics the router prices it by."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from serve.engine.protocol import Endpoint, Engine, EngineReply, ErrorBody, RunStats


async def run_with_stats(engine: Engine, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]:
    """The engine's replies, then one ``RunStats`` if the run completed without an error.

    ``replica_tokens`` is the growth of the engine's ``tokens_processed`` counter over the
    run: this request's tokens plus those of every request batched with it meanwhile.
    """
    started_s = time.monotonic()
    tokens_before = engine.load().tokens_processed
    failed = False
    replies = engine.generate(endpoint, request, request_id)
    try:
        async for reply in replies:
            failed = failed or isinstance(reply, ErrorBody)
            yield reply
    finally:  # closing this stream early must close (abort) the engine's stream at once
        await replies.aclose()
    if not failed:
        yield RunStats(
            wall_s=time.monotonic() - started_s,
            replica_tokens=engine.load().tokens_processed - tokens_before,
        )
