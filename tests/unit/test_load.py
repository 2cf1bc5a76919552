"""serve/engine/load.py: the load snapshot an engine replica reports."""

from __future__ import annotations

from serve.engine.load import LoadTracker
from serve.engine.protocol import EngineLoad


def test_a_new_tracker_reports_no_load() -> None:
    assert LoadTracker().snapshot(0) == EngineLoad(num_running=0, num_waiting=0, kv_cache_usage=0.0)


def test_an_idle_engine_reports_no_load_whatever_the_last_stats() -> None:
    tracker = LoadTracker()
    tracker.record(num_running=5, num_waiting=3, kv_cache_usage=0.7)
    assert tracker.snapshot(0) == EngineLoad()


def test_snapshot_reports_the_recorded_stats_when_they_match() -> None:
    tracker = LoadTracker()
    tracker.record(num_running=4, num_waiting=2, kv_cache_usage=0.25)
    assert tracker.snapshot(6) == EngineLoad(num_running=4, num_waiting=2, kv_cache_usage=0.25)


def test_running_is_capped_by_the_unfinished_requests() -> None:
    tracker = LoadTracker()
    tracker.record(num_running=8, num_waiting=0, kv_cache_usage=0.5)
    assert tracker.snapshot(3) == EngineLoad(num_running=3, num_waiting=0, kv_cache_usage=0.5)


def test_requests_added_since_the_last_step_count_as_waiting() -> None:
    tracker = LoadTracker()
    tracker.record(num_running=2, num_waiting=0, kv_cache_usage=0.1)
    assert tracker.snapshot(5) == EngineLoad(num_running=2, num_waiting=3, kv_cache_usage=0.1)


def test_before_any_step_all_unfinished_requests_are_waiting() -> None:
    assert LoadTracker().snapshot(4) == EngineLoad(num_running=0, num_waiting=4, kv_cache_usage=0.0)


def test_the_latest_record_wins() -> None:
    tracker = LoadTracker()
    tracker.record(num_running=9, num_waiting=9, kv_cache_usage=0.9)
    tracker.record(num_running=1, num_waiting=0, kv_cache_usage=0.05)
    assert tracker.snapshot(1) == EngineLoad(num_running=1, num_waiting=0, kv_cache_usage=0.05)
