"""The limiter in Redis: the sliding window log of ``serve.tenants.limits`` as Lua scripts.

Per tenant (one hash tag, so a Redis Cluster keeps them on one slot):
- ``<p>:rl:{t}:log``   sorted set, reservation id -> admission time (ms)
- ``<p>:rl:{t}:w``     hash, reservation id -> tokens (reserved, then actual)
- ``<p>:rl:{t}:sum``   the sum of the weights in the log
- ``<p>:mo:{t}:<YYYY-MM>`` hash: requests, billed, cost (nano-USD)
- ``<p>:rl:{t}:pend`` / ``:pendw`` / ``:pends``: budget reservations in flight (id -> lease
  end, id -> nano-USD, their sum), the same structure as the window with lease expiry

The window keys expire 60 s after the last admission, so idle tenants cost nothing. Time is
Redis's own clock (``TIME``), the same for every replica, unless a clock is injected (tests).
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from serve.constants import BUDGET_RESERVATION_LEASE_S, MONTHLY_COUNTER_RETENTION_S, RATE_WINDOW_S
from serve.tenants.limits import UNLIMITED, AdmitResult, LimitSpec, Spend, Verdict, WindowState

VERDICTS: tuple[Verdict, ...] = ("admitted", "requests", "tokens", "too_large", "quota", "budget")

ADMIT_LUA = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
local rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4])
local quota, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local basis, id, tokens, month_ttl = ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local reserve, lease = tonumber(ARGV[11]), tonumber(ARGV[12])
local log, weights, sumkey, month = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pend, pendw, pends = KEYS[5], KEYS[6], KEYS[7]
local windowed = rpm >= 0 or tpm >= 0

-- drop the entries of a log (zset + weights hash + sum) scored <= cutoff; the sum after
local function expire(zset, hash, sum, cutoff)
  local total = tonumber(redis.call('GET', sum) or '0')
  local expired = redis.call('ZRANGEBYSCORE', zset, '-inf', cutoff)
  if #expired > 0 then
    for i = 1, #expired, 1000 do
      local chunk = {unpack(expired, i, math.min(i + 999, #expired))}
      local w = redis.call('HMGET', hash, unpack(chunk))
      for j = 1, #w do total = total - (tonumber(w[j]) or 0) end
      redis.call('HDEL', hash, unpack(chunk))
    end
    redis.call('ZREMRANGEBYSCORE', zset, '-inf', cutoff)
    if total < 0 then total = 0 end
    redis.call('SET', sum, total, 'KEEPTTL')
  end
  return total
end

local count, total, pending = 0, 0, 0
if windowed then
  total = expire(log, weights, sumkey, now - window)
  count = redis.call('ZCARD', log)
end
if budget >= 0 then pending = expire(pend, pendw, pends, now) end

local m = redis.call('HMGET', month, 'requests', basis)
local used, spent = tonumber(m[1]) or 0, tonumber(m[2]) or 0
local verdict, retry = 0, -1
if budget >= 0 and spent + pending >= budget then
  verdict = 5
elseif quota >= 0 and used >= quota then
  verdict = 4
elseif tpm >= 0 and tokens > tpm then
  verdict = 3
elseif rpm >= 0 and count >= rpm then
  verdict = 1
  local e = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
  retry = tonumber(e[2]) + window - now
elseif tpm >= 0 and total + tokens > tpm then
  verdict = 2
  retry = window
  local freed, offset = 0, 0
  while offset < count do
    local e = redis.call('ZRANGE', log, offset, offset + 99, 'WITHSCORES')
    local ids = {}
    for i = 1, #e, 2 do ids[#ids + 1] = e[i] end
    local w = redis.call('HMGET', weights, unpack(ids))
    local found = false
    for i = 1, #ids do
      freed = freed + (tonumber(w[i]) or 0)
      if total - freed + tokens <= tpm then
        retry = tonumber(e[2 * i]) + window - now
        found = true
        break
      end
    end
    if found then break end
    offset = offset + 100
  end
end

if verdict == 0 then
  if windowed then
    redis.call('ZADD', log, now, id)
    redis.call('HSET', weights, id, tokens)
    total = total + tokens
    count = count + 1
    redis.call('SET', sumkey, total, 'PX', window)
    redis.call('PEXPIRE', log, window)
    redis.call('PEXPIRE', weights, window)
  end
  used = redis.call('HINCRBY', month, 'requests', 1)
  redis.call('EXPIRE', month, month_ttl, 'NX')
  if budget >= 0 and reserve > 0 then
    redis.call('ZADD', pend, now + lease, id)
    redis.call('HSET', pendw, id, reserve)
    pending = pending + reserve
    redis.call('SET', pends, pending, 'PX', lease)
    redis.call('PEXPIRE', pend, lease)
    redis.call('PEXPIRE', pendw, lease)
  end
end

local reset = 0
if windowed and count > 0 then
  local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  reset = tonumber(newest[2]) + window - now
end
return {verdict, count, total, reset, used, m[2] or '0', retry, pending}
"""

