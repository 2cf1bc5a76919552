"""serve/tenants/config.py, keys.py and units.py: the config schema, key format, money and periods."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from serve.tenants.config import PRIORITY_LEVELS, TenantsConfig
from serve.tenants.keys import bearer_token, generate_key, hash_key, key_matches, main, parse_key_id
from serve.tenants.units import (
    billed_nano_usd,
    format_duration,
    period_bounds,
    period_of,
    seconds_to_period_end,
    to_nano_usd,
    to_usd,
)


def test_default_tiers_are_the_source_documents() -> None:
    tiers = TenantsConfig().tiers
    assert sorted(tiers) == ["free", "paid", "vip"]
    assert (tiers["free"].monthly_requests, tiers["free"].priority) == (1_000, "low")
    assert (tiers["paid"].monthly_requests, tiers["paid"].priority) == (100_000, "medium")
    assert tiers["paid"].price_usd_per_1k_tokens == 0.002
    vip = tiers["vip"]
    assert vip.priority == "high" and vip.flat_monthly_fee_usd > 0
    assert (vip.requests_per_minute, vip.tokens_per_minute, vip.monthly_requests, vip.monthly_budget_usd) == (
        None, None, None, None
    )
    assert PRIORITY_LEVELS["high"] > PRIORITY_LEVELS["medium"] > PRIORITY_LEVELS["low"]


def test_tier_overrides_merge_into_defaults() -> None:
    config = TenantsConfig.model_validate(
        {"tiers": {"paid": {"requests_per_minute": 5}, "gold": {"priority": "high", "price_usd_per_1k_tokens": 0.01}}}
    )
    assert config.tiers["paid"].requests_per_minute == 5
    assert config.tiers["paid"].monthly_requests == 100_000  # kept from the default
    assert config.tiers["gold"].priority == "high"
    assert sorted(config.tiers) == ["free", "gold", "paid", "vip"]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"tiers": {"paid": {"rpm": 5}}}, "tiers.paid.rpm"),
        ({"tenants": [{"id": "a", "tier": "gold"}]}, "unknown tiers ['gold']"),
        ({"tenants": [{"id": "a b", "tier": "free"}]}, "tenants.0.id"),
        ({"tenants": [{"id": "a", "tier": "free", "keys": [{"id": "xyz", "sha256": "0" * 64}]}]}, "keys.0.id"),
        ({"tenants": [{"id": "a", "tier": "free"}, {"id": "a", "tier": "paid"}]}, "duplicate tenant ids"),
        ({"alerts": {"thresholds_pct": [0]}}, "alerts.thresholds_pct.0"),
        ({"alerts": {"webhook_url": "ftp://x"}}, "alerts.webhook_url"),
        ({"anonymous_tier": "gold"}, "anonymous_tier"),
        ({"key_cache_ttl_s": 5}, "key_cache_ttl_s"),
        ({"ledger": {"buffer": 10}}, "ledger.buffer"),
    ],
)
def test_config_errors_name_the_path(data: dict, where: str) -> None:
    with pytest.raises(ValidationError) as err:
        TenantsConfig.model_validate(data)
    assert where in str(err.value).replace("\n", " ").replace(" ", "") or where in str(err.value)


def test_check_models() -> None:
    config = TenantsConfig.model_validate({"tiers": {"free": {"allowed_models": ["small", "tiny"]}}})
    config.check_models(["small", "tiny", "big"])
    with pytest.raises(ValueError, match=r"tiers.free.allowed_models: \['tiny'\]"):
        config.check_models(["small"])


def test_yaml_example_of_the_docs_validates() -> None:
    import yaml

    text = open("docs/tenants.md").read()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    assert len(blocks) >= 2
    for block in blocks:
        data = yaml.safe_load(block)
        TenantsConfig.model_validate(data["tenants"])


def test_key_format_and_hashing(capsys: pytest.CaptureFixture[str]) -> None:
    new = generate_key()
    assert new.key.startswith(f"frg-{new.key_id}.")
    assert parse_key_id(new.key) == new.key_id
    assert new.sha256 == hash_key(new.key) and key_matches(new.key, new.sha256)
    assert not key_matches(new.key + "x", new.sha256)
    for bad in ["", "sk-abc", "frg-", f"frg-{new.key_id}", f"frg-{new.key_id.upper()}.{'a' * 40}", "frg-12.abc"]:
        assert parse_key_id(bad) is None
    assert bearer_token("Bearer  abc ") == "abc" and bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer") is None and bearer_token(None) is None

    assert main(["hash", new.key]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": new.key_id, "sha256": new.sha256}
    assert main(["new"]) == 0
    out = capsys.readouterr().out
    entry = json.loads(out.split("tenants[].keys:", 1)[1])
    key = out.split(": ", 1)[1].split("\n", 1)[0]
    assert hash_key(key) == entry["sha256"] and parse_key_id(key) == entry["id"]
    TenantsConfig.model_validate({"tenants": [{"id": "a", "tier": "free", "keys": [entry]}]})


def test_money_and_periods() -> None:
    assert to_nano_usd(0.1) == 100_000_000 and to_nano_usd(0.000000001) == 1
    assert to_usd(to_nano_usd(123.456789012)) == 123.456789012
    assert billed_nano_usd(1234, 0.002) == 2_468_000
    assert billed_nano_usd(1, 0.002, factor=0.5) == 1_000
    assert period_of(1_750_000_000) == "2025-06"
    assert period_bounds("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_bounds("2025-12") == (date(2025, 12, 1), date(2025, 12, 31))
    assert seconds_to_period_end(1_751_327_999.5) == 0.5  # 2025-06-30 23:59:59.5
    assert [format_duration(s) for s in (0, 0.0201, 1, 59.2, 60, 360, 3725)] == [
        "0s", "21ms", "1s", "1m0s", "1m0s", "6m0s", "1h2m5s"
    ]


@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=50))
def test_nano_usd_sums_are_exact(nanos: list[int]) -> None:
    assert sum(to_nano_usd(to_usd(n)) for n in nanos) == sum(nanos)
