"""The key directory: keys and tenant settings created at run time through the admin API.

Config-defined keys and tenants are not copied here; a record here overrides the config
entry with the same id (that is how a config key is revoked or a tenant's tier changed at
run time). ``LocalDirectory`` keeps the records in a JSON file for the embedded default (one
router replica); ``serve.tenants.directory_redis.RedisDirectory`` shares them between replicas.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from serve.tenants.config import TENANT_ID_PATTERN, Usd
from serve.tenants.files import write_atomically
from serve.tenants.keys import KEY_ID_PATTERN, SHA256_PATTERN

logger = logging.getLogger(__name__)

DIRECTORY_FILE_NAME = "keys.json"


class KeyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    sha256: str = Field(pattern=SHA256_PATTERN)
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    name: str = ""
    created_s: float
    revoked_s: float | None = None


class TenantRecord(BaseModel):
    """A tenant's settings set at run time; they override the config's for this tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    tier: str
    monthly_budget_usd: Usd | None = None
    updated_s: float


class Directory(Protocol):
    """Where run-time keys and tenant settings live. Methods raise the store's errors."""

    async def start(self) -> None: ...

    async def resolve(self, key_id: str, tenant_hint: str | None) -> tuple[KeyRecord | None, TenantRecord | None]:
        """The key's record and its tenant's record (the key's tenant, else ``tenant_hint``), in one read."""

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None: ...

    async def put_key(self, record: KeyRecord) -> None: ...

    async def put_tenant(self, record: TenantRecord) -> None: ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def list_tenants(self) -> list[TenantRecord]: ...

    async def close(self) -> None: ...


class LocalDirectory:
    """In-process records, saved to ``<state_dir>/keys.json`` on every change (atomic rename).

    Without a state dir the records live in memory only and vanish at restart.
    """

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / DIRECTORY_FILE_NAME if state_dir else None
        self.keys: dict[str, KeyRecord] = {}
        self.tenants: dict[str, TenantRecord] = {}

    async def start(self) -> None:
        if self.path is None or not self.path.exists():
            return
        data = json.loads(self.path.read_text())
        self.keys = {k["key_id"]: KeyRecord.model_validate(k) for k in data.get("keys", [])}
        self.tenants = {t["tenant_id"]: TenantRecord.model_validate(t) for t in data.get("tenants", [])}
        logger.info("key directory: %d keys, %d tenants from %s", len(self.keys), len(self.tenants), self.path)

    async def resolve(self, key_id: str, tenant_hint: str | None) -> tuple[KeyRecord | None, TenantRecord | None]:
        key = self.keys.get(key_id)
        tenant_id = key.tenant_id if key else tenant_hint
        return key, self.tenants.get(tenant_id) if tenant_id else None

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        return self.tenants.get(tenant_id)

    async def put_key(self, record: KeyRecord) -> None:
        self.keys[record.key_id] = record
        self._save()

    async def put_tenant(self, record: TenantRecord) -> None:
        self.tenants[record.tenant_id] = record
        self._save()

    async def list_keys(self) -> list[KeyRecord]:
        return list(self.keys.values())

    async def list_tenants(self) -> list[TenantRecord]:
        return list(self.tenants.values())

    async def close(self) -> None:
        return None

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "keys": [k.model_dump() for k in self.keys.values()],
            "tenants": [t.model_dump() for t in self.tenants.values()],
        }
        write_atomically(self.path, json.dumps(data, indent=1))

