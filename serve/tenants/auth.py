"""Who is calling: bearer keys -> tenants, and the admin key.

Contracts:
- ``authenticate`` returns the caller's ``TenantContext`` or raises a 401 ``FrugalError``
  (missing, malformed, unknown, wrong or revoked key). With auth disabled, a request without
  a Frugal key (no header, or e.g. the "EMPTY" key OpenAI clients send) is the anonymous
  tenant; a Frugal-shaped key is still checked, so a revoked key never silently downgrades.
- A key's record is cached ``key_cache_ttl_s`` (<= 1 s): a revocation or a tier change made
  on any replica takes effect on every replica within that time.
- Store down: a key resolved within ``KEY_STALE_MAX_S`` is honoured from the cache (warning,
  ``num_stale_auth``); otherwise 503 ``store_unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from serve.constants import KEY_CACHE_MAX_ENTRIES, KEY_STALE_MAX_S
from serve.router.errors import permission_denied, store_unavailable, unauthorized
from serve.tenants.config import PRIORITY_LEVELS, TenantConfig, TenantsConfig, TierConfig
from serve.tenants.directory import Directory, KeyRecord, TenantRecord
from serve.tenants.keys import bearer_token, hash_key, key_matches, looks_like_frugal_key, parse_key_id
from serve.tenants.redis_client import STORE_ERRORS, describe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantContext:
    """The authenticated caller, as the request path needs it."""

    tenant_id: str
    key_id: str | None  # None: anonymous (auth disabled)
    tier_name: str
    tier: TierConfig
    priority: int  # higher is served first; PRIORITY_LEVELS
    cache_namespace: str
    monthly_budget_usd: float | None

    @property
    def allowed_models(self) -> frozenset[str] | None:
        """None: every served model."""
        return None if self.tier.allowed_models is None else frozenset(self.tier.allowed_models)


@dataclass(frozen=True)
class _Resolved:
    key: KeyRecord | None
    context: TenantContext | None


class Authenticator:
    def __init__(
        self, config: TenantsConfig, directory: Directory, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.directory = directory
        self.clock = clock
        self.tenants: dict[str, TenantConfig] = {t.id: t for t in config.tenants}
        self.config_keys: dict[str, tuple[TenantConfig, str]] = {
            k.id: (t, k.sha256) for t in config.tenants for k in t.keys
        }
        self.admin_sha256 = config.admin_key_sha256 or _env_key_hash(config.admin_key_env)
        self._cache: OrderedDict[str, tuple[float, _Resolved]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[tuple[float, _Resolved]]] = {}
        self.num_stale_auth = 0

    def context(self, tenant_id: str, key_id: str | None, record: TenantRecord | None) -> TenantContext:
        """The effective settings of a tenant: config, overridden by its run-time record."""
        config = self.tenants.get(tenant_id)
        tier_name = record.tier if record else (config.tier if config else self.config.anonymous_tier)
        tier = self.config.tiers.get(tier_name)
        if tier is None:  # a run-time record naming a tier since removed from config
            logger.warning("tenant %s has unknown tier %r; using %r", tenant_id, tier_name, self.config.anonymous_tier)
            tier_name, tier = self.config.anonymous_tier, self.config.tiers[self.config.anonymous_tier]
        if record is not None:
            budget = record.monthly_budget_usd
        elif config is not None and config.monthly_budget_usd is not None:
            budget = config.monthly_budget_usd
        else:
            budget = tier.monthly_budget_usd
        return TenantContext(
            tenant_id=tenant_id,
            key_id=key_id,
            tier_name=tier_name,
            tier=tier,
            priority=PRIORITY_LEVELS[tier.priority],
            cache_namespace=(config.cache_namespace if config and config.cache_namespace else tenant_id),
            monthly_budget_usd=budget,
        )

    def anonymous(self) -> TenantContext:
        return self.context(self.config.anonymous_tenant, None, None)

    async def authenticate(self, authorization: str | None) -> TenantContext:
        token = bearer_token(authorization)
        if token is None or (not self.config.auth_enabled and not looks_like_frugal_key(token)):
            if self.config.auth_enabled:
                raise unauthorized("You didn't provide an API key: send 'Authorization: Bearer frg-<id>.<secret>'.")
            return self.anonymous()
        key_id = parse_key_id(token)
        if key_id is None:
            raise unauthorized("Incorrect API key provided: a Frugal key reads 'frg-<id>.<secret>'.")
        resolved = await self._resolve(key_id)
        key = resolved.key
        if key is None or resolved.context is None or not key_matches(token, key.sha256):
            raise unauthorized(f"Incorrect API key provided (key id {key_id}).")
        if key.revoked_s is not None:
            raise unauthorized(f"The API key {key_id} has been revoked.")
        return resolved.context

    def authenticate_admin(self, authorization: str | None) -> None:
        """Raise 401 unless the header carries the admin key; 403 if no admin key is configured."""
        if self.admin_sha256 is None:
            raise permission_denied(
                "The admin API is disabled: set tenants.admin_key_sha256 or the admin key environment variable.",
                code="admin_disabled",
            )
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized("The admin API needs 'Authorization: Bearer <admin key>'.")
        if not key_matches(token, self.admin_sha256):
            raise unauthorized("Incorrect admin key provided.")

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget cached keys (one, or all): used after an admin change on this replica.
        A lookup already in flight is not cached either (it may predate the change)."""
        if key_id is None:
            self._cache.clear()
            self._inflight.clear()
        else:
            self._cache.pop(key_id, None)
            self._inflight.pop(key_id, None)

    async def _resolve(self, key_id: str) -> _Resolved:
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.config.key_cache_ttl_s:
            return cached[1]
        # One lookup per key at a time: when the entry expires under load, the requests that
        # find it expired share one store round trip instead of all making their own.
        fetch = self._inflight.get(key_id)
        if fetch is None:
            fetch = asyncio.ensure_future(self._fetch(key_id, now))
            self._inflight[key_id] = fetch
            fetch.add_done_callback(lambda f: self._fetched(key_id, f))
        try:
            return (await asyncio.shield(fetch))[1]
        except STORE_ERRORS as exc:
            if cached is not None and now - cached[0] < KEY_STALE_MAX_S:
                self.num_stale_auth += 1
                logger.warning("key store unavailable (%s); honouring cached key %s", describe(exc), key_id)
                return cached[1]
            raise store_unavailable(type(exc).__name__) from None

    async def _fetch(self, key_id: str, started: float) -> tuple[float, _Resolved]:
        config_entry = self.config_keys.get(key_id)
        record, tenant = await self.directory.resolve(key_id, config_entry[0].id if config_entry else None)
        if record is None and config_entry is not None:
            tenant_config, sha256 = config_entry
            record = KeyRecord(key_id=key_id, sha256=sha256, tenant_id=tenant_config.id, created_s=0.0)
        context = None
        if record is not None and (record.tenant_id in self.tenants or tenant is not None):
            context = self.context(record.tenant_id, key_id, tenant)
        return started, _Resolved(record, context)

    def _fetched(self, key_id: str, fetch: asyncio.Future[tuple[float, _Resolved]]) -> None:
        if self._inflight.get(key_id) is not fetch:
            return  # invalidated while in flight
        del self._inflight[key_id]
        if fetch.cancelled() or fetch.exception() is not None:
            return  # the waiters handle the error
        self._cache[key_id] = fetch.result()  # dated when the lookup started: never fresher than it is
        self._cache.move_to_end(key_id)
        while len(self._cache) > KEY_CACHE_MAX_ENTRIES:
            self._cache.popitem(last=False)


def _env_key_hash(env_name: str | None) -> str | None:
    value = os.environ.get(env_name, "") if env_name else ""
    return hash_key(value) if value else None

