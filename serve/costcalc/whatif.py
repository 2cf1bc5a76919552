"""What the ledger's traffic would have cost on other fleets: all H100, each single GPU type,
and the cheapest mix, each meeting the models' latency targets.

The traffic is the ledger's requests that reached a pool (cache hits would be hits on any
fleet), per model. Requests are grouped into the simulator's size buckets
(``serve.sim.optimal``: prompt x output length), with each bucket's mean sizes over the period
and its count per interval (default one hour). For each model and GPU type, one replica's
capacity per bucket within the target comes from the capacity model
(``serve.sim.capacity`` via ``capacity_matrix``), with the catalogue's roofline profile or a
measured profile from the config for that type. Then, per interval:

- a single type needs ``ceil(sum_b rate_b / mu_b)`` replicas (the one-pool case of the
  integer program, in closed form), 0 in an interval without traffic;
- the mix is ``serve.sim.optimal.cheapest_fleet`` over every type that can serve the traffic.

Two totals per fleet: ``fleet_usd``, those replicas for the whole interval (an ideal
autoscaler that resizes every interval, idle capacity inside it paid for), and
``utilised_usd``, only the replica-time the requests occupied at the target's operating point
(``sum count / mu x price``; for the mix, each request on the type cheapest for its size),
which is how the ledger attributes cost and so is the figure to compare with its
``cost_usd``. Both are fluid steady-state estimates, and the catalogue's on-demand prices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict

from serve.catalog.gpus import GPU_CATALOG, gpu_spec
from serve.catalog.models import model_spec
from serve.constants import REPORT_WHAT_IF_INTERVAL_S, SECONDS_PER_HOUR
from serve.cost.profile import ThroughputProfile
from serve.dispatch.types import LatencyTarget
from serve.sim.optimal import OUTPUT_BUCKET_EDGES, PROMPT_BUCKET_EDGES, Buckets, capacity_matrix, cheapest_fleet
from serve.sim.pools import SimPoolSpec, catalogue_pool
from serve.tenants.ledger_record import LedgerRecord

ALL_H100 = "H100"
# Wraps a loop with a progress display: (iterable, label) -> the same items.
Progress = Callable[[Iterable[int], str], Iterable[int]]


@dataclass(frozen=True)
class WhatIfModel:
    """How to model one served model on other hardware."""

    catalogue_model: str  # a key of serve.catalog.models
    target: LatencyTarget
    measured: dict[str, ThroughputProfile] = field(default_factory=dict)  # by GPU type, one device


class FleetCost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fleet: str  # a GPU type, or "mix"
    feasible: bool
    reason: str | None = None
    fleet_usd: float | None = None
    utilised_usd: float | None = None
    peak_replicas: dict[str, int] = {}


class ModelWhatIf(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    catalogue_model: str
    requests: int
    mean_prompt_tokens: float
    mean_output_tokens: float
    target_ttft_ms: float
    target_tpot_ms: float
    actual_cost_usd: float
    fleets: list[FleetCost]

    def fleet(self, name: str) -> FleetCost:
        return next(f for f in self.fleets if f.fleet == name)


class WhatIf(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_s: float
    models: list[ModelWhatIf]
    skipped: list[str]
    actual_cost_usd: float
    by_fleet: list[FleetCost]  # summed over models: every GPU type, then "mix"
    all_h100: FleetCost
    cheapest_single: FleetCost | None  # the cheapest type that serves every model

    def fleet(self, name: str) -> FleetCost:
        return next(f for f in self.by_fleet if f.fleet == name)


@dataclass
class _Traffic:
    buckets: Buckets  # mean sizes; rate_per_s unused
    counts: np.ndarray  # [interval, bucket]


def traffic(records: Sequence[LedgerRecord], start_s: float, end_s: float, interval_s: float) -> _Traffic:
    """Bucketed request counts per interval of [start_s, end_s)."""
    p = np.array([max(r.prompt_tokens, 1) for r in records], dtype=np.float64)
    o = np.array([max(r.completion_tokens, 1) for r in records], dtype=np.float64)
    t = np.array([r.time_s for r in records], dtype=np.float64)
    pi = np.searchsorted(PROMPT_BUCKET_EDGES, p, side="right") - 1
    oi = np.searchsorted(OUTPUT_BUCKET_EDGES, o, side="right") - 1
    keys, inverse = np.unique(pi * len(OUTPUT_BUCKET_EDGES) + oi, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(keys))
    num_intervals = max(1, math.ceil((end_s - start_s) / interval_s))
    slot = np.clip(((t - start_s) // interval_s).astype(np.int64), 0, num_intervals - 1)
    counts = np.zeros((num_intervals, len(keys)))
    np.add.at(counts, (slot, inverse), 1.0)
    buckets = Buckets(np.bincount(inverse, weights=p) / sizes, np.bincount(inverse, weights=o) / sizes, np.zeros(len(keys)))
    return _Traffic(buckets, counts)


def model_pools(
    spec: WhatIfModel, mean_prompt: float, mean_output: float, gpus: Iterable[str]
) -> tuple[list[SimPoolSpec], dict[str, str]]:
    """One pool per GPU type the model fits (measured profile where given), and why the others are out."""
    pools, out = [], {}
    for gpu in gpus:
        try:
            pool = catalogue_pool(
                gpu, target=spec.target, context_tokens=max(1, round(mean_prompt + mean_output / 2)),
                typical_prompt_tokens=mean_prompt, typical_output_tokens=mean_output, model_id=spec.catalogue_model,
            )
        except ValueError as e:
            out[gpu] = f"does not fit: {e}"
            continue
        if gpu in spec.measured:
            pool = pool.model_copy(update={"profile": spec.measured[gpu]})
        pools.append(pool.model_copy(update={"name": gpu}))
    return pools, out


def _single(name: str, counts: np.ndarray, mu: np.ndarray, price: float, interval_s: float) -> FleetCost:
    """One type alone: ``ceil(load)`` replicas per interval; ``mu`` is its column, all > 0."""
    load = counts / interval_s @ (1.0 / mu)  # replicas busy, per interval
    replicas = np.ceil(load - 1e-9)
    return FleetCost(
        fleet=name, feasible=True,
        fleet_usd=float(replicas.sum() * price * interval_s / SECONDS_PER_HOUR),
        utilised_usd=float((counts @ (1.0 / mu)).sum() * price / SECONDS_PER_HOUR),
        peak_replicas={name: int(replicas.max(initial=0))},
    )


def model_what_if(
    model: str,
    records: Sequence[LedgerRecord],
    spec: WhatIfModel,
    start_s: float,
    end_s: float,
    interval_s: float,
    gpus: Sequence[str],
    progress: Progress = lambda it, label: it,
) -> ModelWhatIf:
    """One model's traffic on every GPU type and on the cheapest mix (module docstring)."""
    tr = traffic(records, start_s, end_s, interval_s)
    mean_p = float(np.mean([max(r.prompt_tokens, 1) for r in records]))
    mean_o = float(np.mean([max(r.completion_tokens, 1) for r in records]))
    pools, out = model_pools(spec, mean_p, mean_o, gpus)
    mu = capacity_matrix(tr.buckets, pools)
    fleets: list[FleetCost] = []
    for g, pool in enumerate(pools):
        missed = [b for b in range(mu.shape[0]) if mu[b, g] <= 0]
        if missed:
            p, o = tr.buckets.prompt_tokens[missed[0]], tr.buckets.output_tokens[missed[0]]
            fleets.append(FleetCost(fleet=pool.name, feasible=False,
                                    reason=f"misses the target for {p:.0f}-token prompts / {o:.0f}-token answers"))
            continue
        fleets.append(_single(pool.name, tr.counts, mu[:, g], pool.price_usd_per_hour, interval_s))
    fleets += [FleetCost(fleet=gpu, feasible=False, reason=reason) for gpu, reason in out.items()]
    fleets.append(_mix(tr, mu, pools, interval_s, progress, f"what-if {model}: cheapest mix per interval"))
    order = {gpu: i for i, gpu in enumerate(gpus)}
    fleets.sort(key=lambda f: order.get(f.fleet, len(order)))
    return ModelWhatIf(
        model=model, catalogue_model=spec.catalogue_model, requests=len(records),
        mean_prompt_tokens=mean_p, mean_output_tokens=mean_o,
        target_ttft_ms=spec.target.ttft_ms, target_tpot_ms=spec.target.tpot_ms,
        actual_cost_usd=math.fsum(r.cost_usd for r in records), fleets=fleets,
    )


