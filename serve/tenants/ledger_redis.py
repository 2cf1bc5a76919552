"""The ledger in Redis: a stream of records plus daily aggregates, written once per request id.

One Lua script writes a batch. For each record it claims ``<p>:ledger:seen:<request id>``
with ``SET NX`` and, only if that succeeds, ``XADD``s the record to the stream (auto IDs,
so an ID's time is when it was written, never before the request finished) and adds it to
``<p>:usage:<day>:<tenant>`` (hash ``<metric>|<model>`` -> integer sum) and to the day's
tenant set ``<p>:usage:<day>:tenants``. A batch resent after an unanswered call therefore
writes nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis

from serve.constants import LEDGER_DEDUPE_TTL_S, USAGE_RETENTION_S
from serve.tenants.ledger_record import LedgerRecord
from serve.tenants.units import day_of
from serve.tenants.usage import UsageRow, increments

# Per record: KEYS seen / usage / tenants, ARGV tenant, stream fields and aggregate increments
# as JSON arrays of strings (one argument each: cheaper to send than ~60 small ones).
APPEND_LUA = """
local dedupe_ttl, max_len, usage_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local written = 0
for r = 1, (#KEYS - 1) / 3 do
  local seen, usage, tenants = KEYS[3 * r - 1], KEYS[3 * r], KEYS[3 * r + 1]
  local a = 4 + 3 * (r - 1)
  if redis.call('SET', seen, '1', 'NX', 'EX', dedupe_ttl) then
    local fields = cjson.decode(ARGV[a + 1])
    if max_len > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', max_len, '*', unpack(fields))
    else
      redis.call('XADD', KEYS[1], '*', unpack(fields))
    end
    local incr = cjson.decode(ARGV[a + 2])
    for i = 1, #incr, 2 do
      redis.call('HINCRBY', usage, incr[i], incr[i + 1])
    end
    redis.call('EXPIRE', usage, usage_ttl)
    redis.call('SADD', tenants, ARGV[a])
    redis.call('EXPIRE', tenants, usage_ttl)
    written = written + 1
  end
end
return written
"""

READ_PAGE_RECORDS = 1000


class RedisLedgerStore:
    def __init__(self, redis: Redis, prefix: str, stream: str, max_len: int | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.stream = stream
        self.max_len = max_len or 0
        self._append = redis.register_script(APPEND_LUA)

    def usage_key(self, day: str, tenant_id: str) -> str:
        return f"{self.prefix}:usage:{day}:{tenant_id}"

    def tenants_key(self, day: str) -> str:
        return f"{self.prefix}:usage:{day}:tenants"

    async def start(self) -> None:
        return None

    async def append(self, records: Sequence[LedgerRecord]) -> int:
        if not records:
            return 0
        keys = [self.stream]
        args: list[str | int] = [LEDGER_DEDUPE_TTL_S, self.max_len, USAGE_RETENTION_S]
        for record in records:
            day = day_of(record.time_s)
            keys += [f"{self.prefix}:ledger:seen:{record.request_id}", self.usage_key(day, record.tenant_id),
                     self.tenants_key(day)]
            fields = [item for pair in _fields(record).items() for item in pair]
            sums = increments(record).items()
            incr = [part for name, value in sums for part in (f"{name}|{record.model}", str(value))]
            args += [record.tenant_id, json.dumps(fields), json.dumps(incr)]
        return int(await self._append(keys=keys, args=args))

    async def usage(self, days: Sequence[str], tenant_id: str | None = None) -> list[UsageRow]:
        if tenant_id is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.smembers(self.tenants_key(day))
                members = await pipe.execute()
            pairs = [(day, t) for day, tenants in zip(days, members, strict=True) for t in sorted(tenants)]
        else:
            pairs = [(day, tenant_id) for day in days]
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for day, tenant in pairs:
                pipe.hgetall(self.usage_key(day, tenant))
            hashes = await pipe.execute()
        rows: list[UsageRow] = []
        for (day, tenant), values in zip(pairs, hashes, strict=True):
            by_model: dict[str, UsageRow] = {}
            for field, value in values.items():
                metric, _, model = field.partition("|")
                row = by_model.get(model)
                if row is None:
                    row = by_model[model] = UsageRow(day, tenant, model)
                row.sums[metric] = int(value)
            rows += by_model.values()
        return rows

    async def records(self, since_s: float, until_s: float, tenant_id: str | None = None) -> list[LedgerRecord]:
        # IDs are write times, never earlier than the finish time: start at since_s and read
        # to the end, since buffered records may have been written after until_s.
        out: list[LedgerRecord] = []
        start = str(int(since_s * 1000))
        while True:
            page = await self.redis.xrange(self.stream, min=start, max="+", count=READ_PAGE_RECORDS)
            for _, fields in page:
                record = LedgerRecord.model_validate(_parse(fields))
                if since_s <= record.time_s < until_s and (tenant_id is None or record.tenant_id == tenant_id):
                    out.append(record)
            if len(page) < READ_PAGE_RECORDS:
                return out
            start = "(" + page[-1][0]

    async def close(self) -> None:
        return None


def _fields(record: LedgerRecord) -> dict[str, str]:
    """The record as stream fields: strings, "" for None, "1"/"0" for booleans."""
    out = {}
    for name, value in record.model_dump().items():
        if value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "1" if value else "0"
        else:
            out[name] = repr(value) if isinstance(value, float) else str(value)
    return out


def _parse(fields: dict[str, str]) -> dict[str, object]:
    return {name: (None if value == "" else value) for name, value in fields.items()}
