"""The ledger: one record per finished request, written exactly once, never lost to a short outage.

Contracts:
- ``record`` returns at once: the record joins a bounded in-memory buffer that a background
  task writes to the store in batches, in order. While the store is down the buffer holds
  up to ``buffer_size`` records and the writer retries with backoff; past that, new records
  are dropped with a warning and counted (``num_dropped``).
- The store writes each request id at most once (a retry after an unanswered write is a
  no-op), so a record reaches the store exactly once unless dropped.
- ``flush`` waits until everything recorded so far is written; ``close`` flushes for up to
  ``DRAIN_ON_CLOSE_TIMEOUT_S`` and reports what it could not write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from itertools import islice

from serve.constants import (
    DRAIN_ON_CLOSE_TIMEOUT_S,
    LEDGER_BATCH_MAX_RECORDS,
    LEDGER_LINGER_S,
    LEDGER_RETRY_MAX_S,
    LEDGER_RETRY_MIN_S,
)
from serve.tenants.ledger_record import LedgerRecord
from serve.tenants.ledger_store import LedgerStore
from serve.tenants.redis_client import STORE_ERRORS, describe

logger = logging.getLogger(__name__)

__all__ = ["Ledger", "LedgerRecord"]


class Ledger:
    def __init__(self, store: LedgerStore, buffer_size: int) -> None:
        self.store = store
        self.buffer_size = buffer_size
        self.buffer: deque[LedgerRecord] = deque()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._writer: asyncio.Task[None] | None = None
        self.num_written = 0
        self.num_dropped = 0
        self.num_write_errors = 0

    async def start(self) -> None:
        await self.store.start()
        self._writer = asyncio.create_task(self._write_forever(), name="frugal-ledger-writer")

    async def record(self, record: LedgerRecord) -> None:
        """Queue ``record`` for writing (see the module's contract)."""
        if len(self.buffer) >= self.buffer_size:
            self.num_dropped += 1
            logger.warning(
                "ledger buffer full (%d records, store unavailable): dropped %s",
                self.buffer_size,
                record.model_dump_json(),
            )
            return
        self.buffer.append(record)
        self._empty.clear()
        self._wake.set()

    async def flush(self) -> None:
        await self._empty.wait()

    async def close(self) -> None:
        if self._writer is not None:
            try:
                await asyncio.wait_for(self.flush(), DRAIN_ON_CLOSE_TIMEOUT_S)
            except TimeoutError:
                logger.warning("ledger: %d records not written at shutdown (store unavailable)", len(self.buffer))
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        await self.store.close()

    async def _write_forever(self) -> None:
        backoff = LEDGER_RETRY_MIN_S
        failing = False
        while True:
            await self._wake.wait()
            await asyncio.sleep(LEDGER_LINGER_S)  # let a batch gather
            self._wake.clear()
            while self.buffer:
                batch = list(islice(self.buffer, LEDGER_BATCH_MAX_RECORDS))
                try:
                    await self.store.append(batch)
                except STORE_ERRORS as exc:
                    self.num_write_errors += 1
                    if not failing:
                        logger.warning(
                            "ledger store unavailable (%s): buffering %d records", describe(exc), len(self.buffer)
                        )
                    failing = True
                    await asyncio.sleep(backoff)
                    backoff = min(LEDGER_RETRY_MAX_S, backoff * 2)
                    continue
                except Exception:
                    # A bug, not an outage: retrying would block every later record behind it.
                    logger.exception("ledger: dropping %d records the store refused", len(batch))
                    self.num_dropped += len(batch)
                else:
                    self.num_written += len(batch)
                if failing:
                    logger.warning("ledger store back: writing %d buffered records", len(self.buffer))
                failing, backoff = False, LEDGER_RETRY_MIN_S
                for _ in batch:
                    self.buffer.popleft()
            self._empty.set()
