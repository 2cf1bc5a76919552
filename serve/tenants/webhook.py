"""Delivering alerts to a webhook without ever blocking the request path.

``notify`` only enqueues (bounded); one background task POSTs each alert as JSON with a
timeout, retrying connection errors, 429 and 5xx with exponential backoff. A full queue or an
alert that exhausted its attempts is logged as a warning and counted (``num_dropped``,
``num_failed``); a 4xx other than 429 is not retried (the receiver rejected the payload).
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from pydantic import BaseModel

from serve.constants import DRAIN_ON_CLOSE_TIMEOUT_S, WEBHOOK_BACKOFF_S

logger = logging.getLogger(__name__)


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        timeout_s: float,
        max_attempts: int,
        queue_size: int,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_s: float = WEBHOOK_BACKOFF_S,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.transport = transport
        self.queue: asyncio.Queue[BaseModel] = asyncio.Queue(maxsize=queue_size)
        self.client: httpx.AsyncClient | None = None
        self._worker: asyncio.Task[None] | None = None
        self.num_sent = 0
        self.num_failed = 0
        self.num_dropped = 0

    async def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport)
        self._worker = asyncio.create_task(self._run(), name="frugal-webhook")

    def notify(self, payload: BaseModel) -> None:
        """Queue ``payload`` for delivery; returns at once."""
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.num_dropped += 1
            logger.warning("webhook queue full (%d): alert dropped: %s", self.queue.maxsize, payload.model_dump_json())

    async def drain(self) -> None:
        """Wait until every queued alert was delivered or given up (tests, shutdown)."""
        await self.queue.join()

    async def close(self) -> None:
        if self._worker is not None:
            try:
                await asyncio.wait_for(self.queue.join(), DRAIN_ON_CLOSE_TIMEOUT_S)
            except TimeoutError:
                logger.warning("webhook: %d alerts undelivered at shutdown", self.queue.qsize())
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def _run(self) -> None:
        while True:
            payload = await self.queue.get()
            try:
                await self._deliver(payload)
            finally:
                self.queue.task_done()

    async def _deliver(self, payload: BaseModel) -> None:
        assert self.client is not None
        body = payload.model_dump(mode="json")
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self.client.post(self.url, json=body)
                if response.status_code < 300:
                    self.num_sent += 1
                    return
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            except httpx.HTTPError as exc:
                last = repr(exc)
            if attempt < self.max_attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        self.num_failed += 1
        logger.warning("webhook %s: alert not delivered (%s): %s", self.url, last, payload.model_dump_json())
