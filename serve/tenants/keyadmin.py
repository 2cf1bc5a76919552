"""Run-time key and tenant administration: create, list, update and revoke keys; set a
tenant's tier or budget.

Changes are written to the directory (Redis or the local file) and reach every replica
within the key cache TTL; this replica forgets its cached copy at once. Config-defined keys
can be renamed or revoked too: the change is stored as a record overriding the config entry.
A new key's secret is returned once and never stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from serve.router.errors import bad_request, not_found
from serve.tenants.auth import Authenticator
from serve.tenants.config import TenantsConfig
from serve.tenants.directory import Directory, KeyRecord, TenantRecord
from serve.tenants.keys import generate_key

Source = Literal["config", "admin"]


class KeyView(BaseModel):
    """A key as the admin API shows it: never its secret or hash."""

    model_config = ConfigDict(extra="forbid")

    key_id: str
    tenant_id: str
    name: str
    created_s: float | None
    revoked_s: float | None
    source: Source


class CreatedKey(KeyView):
    key: str  # the full key, shown only in the response that created it


class TenantView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    tier: str
    monthly_budget_usd: float | None
    source: Source


class KeyAdmin:
    def __init__(
        self, config: TenantsConfig, directory: Directory, auth: Authenticator, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.directory = directory
        self.auth = auth
        self.clock = clock

    async def create_key(self, tenant_id: str, tier: str | None = None, name: str = "") -> CreatedKey:
        """A new key for ``tenant_id``; a tenant unknown so far is created with ``tier`` (then required)."""
        known = tenant_id in self.auth.tenants or await self.directory.get_tenant(tenant_id) is not None
        if tier is not None:
            await self.put_tenant(tenant_id, tier, await self._budget_of(tenant_id))
        elif not known:
            raise bad_request(f"Tenant '{tenant_id}' is new: give its tier.", param="tier")
        new = generate_key()
        record = KeyRecord(key_id=new.key_id, sha256=new.sha256, tenant_id=tenant_id, name=name, created_s=self.clock())
        await self.directory.put_key(record)
        return CreatedKey(**_view(record, "admin").model_dump(), key=new.key)

    async def list_keys(self, tenant_id: str | None = None) -> list[KeyView]:
        stored = {k.key_id: k for k in await self.directory.list_keys()}
        views = [_view(k, "config" if k.key_id in self.auth.config_keys else "admin") for k in stored.values()]
        for key_id, (tenant, _) in self.auth.config_keys.items():
            if key_id not in stored:
                views.append(KeyView(key_id=key_id, tenant_id=tenant.id, name=self._config_name(key_id),
                                     created_s=None, revoked_s=None, source="config"))
        return sorted((v for v in views if tenant_id is None or v.tenant_id == tenant_id), key=lambda v: v.key_id)

    async def get_key(self, key_id: str) -> KeyView:
        for view in await self.list_keys():
            if view.key_id == key_id:
                return view
        raise not_found(f"No key with id '{key_id}'.", param="key_id")

    async def update_key(self, key_id: str, name: str | None = None, revoked: bool | None = None) -> KeyView:
        """Rename, revoke (``revoked=True``) or reinstate (``revoked=False``) a key."""
        record = await self._record(key_id)
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = name
        if revoked is True and record.revoked_s is None:
            changes["revoked_s"] = self.clock()
        elif revoked is False:
            changes["revoked_s"] = None
        record = record.model_copy(update=changes)
        await self.directory.put_key(record)
        self.auth.invalidate(key_id)
        return _view(record, "config" if key_id in self.auth.config_keys else "admin")

    async def revoke_key(self, key_id: str) -> KeyView:
        return await self.update_key(key_id, revoked=True)

    async def list_tenants(self) -> list[TenantView]:
        stored = {t.tenant_id: t for t in await self.directory.list_tenants()}
        views = [
            TenantView(tenant_id=t.tenant_id, tier=t.tier, monthly_budget_usd=t.monthly_budget_usd, source="admin")
            for t in stored.values()
        ]
        for tenant_id in self.auth.tenants:
            if tenant_id not in stored:
                context = self.auth.context(tenant_id, None, None)
                views.append(TenantView(tenant_id=tenant_id, tier=context.tier_name,
                                        monthly_budget_usd=context.monthly_budget_usd, source="config"))
        return sorted(views, key=lambda v: v.tenant_id)

    async def put_tenant(self, tenant_id: str, tier: str, monthly_budget_usd: float | None) -> TenantView:
        """Set a tenant's tier and budget (``None``: the tier's budget); creates the tenant if new."""
        if tier not in self.config.tiers:
            raise bad_request(f"Unknown tier '{tier}'; tiers are {sorted(self.config.tiers)}.", param="tier")
        try:
            record = TenantRecord(tenant_id=tenant_id, tier=tier, monthly_budget_usd=monthly_budget_usd,
                                  updated_s=self.clock())
        except ValueError as exc:
            raise bad_request(f"Invalid tenant: {exc}", param="tenant_id") from None
        await self.directory.put_tenant(record)
        self.auth.invalidate()
        return TenantView(tenant_id=tenant_id, tier=tier, monthly_budget_usd=monthly_budget_usd, source="admin")

    async def _record(self, key_id: str) -> KeyRecord:
        key, _ = await self.directory.resolve(key_id, None)
        if key is not None:
            return key
        entry = self.auth.config_keys.get(key_id)
        if entry is None:
            raise not_found(f"No key with id '{key_id}'.", param="key_id")
        tenant, sha256 = entry
        name = self._config_name(key_id)
        return KeyRecord(key_id=key_id, sha256=sha256, tenant_id=tenant.id, name=name, created_s=0.0)

    async def _budget_of(self, tenant_id: str) -> float | None:
        record = await self.directory.get_tenant(tenant_id)
        if record is not None:
            return record.monthly_budget_usd
        config = self.auth.tenants.get(tenant_id)
        return config.monthly_budget_usd if config else None

    def _config_name(self, key_id: str) -> str:
        tenant, _ = self.auth.config_keys[key_id]
        return next(k.name for k in tenant.keys if k.id == key_id)


def _view(record: KeyRecord, source: Source) -> KeyView:
    return KeyView(
        key_id=record.key_id,
        tenant_id=record.tenant_id,
        name=record.name,
        created_s=record.created_s or None,
        revoked_s=record.revoked_s,
        source=source,
    )

