"""The fleet simulation: a trace replayed against autoscaled pools, one dispatch per request.

Event loop. Three sources of events, merged in time order: the trace's arrivals (already
sorted), a heap of replica events (prefill done, a stream done, a replica ready) and the
control loop's ticks (every ``control_period_s``). Per request:

1. the policy (the router's own ``DispatchPolicy`` object) sees the pools' ``PoolState`` and
   returns a ``Decision``; cold pools it names in ``wake`` are scaled from zero;
2. the request goes to the first pool in the decision that has a ready replica (or, if none
   has, waits at the first pool, which is started if it is at zero replicas);
3. within the pool, Ray's router picks the less loaded of two random replicas that are under
   ``max_ongoing_requests``; if the sample finds none, the request waits at the router (pool
   queue) and goes to the first replica that frees a slot.

``PoolState`` objects are updated in place as counts change (O(1) per event), so a dispatch
costs one policy call; a replica event costs O(log n) in the heap. Each tick feeds the
autoscaler (``serve.sim.autoscaler``), refreshes the pools' observed latencies (the router's
``LatencyTracker``) and samples the fleet for plots.

Billing: a replica costs its pool's price from the moment it is requested (scale-up) until it
stops (drained after scale-down, or cancelled while starting), idle or not.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from serve.constants import DEFAULT_LATENCY_MAX_AGE_S, DEFAULT_LATENCY_TARGET_PERCENTILE
from serve.dispatch.latency import LatencyTracker
from serve.dispatch.types import DispatchPolicy, PoolState, RequestEstimate
from serve.sim.autoscaler import PoolAutoscaler
from serve.sim.pools import SimPoolSpec
from serve.sim.replica import Replica, ReplicaModel, RequestBook
from serve.sim.trace import Trace

CONTROL_PERIOD_S = 1.0
SERIES_PERIOD_S = 10.0
PROGRESS_EVERY_REQUESTS = 10_000
# Power-of-two samples tried before a request waits at the router.
MAX_ROUTING_SAMPLES = 3

_REPLICA = 0
_READY = 1


@dataclass
class _Pool:
    index: int
    spec: SimPoolSpec
    state: PoolState
    model: ReplicaModel
    autoscaler: PoolAutoscaler
    active: list[Replica] = field(default_factory=list)  # ready, taking requests
    position: dict[int, int] = field(default_factory=dict)  # replica index -> slot in active
    starting: list[Replica] = field(default_factory=list)
    pending: deque[int] = field(default_factory=deque)  # waiting at the router
    target_replicas: int = 0
    draining: int = 0


@dataclass
class FleetRun:
    """Everything a run produced: per-request times (numpy, seconds; NaN if never served),
    the pool each request went to, every replica's billed interval, and fleet samples."""

    pools: list[SimPoolSpec]
    policy: str
    trace: Trace
    t_first: np.ndarray
    t_decode: np.ndarray
    t_done: np.ndarray
    pool_of: np.ndarray
    replica_pool: np.ndarray  # per replica ever requested
    replica_start_s: np.ndarray
    replica_stop_s: np.ndarray
    series_t: np.ndarray
    series_replicas: np.ndarray  # [time, pool] billed replicas
    series_in_flight: np.ndarray  # [time, pool]
    end_s: float
    reasons: dict[str, int]


