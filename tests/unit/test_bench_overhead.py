"""Every variant of the router overhead benchmark builds a valid config and application
(without Ray running: building binds deployments, it starts nothing)."""

from __future__ import annotations

import pytest

from serve.bench.overhead import BENCH_KEY, BENCH_KEY_ID, VARIANTS, base_config
from serve.tenants.keys import hash_key, key_matches, parse_key_id


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_configures_and_builds(name):
    variant = VARIANTS[name]
    redis_url = "redis://127.0.0.1:1/0" if variant.needs_redis else None
    config = variant.configure(base_config(), redis_url)
    assert config.models
    assert variant.build(config) is not None


def test_the_benchmark_key_is_a_well_formed_frugal_key():
    assert parse_key_id(BENCH_KEY) == BENCH_KEY_ID
    assert key_matches(BENCH_KEY, hash_key(BENCH_KEY))
