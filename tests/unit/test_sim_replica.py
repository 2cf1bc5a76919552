"""serve/sim/replica.py: one batching replica, with hand-computed times."""

from __future__ import annotations

import pytest

from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.sim.replica import Replica, ReplicaModel, RequestBook

# One stream: 10 tok/s; two streams: 16 tok/s in total (8 each). TTFT 100 ms for a short prompt.
PROFILE = ThroughputProfile(
    points=[
        ProfilePoint(concurrency=1, output_tokens_per_s=10, ttft_ms=100),
        ProfilePoint(concurrency=2, output_tokens_per_s=16, ttft_ms=100),
    ],
    prefill_tokens_per_s=1000,
)
NO_PREFILL = PROFILE.model_copy(update={"prefill_tokens_per_s": None})


def _run(replica: Replica, arrivals: list[tuple[float, int]]) -> None:
    """Feed arrivals (time, request id) and process events until the replica is idle."""
    pending = sorted(arrivals)
    while True:
        t_event = replica.next_event_s()
        if pending and (t_event is None or pending[0][0] <= t_event):
            t, rid = pending.pop(0)
            replica.enqueue(rid, t)
        elif t_event is not None:
            replica.on_event(t_event)
        else:
            return


def _replica(
    profile: ThroughputProfile, prompt: list[int], output: list[int], kv: float = 10_000
) -> tuple[Replica, RequestBook]:
    book = RequestBook(prompt, output)
    return Replica(ReplicaModel.from_profile(profile, kv), book, pool=0, index=0, start_s=0.0), book


def test_one_request_prefill_then_decode() -> None:
    replica, book = _replica(PROFILE, [500], [11])
    _run(replica, [(0.0, 0)])
    assert book.t_decode[0] == pytest.approx(0.5)  # 500 prompt tokens at 1000 tok/s
    assert book.t_first[0] == pytest.approx(0.6)  # + the profile's 100 ms
    assert book.t_done[0] == pytest.approx(1.5)  # 10 more tokens at 10 tok/s
    assert replica.admitted == 0 and replica.kv_used == 0 and book.completed == [0]


def test_two_streams_share_the_batch() -> None:
    replica, book = _replica(NO_PREFILL, [10, 10], [9, 9])
    _run(replica, [(0.0, 0), (0.0, 1)])
    assert book.t_done == pytest.approx([1.0, 1.0])  # 8 tokens each at 8 tok/s


def test_rate_changes_when_a_stream_joins_and_leaves() -> None:
    replica, book = _replica(NO_PREFILL, [10, 10], [11, 5])
    _run(replica, [(0.0, 0), (0.5, 1)])
    # A alone 0-0.5 s: 5 tokens. Both at 8 tok/s: B's 4 tokens take 0.5 s. A's last token alone: 0.1 s.
    assert book.t_done[1] == pytest.approx(1.0)
    assert book.t_done[0] == pytest.approx(1.1)


def test_prefill_pauses_decode() -> None:
    replica, book = _replica(PROFILE, [100, 500], [11, 2])
    _run(replica, [(0.0, 0), (0.2, 1)])
    # A: prefill 0-0.1, decodes 1 token by 0.2; paused while B prefills 0.2-0.7; both decode at
    # 8 tok/s until B's single remaining token is out (0.825); A's last 8 tokens alone: 0.8 s.
    assert book.t_decode[1] == pytest.approx(0.7)
    assert book.t_done[1] == pytest.approx(0.825)
    assert book.t_done[0] == pytest.approx(1.625)


def test_kv_cache_and_slots_hold_requests_back() -> None:
    replica, book = _replica(NO_PREFILL, [30, 30], [31, 31], kv=100)  # 61 tokens each: one fits
    replica.enqueue(0, 0.0)
    replica.enqueue(1, 0.0)
    assert (replica.admitted, len(replica.queue)) == (1, 1)
    _run(replica, [])
    assert book.t_decode[1] == pytest.approx(book.t_done[0]) == pytest.approx(3.0)

    replica, book = _replica(NO_PREFILL, [1, 1, 1], [11, 11, 11])  # two slots
    for rid in range(3):
        replica.enqueue(rid, 0.0)
    assert (replica.admitted, len(replica.queue), replica.in_flight) == (2, 1, 3)


def test_empty_replica_admits_an_oversized_request() -> None:
    replica, book = _replica(NO_PREFILL, [500], [11], kv=100)
    _run(replica, [(0.0, 0)])
    assert book.t_done[0] == pytest.approx(1.0)