class Fleet:
    """One simulation: ``Fleet(pools, policy).run(trace)``. Not reusable across runs.

    Each pool starts with its ``initial_replicas`` (else ``min_replicas``); with
    ``warm_start`` they are serving at t=0 (a fleet that was running before the trace
    starts), otherwise they start cold like any scale-up. Billing starts at t=0 either way.
    """

    def __init__(
        self,
        pools: Sequence[SimPoolSpec],
        policy: DispatchPolicy,
        *,
        seed: int = 0,
        control_period_s: float = CONTROL_PERIOD_S,
        series_period_s: float = SERIES_PERIOD_S,
        warm_start: bool = True,
    ) -> None:
        if not pools:
            raise ValueError("a fleet needs at least one pool")
        names = [p.name for p in pools]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate pool names: {names}")
        self.specs = list(pools)
        self.policy = policy
        self.rng = random.Random(seed)
        self.control_period_s = control_period_s
        self.series_period_s = series_period_s
        self.warm_start = warm_start
        self.now = 0.0
        self.tracker = LatencyTracker(max_age_s=DEFAULT_LATENCY_MAX_AGE_S, clock=lambda: self.now)
        self._heap: list[tuple[float, int, int, Replica, int]] = []
        self._seq = 0
        self._replicas: list[Replica] = []
        self._reasons: dict[str, int] = {}
        self._finished = 0
        self._observed: set[int] = set()  # pools with new latency observations since the last tick

    # ---- run ---------------------------------------------------------------------------

    def run(self, trace: Trace, progress: Callable[[int], None] | None = None) -> FleetRun:
        """Replay ``trace``; returns when every request has finished. ``progress`` is called
        with the number of requests dispatched so far, every ``PROGRESS_EVERY_REQUESTS``."""
        book = RequestBook(trace.prompt_tokens.tolist(), trace.output_tokens.tolist())
        self.book = book
        self.pools = [
            _Pool(
                i,
                s,
                s.pool_state(),
                ReplicaModel.from_profile(s.profile, s.kv_capacity_tokens),
                PoolAutoscaler(s.autoscaling, s.scaling, s.work_model(), s.max_ongoing_requests),
            )
            for i, s in enumerate(self.specs)
        ]
        self.states = [p.state for p in self.pools]
        self.by_name = {p.spec.name: p for p in self.pools}
        for pool in self.pools:
            initial = pool.spec.autoscaling.initial_replicas
            self._scale_to(pool, pool.spec.autoscaling.min_replicas if initial is None else initial, 0.0)
            if self.warm_start:
                for replica in list(pool.starting):
                    self._on_ready(replica, 0.0)

        arrivals = trace.arrival_s.tolist()
        self._arrival = arrivals
        caps = trace.max_output_tokens.tolist()
        model = self.specs[0].model
        n = len(arrivals)
        heap = self._heap
        series_t: list[float] = []
        series_rep: list[list[int]] = []
        series_inf: list[list[int]] = []
        i = 0
        next_tick = 0.0
        next_series = 0.0
        inf = float("inf")
        while True:
            t_arr = arrivals[i] if i < n else inf
            t_ev = heap[0][0] if heap else inf
            if next_tick <= t_arr and next_tick <= t_ev:
                if i >= n and self._finished >= n:
                    break
                self.now = next_tick
                self._tick(next_tick)
                if next_tick >= next_series:
                    series_t.append(next_tick)
                    series_rep.append([len(p.active) + len(p.starting) + p.draining for p in self.pools])
                    series_inf.append([p.state.running + p.state.waiting for p in self.pools])
                    next_series += self.series_period_s
                next_tick += self.control_period_s
            elif t_arr <= t_ev:
                self.now = t_arr
                self._arrive(i, t_arr, RequestEstimate(model, book.prompt[i], caps[i]))
                i += 1
                if progress is not None and i % PROGRESS_EVERY_REQUESTS == 0:
                    progress(i)
            else:
                t, _, kind, replica, version = heapq.heappop(heap)
                self.now = t
                if kind == _REPLICA:
                    if version == replica.version:
                        replica.scheduled_s = None
                        self._on_replica_event(replica, t)
                else:
                    self._on_ready(replica, t)
        if progress is not None:
            progress(n)
        end_s = max(self.now, trace.duration_s)
        for r in self._replicas:
            if r.stop_s is None:
                r.stop_s = end_s
        return FleetRun(
            pools=self.specs,
            policy=getattr(self.policy, "name", type(self.policy).__name__),
            trace=trace,
            t_first=np.asarray(book.t_first),
            t_decode=np.asarray(book.t_decode),
            t_done=np.asarray(book.t_done),
            pool_of=np.asarray(book.pool, dtype=np.int32),
            replica_pool=np.asarray([r.pool for r in self._replicas], dtype=np.int32),
            replica_start_s=np.asarray([r.start_s for r in self._replicas]),
            replica_stop_s=np.asarray([r.stop_s for r in self._replicas]),
            series_t=np.asarray(series_t),
            series_replicas=np.asarray(series_rep, dtype=np.int32).reshape(len(series_t), len(self.pools)),
            series_in_flight=np.asarray(series_inf, dtype=np.int32).reshape(len(series_t), len(self.pools)),
            end_s=end_s,
            reasons=dict(self._reasons),
        )

    # ---- requests ----------------------------------------------------------------------

    def _arrive(self, rid: int, t: float, request: RequestEstimate) -> None:
        decision = self.policy.choose(request, self.states)
        self._reasons[decision.reason] = self._reasons.get(decision.reason, 0) + 1
        by_name = self.by_name
        for name in decision.wake:
            pool = by_name[name]
            if pool.target_replicas == 0:
                self._scale_to(pool, 1, t)
        chosen = None
        for name in decision.pools:
            pool = by_name[name]
            if pool.active:
                chosen = pool
                break
        if chosen is None:
            if not decision.pools:
                raise RuntimeError(f"policy {decision.reason!r} chose no pool for request {rid}")
            chosen = by_name[decision.pools[0]]
            if chosen.target_replicas == 0:
                self._scale_to(chosen, 1, t)  # Ray scales from zero as soon as a request waits
        self.book.pool[rid] = chosen.index
        chosen.autoscaler.record_arrival(t, request.prompt_tokens)
        replica = self._pick(chosen)
        if replica is None:
            chosen.pending.append(rid)
            chosen.state.waiting += 1
        else:
            self._send(chosen, replica, rid, t)

    def _pick(self, pool: _Pool) -> Replica | None:
        """Ray's power-of-two choice among replicas under their ongoing-request cap."""
        active = pool.active
        n = len(active)
        if n == 0:
            return None
        cap = pool.spec.max_ongoing_requests
        if n == 1:
            r = active[0]
            return r if r.in_flight < cap else None
        rand = self.rng.random
        for _ in range(MAX_ROUTING_SAMPLES):
            a = active[int(rand() * n)]
            b = active[int(rand() * n)]
            r = a if a.in_flight <= b.in_flight else b
            if r.in_flight < cap:
                return r
        return None

    def _send(self, pool: _Pool, replica: Replica, rid: int, t: float) -> None:
        admitted, queued = replica.admitted, len(replica.queue)
        finished = replica.enqueue(rid, t)
        self._account(pool, replica, admitted, queued, finished)
        self._reschedule(replica)

    def _account(self, pool: _Pool, replica: Replica, admitted: int, queued: int, finished: int) -> None:
        state = pool.state
        state.running += replica.admitted - admitted
        state.waiting += len(replica.queue) - queued
        if finished:
            self._finished += finished
            book = self.book
            for rid in book.completed:
                out = book.output[rid]
                ttft_ms = 1000.0 * (book.t_first[rid] - self._arrival[rid])
                tpot_ms = 1000.0 * (book.t_done[rid] - book.t_decode[rid]) / (out - 1) if out > 1 else None
                self.tracker.observe(state.name, ttft_ms, tpot_ms)
            book.completed.clear()
            self._observed.add(pool.index)

    def _reschedule(self, replica: Replica) -> None:
        t = replica.next_event_s()
        if t != replica.scheduled_s:
            replica.version += 1
            replica.scheduled_s = t
            if t is not None:
                self._seq += 1
                heapq.heappush(self._heap, (t, self._seq, _REPLICA, replica, replica.version))

    def _on_replica_event(self, replica: Replica, t: float) -> None:
        pool = self.pools[replica.pool]
        admitted, queued = replica.admitted, len(replica.queue)
        finished = replica.on_event(t)
        self._account(pool, replica, admitted, queued, finished)
        if replica.draining:
            if replica.in_flight == 0:
                self._stop(pool, replica, t)
        else:
            self._pull_pending(pool, replica, t)
        self._reschedule(replica)

    def _pull_pending(self, pool: _Pool, replica: Replica, t: float) -> None:
        pending = pool.pending
        cap = pool.spec.max_ongoing_requests
        while pending and replica.in_flight < cap:
            rid = pending.popleft()
            pool.state.waiting -= 1
            admitted, queued = replica.admitted, len(replica.queue)
            finished = replica.enqueue(rid, t)
            self._account(pool, replica, admitted, queued, finished)

    # ---- replicas and scaling ----------------------------------------------------------

    def _on_ready(self, replica: Replica, t: float) -> None:
        if replica.stop_s is not None or replica.ready_s is not None:
            return  # cancelled while starting, or started warm
        pool = self.pools[replica.pool]
        pool.starting.remove(replica)
        replica.ready_s = t
        replica.t_last = t
        pool.position[replica.index] = len(pool.active)
        pool.active.append(replica)
        pool.state.replicas = len(pool.active)
        pool.state.starting = len(pool.starting)
        self._pull_pending(pool, replica, t)
        self._reschedule(replica)

    def _scale_to(self, pool: _Pool, target: int, t: float) -> None:
        spec = pool.spec
        target = min(max(target, 0), spec.autoscaling.max_replicas)
        current = len(pool.active) + len(pool.starting)
        for _ in range(target - current):
            r = Replica(pool.model, self.book, pool.index, len(self._replicas), t)
            self._replicas.append(r)
            pool.starting.append(r)
            self._seq += 1
            heapq.heappush(self._heap, (t + spec.cold_start_s, self._seq, _READY, r, 0))
        surplus = current - target
        while surplus > 0 and pool.starting:
            r = pool.starting.pop()
            r.stop_s = t
            surplus -= 1
        if surplus > 0:
            for r in sorted(pool.active, key=lambda r: r.in_flight)[:surplus]:
                self._deactivate(pool, r)
                r.draining = True
                pool.draining += 1
                if r.in_flight == 0:
                    self._stop(pool, r, t)
        pool.target_replicas = target
        pool.state.replicas = len(pool.active)
        pool.state.starting = len(pool.starting)

    def _deactivate(self, pool: _Pool, replica: Replica) -> None:
        slot = pool.position.pop(replica.index)
        last = pool.active.pop()
        if last is not replica:
            pool.active[slot] = last
            pool.position[last.index] = slot

    def _stop(self, pool: _Pool, replica: Replica, t: float) -> None:
        replica.stop_s = t
        pool.draining -= 1

    # ---- control loop ------------------------------------------------------------------

    def _tick(self, t: float) -> None:
        # The router's LatencyTracker refreshes every pool each poll; only pools with new
        # observations can change, so only those are recomputed.
        for index in self._observed:
            state = self.pools[index].state
            p = state.target.percentile if state.target else DEFAULT_LATENCY_TARGET_PERCENTILE
            observed = self.tracker.percentile(state.name, p)
            state.observed_ttft_ms, state.observed_tpot_ms = observed if observed else (None, None)
        self._observed.clear()
        for pool in self.pools:
            state = pool.state
            if pool.pending and pool.active:
                self._sweep_pending(pool, t)
            pool.autoscaler.observe(t, state.running + state.waiting)
            target = pool.autoscaler.decide(t, len(pool.active), pool.target_replicas, len(pool.pending))
            if target != pool.target_replicas:
                self._scale_to(pool, target, t)

    def _sweep_pending(self, pool: _Pool, t: float) -> None:
        """Requests waiting at the router go to any replica with room (Ray's router retries)."""
        cap = pool.spec.max_ongoing_requests
        for replica in pool.active:
            if not pool.pending:
                break
            if replica.in_flight < cap:
                self._pull_pending(pool, replica, t)
                self._reschedule(replica)
