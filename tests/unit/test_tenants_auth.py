"""serve/tenants/auth.py, directory*.py, keyadmin.py: keys -> tenants, caching, revocation, outages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from serve.router.errors import FrugalError
from serve.tenants.auth import Authenticator
from serve.tenants.config import TenantsConfig
from serve.tenants.directory import LocalDirectory
from serve.tenants.directory_redis import RedisDirectory
from serve.tenants.keyadmin import KeyAdmin
from serve.tenants.keys import generate_key, hash_key
from serve.tenants.redis_client import build_redis
from serve.bench.redis_server import RedisServer

CONFIG_KEY = generate_key()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def config(**overrides: Any) -> TenantsConfig:
    data: dict[str, Any] = {
        "auth_enabled": True,
        "admin_key_env": None,
        "tenants": [
            {"id": "acme", "tier": "paid", "cache_namespace": "shared-acme",
             "keys": [{"id": CONFIG_KEY.key_id, "sha256": CONFIG_KEY.sha256, "name": "ops"}]},
            {"id": "lab", "tier": "free", "monthly_budget_usd": 3.5},
        ],
    }
    data.update(overrides)
    return TenantsConfig.model_validate(data)


def bearer(key: str) -> str:
    return f"Bearer {key}"


async def expect_401(auth: Authenticator, header: str | None, words: str = "") -> None:
    with pytest.raises(FrugalError) as err:
        await auth.authenticate(header)
    assert err.value.body.status_code == 401 and err.value.body.code == "invalid_api_key"
    assert err.value.headers == {"WWW-Authenticate": "Bearer"}
    assert words in err.value.body.message


async def test_config_keys_resolve_to_their_tenant() -> None:
    auth = Authenticator(config(), LocalDirectory(None))
    ctx = await auth.authenticate(bearer(CONFIG_KEY.key))
    assert (ctx.tenant_id, ctx.key_id, ctx.tier_name, ctx.priority) == ("acme", CONFIG_KEY.key_id, "paid", 1)
    assert ctx.cache_namespace == "shared-acme" and ctx.allowed_models is None
    assert auth.context("lab", None, None).monthly_budget_usd == 3.5
    await expect_401(auth, None, "didn't provide")
    await expect_401(auth, "Basic abc", "didn't provide")
    await expect_401(auth, bearer("sk-openai-style"), "frg-")
    await expect_401(auth, bearer(CONFIG_KEY.key[:-2] + "zz"), CONFIG_KEY.key_id)
    await expect_401(auth, bearer(generate_key().key), "Incorrect")


async def test_concurrent_lookups_of_an_expired_key_share_one_round_trip() -> None:
    class CountingDirectory(LocalDirectory):
        calls = 0

        async def resolve(self, key_id: str, tenant_hint: str | None) -> Any:
            self.calls += 1
            await asyncio.sleep(0.01)
            return await super().resolve(key_id, tenant_hint)

    clock = Clock()
    directory = CountingDirectory(None)
    auth = Authenticator(config(), directory, clock)
    for _ in range(3):
        contexts = await asyncio.gather(*(auth.authenticate(bearer(CONFIG_KEY.key)) for _ in range(200)))
        assert {c.tenant_id for c in contexts} == {"acme"}
        clock.now += 1  # expired again
    assert directory.calls == 3


async def test_auth_disabled_anonymous_unless_a_frugal_key() -> None:
    auth = Authenticator(config(auth_enabled=False), LocalDirectory(None))
    for header in (None, bearer("EMPTY"), bearer("sk-123")):
        ctx = await auth.authenticate(header)
        assert (ctx.tenant_id, ctx.key_id, ctx.tier_name, ctx.priority) == ("anonymous", None, "vip", 2)
    assert (await auth.authenticate(bearer(CONFIG_KEY.key))).tenant_id == "acme"
    await expect_401(auth, bearer(generate_key().key))


async def test_admin_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ADMIN_KEY", "a" * 32)
    auth = Authenticator(config(admin_key_env="MY_ADMIN_KEY"), LocalDirectory(None))
    assert auth.admin_sha256 == hash_key("a" * 32)
    auth.authenticate_admin(bearer("a" * 32))
    with pytest.raises(FrugalError) as err:
        auth.authenticate_admin(bearer("b" * 32))
    assert err.value.body.status_code == 401
    with pytest.raises(FrugalError) as err:
        Authenticator(config(admin_key_env="UNSET_ADMIN_KEY_VAR"), LocalDirectory(None)).authenticate_admin(
            bearer("a" * 32)
        )
    assert err.value.body.status_code == 403


async def test_run_time_keys_persist_in_the_local_file(tmp_path: Path) -> None:
    directory = LocalDirectory(tmp_path)
    await directory.start()
    auth = Authenticator(config(), directory)
    admin = KeyAdmin(config(), directory, auth)
    created = await admin.create_key("newco", tier="vip", name="first")
    assert created.key.startswith("frg-") and created.source == "admin"
    assert (await auth.authenticate(bearer(created.key))).tier_name == "vip"
    await admin.revoke_key(CONFIG_KEY.key_id)  # a config key, revoked at run time
    await expect_401(auth, bearer(CONFIG_KEY.key), "revoked")

    reloaded = LocalDirectory(tmp_path)
    await reloaded.start()
    auth2 = Authenticator(config(), reloaded)
    assert (await auth2.authenticate(bearer(created.key))).tenant_id == "newco"
    await expect_401(auth2, bearer(CONFIG_KEY.key), "revoked")
    listing = await KeyAdmin(config(), reloaded, auth2).list_keys()
    assert [(k.tenant_id, k.source, k.revoked_s is not None) for k in listing if k.key_id == CONFIG_KEY.key_id] == [
        ("acme", "config", True)
    ]
    assert "frg-" not in (tmp_path / "keys.json").read_text()  # no secret is stored


async def test_tier_change_reaches_other_replicas_within_the_ttl(redis_url: str) -> None:
    clients = [build_redis(redis_url), build_redis(redis_url)]
    try:
        clock = Clock()
        auths = [Authenticator(config(), RedisDirectory(c, "t"), clock) for c in clients]
        admin = KeyAdmin(config(), auths[0].directory, auths[0])
        assert (await auths[1].authenticate(bearer(CONFIG_KEY.key))).tier_name == "paid"
        await admin.put_tenant("acme", "vip", monthly_budget_usd=9.0)
        assert (await auths[0].authenticate(bearer(CONFIG_KEY.key))).tier_name == "vip"  # at once, here
        assert (await auths[1].authenticate(bearer(CONFIG_KEY.key))).tier_name == "paid"  # cached there ...
        clock.now += 0.5
        ctx = await auths[1].authenticate(bearer(CONFIG_KEY.key))  # ... until the TTL passes
        assert (ctx.tier_name, ctx.monthly_budget_usd) == ("vip", 9.0)
        tenants = {t.tenant_id: t for t in await admin.list_tenants()}
        assert (tenants["acme"].tier, tenants["acme"].source) == ("vip", "admin")
        assert (tenants["lab"].tier, tenants["lab"].source) == ("free", "config")
    finally:
        for client in clients:
            await client.aclose()


async def test_store_outage_honours_recent_keys_then_503(redis_server: RedisServer, redis_url: str) -> None:
    client = build_redis(redis_url)
    clock = Clock()
    auth = Authenticator(config(), RedisDirectory(client, "t"), clock)
    try:
        assert (await auth.authenticate(bearer(CONFIG_KEY.key))).tenant_id == "acme"
        redis_server.stop()
        clock.now += 5  # past the TTL, within KEY_STALE_MAX_S
        assert (await auth.authenticate(bearer(CONFIG_KEY.key))).tenant_id == "acme"
        assert auth.num_stale_auth == 1
        other = generate_key()
        with pytest.raises(FrugalError) as err:
            await auth.authenticate(bearer(other.key))
        assert err.value.body.status_code == 503 and err.value.body.code == "store_unavailable"
        clock.now += 120  # too stale to trust
        with pytest.raises(FrugalError) as err:
            await auth.authenticate(bearer(CONFIG_KEY.key))
        assert err.value.body.status_code == 503
    finally:
        redis_server.start()
        await client.aclose()


async def test_revocation_across_replicas_real_time(redis_url: str) -> None:
    """With the real clock: revoked on one replica, refused on the other in under a second."""
    clients = [build_redis(redis_url), build_redis(redis_url)]
    try:
        auths = [Authenticator(config(), RedisDirectory(c, "t")) for c in clients]
        admin = KeyAdmin(config(), auths[0].directory, auths[0])
        created = await admin.create_key("acme")
        assert (await auths[1].authenticate(bearer(created.key))).tenant_id == "acme"
        await admin.revoke_key(created.key_id)
        loop = asyncio.get_running_loop()
        revoked_at = loop.time()
        while True:
            try:
                await auths[1].authenticate(bearer(created.key))
            except FrugalError:
                break
            await asyncio.sleep(0.01)
        assert loop.time() - revoked_at < 1.0
    finally:
        for client in clients:
            await client.aclose()


async def test_start_up_log_says_when_auth_is_off(caplog: pytest.LogCaptureFixture) -> None:
    from serve.tenants.service import build_tenants, redact_url

    for auth_enabled in (False, True):
        tenants = build_tenants(config(auth_enabled=auth_enabled))
        with caplog.at_level("INFO", logger="serve.tenants.service"):
            await tenants.start()
        await tenants.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("AUTH DISABLED" in m and "'anonymous' (tier vip)" in m for m in messages)
    assert any("auth enabled, 2 config tenants" in m for m in messages)
    assert redact_url("redis://user:secret@redis.internal:6379/0") == "redis://redis.internal:6379/0"
