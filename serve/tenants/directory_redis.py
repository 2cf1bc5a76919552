"""The key directory in Redis, shared by every router replica.

Two hashes: ``<prefix>:keys`` (key id -> KeyRecord JSON) and ``<prefix>:tenants`` (tenant id
-> TenantRecord JSON). ``resolve`` reads a key and its tenant in one round trip (a Lua
script), which is what the authenticator pays once per key per cache TTL.
"""

from __future__ import annotations

from redis.asyncio import Redis

from serve.tenants.directory import KeyRecord, TenantRecord

RESOLVE_LUA = """
local key = redis.call('HGET', KEYS[1], ARGV[1])
local tenant_id = ARGV[2]
if key then tenant_id = cjson.decode(key)['tenant_id'] end
local tenant = false
if tenant_id ~= '' then tenant = redis.call('HGET', KEYS[2], tenant_id) end
return {key or '', tenant or ''}
"""


class RedisDirectory:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.keys_key = f"{prefix}:keys"
        self.tenants_key = f"{prefix}:tenants"
        self._resolve = redis.register_script(RESOLVE_LUA)

    async def start(self) -> None:
        return None

    async def resolve(self, key_id: str, tenant_hint: str | None) -> tuple[KeyRecord | None, TenantRecord | None]:
        key, tenant = await self._resolve(keys=[self.keys_key, self.tenants_key], args=[key_id, tenant_hint or ""])
        return (
            KeyRecord.model_validate_json(key) if key else None,
            TenantRecord.model_validate_json(tenant) if tenant else None,
        )

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        raw = await self.redis.hget(self.tenants_key, tenant_id)
        return TenantRecord.model_validate_json(raw) if raw else None

    async def put_key(self, record: KeyRecord) -> None:
        await self.redis.hset(self.keys_key, record.key_id, record.model_dump_json())

    async def put_tenant(self, record: TenantRecord) -> None:
        await self.redis.hset(self.tenants_key, record.tenant_id, record.model_dump_json())

    async def list_keys(self) -> list[KeyRecord]:
        raw = await self.redis.hgetall(self.keys_key)
        return [KeyRecord.model_validate_json(v) for v in raw.values()]

    async def list_tenants(self) -> list[TenantRecord]:
        raw = await self.redis.hgetall(self.tenants_key)
        return [TenantRecord.model_validate_json(v) for v in raw.values()]

    async def close(self) -> None:
        return None