def _mix(tr: _Traffic, mu: np.ndarray, pools: Sequence[SimPoolSpec], interval_s: float,
         progress: Progress, label: str) -> FleetCost:
    if mu.shape[1] == 0 or np.any(mu.max(axis=1) <= 0):
        return FleetCost(fleet="mix", feasible=False, reason="some request sizes meet the target on no GPU type")
    # Used replica time: each request on the type that serves its size cheapest (the integer
    # program's shares are not unique, so they do not define one).
    prices = np.array([p.price_usd_per_hour for p in pools])
    usd_per_request = np.where(mu > 0, prices / np.where(mu > 0, mu, 1.0), np.inf).min(axis=1) / SECONDS_PER_HOUR
    utilised_usd = float(tr.counts.sum(axis=0) @ usd_per_request)
    fleet_usd = 0.0
    peak: dict[str, int] = {}
    for i in progress(range(tr.counts.shape[0]), label):
        present = tr.counts[i] > 0
        if not present.any():
            continue
        rates = tr.counts[i, present] / interval_s
        buckets = Buckets(tr.buckets.prompt_tokens[present], tr.buckets.output_tokens[present], rates)
        plan = cheapest_fleet(buckets, pools, mu[present])
        fleet_usd += plan.cost_usd_per_hour * interval_s / SECONDS_PER_HOUR
        for name, n in plan.replicas_by_pool().items():
            peak[name] = max(peak.get(name, 0), round(n))
    return FleetCost(fleet="mix", feasible=True, fleet_usd=fleet_usd, utilised_usd=utilised_usd, peak_replicas=peak)


