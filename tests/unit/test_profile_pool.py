"""serve/cost/profiling.py and scripts/profile_pool.py: measurements to a profile file that
a pool's config can name."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from serve.bench.load import LevelResult
from serve.config.schema import PoolConfig
from serve.cost.pool_profile import pool_profile
from serve.cost.profiling import prefill_rate, profile_from_levels, profile_source, write_profile

REPO = Path(__file__).resolve().parents[2]


def _level(concurrency: int, tokens_per_s: float, ttft_ms: float, errors: int = 0) -> LevelResult:
    wall_s = 10.0
    return LevelResult(
        concurrency=concurrency,
        num_requests=2 * concurrency,
        num_errors=errors,
        output_tokens=int(tokens_per_s * wall_s),
        wall_s=wall_s,
        output_tokens_per_s=tokens_per_s,
        ttft_p50_ms=ttft_ms,
        ttft_p99_ms=2 * ttft_ms,
    )


LEVELS = [_level(8, 50.0, 300.0), _level(1, 7.0, 120.0), _level(32, 63.0, 900.0)]


def test_levels_become_sorted_points() -> None:
    profile = profile_from_levels(LEVELS, "measured: test", prefill_tokens_per_s=400.0)
    assert [(p.concurrency, p.output_tokens_per_s, p.ttft_ms) for p in profile.points] == [
        (1, 7.0, 120.0),
        (8, 50.0, 300.0),
        (32, 63.0, 900.0),
    ]
    assert (profile.prefill_tokens_per_s, profile.source) == (400.0, "measured: test")
    assert profile.tpot_ms(1) == pytest.approx(1000 / 7)


def test_several_replicas_are_converted_to_one() -> None:
    profile = profile_from_levels([_level(2, 14.0, 120.0), _level(16, 100.0, 300.0)], "s", num_replicas=2)
    assert [(p.concurrency, p.output_tokens_per_s) for p in profile.points] == [(1, 7.0), (8, 50.0)]
    with pytest.raises(ValueError, match="does not divide"):
        profile_from_levels([_level(3, 14.0, 120.0)], "s", num_replicas=2)


@pytest.mark.parametrize("bad", [_level(4, 20.0, 100.0, errors=1), _level(4, 0.0, 100.0)])
def test_failed_levels_are_refused(bad: LevelResult) -> None:
    with pytest.raises(ValueError, match="level at concurrency 4"):
        profile_from_levels([LEVELS[1], bad], "s")


def test_prefill_rate() -> None:
    assert prefill_rate((10, 0.10), (2010, 2.10)) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="cannot derive"):
        prefill_rate((10, 0.10), (2010, 0.09))


def test_written_profile_is_what_a_pool_loads(tmp_path: Path) -> None:
    source = profile_source("python scripts/profile_pool.py --pool p", datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    assert source == "measured: python scripts/profile_pool.py --pool p (2026-03-01 12:00 UTC)"
    profile = profile_from_levels(LEVELS, source)
    path = write_profile(profile, tmp_path / "profiles", "p")
    assert path == tmp_path / "profiles" / "p.json"
    pool = PoolConfig.model_validate({"name": "p", "engine": {"model": "m"}, "profile": "profiles/p.json"})
    assert pool_profile(pool, "m", base_dir=tmp_path) == profile


def test_script_help_runs_without_a_service() -> None:
    # PYTHONPATH: the repository may be checked out where Frugal is not pip-installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "profile_pool.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=True,
    )
    assert "--pool" in result.stdout and "deployments/profiles" in result.stdout