SETTLE_LUA = """
if redis.call('ZSCORE', KEYS[5], ARGV[1]) then
  local amount = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0')
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('HDEL', KEYS[6], ARGV[1])
  if amount ~= 0 then redis.call('DECRBY', KEYS[7], amount) end
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
  local delta = tonumber(ARGV[2]) - old
  if delta ~= 0 then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
    redis.call('INCRBY', KEYS[3], delta)
  end
end
redis.call('HINCRBY', KEYS[4], 'billed', ARGV[3])
redis.call('HINCRBY', KEYS[4], 'cost', ARGV[4])
redis.call('EXPIRE', KEYS[4], ARGV[5], 'NX')
return redis.call('HMGET', KEYS[4], 'requests', 'billed', 'cost')
"""


class RedisLimiter:
    """Exact across replicas: every check-and-count is one Lua script (see ``serve.tenants.limits``)."""

    def __init__(
        self, redis: Redis, prefix: str, clock: Callable[[], float] | None = None, window_s: float = RATE_WINDOW_S
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self.window_ms = int(window_s * 1000)
        self.lease_ms = int(BUDGET_RESERVATION_LEASE_S * 1000)
        self._admit = redis.register_script(ADMIT_LUA)
        self._settle = redis.register_script(SETTLE_LUA)

    def keys(self, tenant_id: str, period: str) -> list[str]:
        tag = f"{{{tenant_id}}}"
        p = self.prefix
        return [
            f"{p}:rl:{tag}:log",
            f"{p}:rl:{tag}:w",
            f"{p}:rl:{tag}:sum",
            f"{p}:mo:{tag}:{period}",
            f"{p}:rl:{tag}:pend",
            f"{p}:rl:{tag}:pendw",
            f"{p}:rl:{tag}:pends",
        ]

    async def start(self) -> None:
        return None

    async def admit(
        self, tenant_id: str, reservation_id: str, tokens: int, spec: LimitSpec, period: str, reserve_nano_usd: int = 0
    ) -> AdmitResult:
        now_ms = "" if self.clock is None else str(int(self.clock() * 1000))
        args = [
            now_ms,
            self.window_ms,
            _arg(spec.requests_per_minute),
            _arg(spec.tokens_per_minute),
            _arg(spec.monthly_requests),
            _arg(spec.budget_nano_usd),
            spec.budget_basis,
            reservation_id,
            tokens,
            MONTHLY_COUNTER_RETENTION_S,
            reserve_nano_usd,
            self.lease_ms,
        ]
        verdict, count, total, reset_ms, used, spent, retry_ms, pending = await self._admit(
            keys=self.keys(tenant_id, period), args=args
        )
        reset_s = max(0, int(reset_ms)) / 1000
        return AdmitResult(
            verdict=VERDICTS[int(verdict)],
            requests=_state(spec.requests_per_minute, int(count), reset_s),
            tokens=_state(spec.tokens_per_minute, int(total), reset_s),
            monthly_requests=int(used),
            spent_nano_usd=int(spent),
            pending_nano_usd=int(pending),
            retry_after_s=int(retry_ms) / 1000 if int(retry_ms) >= 0 else None,
        )

    async def settle(
        self,
        tenant_id: str,
        reservation_id: str,
        actual_tokens: int,
        period: str,
        billed_nano_usd: int,
        cost_nano_usd: int,
    ) -> Spend:
        requests, billed, cost = await self._settle(
            keys=self.keys(tenant_id, period),
            args=[reservation_id, actual_tokens, billed_nano_usd, cost_nano_usd, MONTHLY_COUNTER_RETENTION_S],
        )
        return Spend(int(requests or 0), int(billed or 0), int(cost or 0))

    async def spend(self, tenant_id: str, period: str) -> Spend:
        requests, billed, cost = await self.redis.hmget(self.keys(tenant_id, period)[3], ["requests", "billed", "cost"])
        return Spend(int(requests or 0), int(billed or 0), int(cost or 0))

    async def close(self) -> None:
        return None


def _arg(limit: int | None) -> int:
    return UNLIMITED if limit is None else limit


def _state(limit: int | None, used: int, reset_s: float) -> WindowState | None:
    if limit is None:
        return None
    return WindowState(limit=limit, remaining=max(0, limit - used), reset_s=reset_s)