def combine(models: list[ModelWhatIf], skipped: list[str], interval_s: float, gpus: Sequence[str]) -> WhatIf:
    """Sum the models' fleets: a fleet is feasible overall only if it is for every model."""
    by_fleet = []
    for name in [*gpus, "mix"]:
        parts = [m.fleet(name) for m in models]
        bad = [f"{m.model}: {p.reason}" for m, p in zip(models, parts) if not p.feasible]
        if bad or not parts:
            by_fleet.append(FleetCost(fleet=name, feasible=False, reason="; ".join(bad) or "no traffic"))
            continue
        peak: dict[str, int] = {}
        for p in parts:
            for gpu, n in p.peak_replicas.items():
                peak[gpu] = peak.get(gpu, 0) + n
        by_fleet.append(FleetCost(
            fleet=name, feasible=True, fleet_usd=math.fsum(p.fleet_usd or 0 for p in parts),
            utilised_usd=math.fsum(p.utilised_usd or 0 for p in parts), peak_replicas=peak,
        ))
    singles = [f for f in by_fleet if f.fleet != "mix" and f.feasible]
    all_h100 = next((f for f in by_fleet if f.fleet == ALL_H100),
                    FleetCost(fleet=ALL_H100, feasible=False, reason="H100 not considered"))
    return WhatIf(
        interval_s=interval_s, models=models, skipped=skipped,
        actual_cost_usd=math.fsum(m.actual_cost_usd for m in models), by_fleet=by_fleet, all_h100=all_h100,
        cheapest_single=min(singles, key=lambda f: f.fleet_usd or 0.0) if singles else None,
    )


def what_if(
    records: Sequence[LedgerRecord],
    specs: dict[str, WhatIfModel],
    default_target: LatencyTarget,
    start_s: float,
    end_s: float,
    interval_s: float = REPORT_WHAT_IF_INTERVAL_S,
    gpus: Sequence[str] = tuple(GPU_CATALOG),
    progress: Progress = lambda it, label: it,
) -> WhatIf:
    """The what-if over every model with traffic. A model without a ``specs`` entry is looked
    up in the catalogue by its name, with ``default_target``; a model the catalogue lacks, or
    without a KV-cache shape (an embedding model), is skipped and listed in ``skipped``.
    ``progress`` wraps each model's per-interval loop (a tqdm bar in the script)."""
    if interval_s <= 0 or end_s <= start_s:
        raise ValueError("interval_s must be positive and the period not empty")
    for gpu in gpus:
        gpu_spec(gpu)  # KeyError naming the catalogue for an unknown type
    served = [r for r in records if not r.cache_hit and r.pool is not None and r.prompt_tokens + r.completion_tokens > 0]
    by_model: dict[str, list[LedgerRecord]] = {}
    for r in served:
        by_model.setdefault(r.model, []).append(r)
    models, skipped = [], []
    for name, recs in sorted(by_model.items()):
        spec = specs.get(name) or WhatIfModel(catalogue_model=name, target=default_target)
        catalogued = model_spec(spec.catalogue_model)
        if catalogued is None or catalogued.kv_bytes_per_token() is None:
            skipped.append(f"{name}: {spec.catalogue_model!r} is not a chat model of the catalogue (serve/catalog/models.py)")
            continue
        models.append(model_what_if(name, recs, spec, start_s, end_s, interval_s, gpus, progress))
    return combine(models, skipped, interval_s, gpus)
