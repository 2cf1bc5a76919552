"""Where ledger records go: the Protocol, and the append-only JSONL file of the embedded default.

``serve.tenants.ledger_redis.RedisLedgerStore`` is the shared implementation (Redis Streams).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from serve.tenants.ledger_record import LedgerRecord
from serve.tenants.units import day_of
from serve.tenants.usage import UsageRow, increments

logger = logging.getLogger(__name__)


class LedgerStore(Protocol):
    async def start(self) -> None: ...

    async def append(self, records: Sequence[LedgerRecord]) -> int:
        """Write the records whose request id was never written; the number written.
        Each record and its usage aggregate are written together or not at all; raises the
        store's errors (then the caller retries the batch, which is safe)."""

    async def usage(self, days: Sequence[str], tenant_id: str | None = None) -> list[UsageRow]:
        """The aggregates of those days (UTC "YYYY-MM-DD"), of one tenant or all."""

    async def records(self, since_s: float, until_s: float, tenant_id: str | None = None) -> list[LedgerRecord]:
        """The records that finished in [since_s, until_s), oldest write first."""

    async def close(self) -> None: ...


class LocalLedgerStore:
    """An append-only JSONL file (``<state_dir>/<file_name>``), or memory without a state dir.

    At start the file is read once to rebuild the request ids written and the aggregates; a
    torn last line (a crash mid-write) is skipped with a warning.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.seen: set[str] = set()
        self.rows: dict[tuple[str, str, str], UsageRow] = {}
        self.memory: list[LedgerRecord] = []
        self.num_torn_lines = 0

    async def start(self) -> None:
        if self.path is None or not self.path.exists():
            return
        with self.path.open() as f:
            for number, line in enumerate(f, 1):
                try:
                    record = LedgerRecord.model_validate_json(line)
                except ValueError:
                    self.num_torn_lines += 1
                    logger.warning("ledger %s: skipping unreadable line %d", self.path, number)
                    continue
                if record.request_id not in self.seen:
                    self._count(record)
        with self.path.open("rb+") as f:
            # End a torn last line, so the next record starts on a line of its own.
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        logger.info("ledger %s: %d records", self.path, len(self.seen))

    async def append(self, records: Sequence[LedgerRecord]) -> int:
        new: list[LedgerRecord] = []
        ids: set[str] = set()
        for record in records:
            if record.request_id not in self.seen and record.request_id not in ids:
                ids.add(record.request_id)
                new.append(record)
        if not new:
            return 0
        if self.path is None:
            self.memory.extend(new)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write("".join(r.model_dump_json() + "\n" for r in new))
                f.flush()
                os.fsync(f.fileno())
        for record in new:
            self._count(record)
        return len(new)

    async def usage(self, days: Sequence[str], tenant_id: str | None = None) -> list[UsageRow]:
        wanted = set(days)
        return [
            row for (day, tenant, _), row in self.rows.items()
            if day in wanted and (tenant_id is None or tenant == tenant_id)
        ]

    async def records(self, since_s: float, until_s: float, tenant_id: str | None = None) -> list[LedgerRecord]:
        if self.path is None:
            source = list(self.memory)
        elif self.path.exists():
            with self.path.open() as f:
                source = []
                for line in f:
                    try:
                        source.append(LedgerRecord.model_validate_json(line))
                    except ValueError:
                        continue  # counted at start
        else:
            source = []
        return [
            r for r in source
            if since_s <= r.time_s < until_s and (tenant_id is None or r.tenant_id == tenant_id)
        ]

    async def close(self) -> None:
        return None

    def _count(self, record: LedgerRecord) -> None:
        self.seen.add(record.request_id)
        key = (day_of(record.time_s), record.tenant_id, record.model)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = UsageRow(*key)
        row.add(increments(record))
