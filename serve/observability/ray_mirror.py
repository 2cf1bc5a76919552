"""The metrics table mirrored into Ray's metrics pipeline (``ray.util.metrics``).

Inside a Ray worker, ``ray.util.metrics`` records go to the node's metrics agent, which
exports them at the node's metrics export port with a ``ray_`` prefix (a counter named
``frugal_requests`` becomes ``ray_frugal_requests_total``) and extra labels naming the
worker (``WorkerId``, ``NodeAddress``, ``SessionName``...). With several router replicas this
is the exact path: every replica's series arrive, where a scrape of ``/metrics`` through the
Serve HTTP port reaches one replica. ``deployments/prometheus/prometheus.yml`` strips the
prefix so the same dashboard reads either source.

Ray is imported when a mirror is built, never at module import. Ray's counters refuse zero
and negative increments and its histograms need positive bucket bounds; both hold for the
calls ``FrugalMetrics`` makes (zero increments are skipped here).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from serve.observability.catalog import METRICS, MetricSpec


def ray_worker_initialised() -> bool:
    """True inside a process where Ray is imported and initialised (a Serve replica)."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


class RayMirror:
    """Records into ``ray.util.metrics`` objects built from the same table."""

    def __init__(self, specs: tuple[MetricSpec, ...] = METRICS) -> None:
        from ray.util import metrics as ray_metrics

        self._metrics: dict[str, Any] = {}
        for spec in specs:
            if spec.kind == "counter":
                metric = ray_metrics.Counter(spec.name, spec.doc, tag_keys=spec.labels)
            elif spec.kind == "histogram":
                metric = ray_metrics.Histogram(spec.name, spec.doc, list(spec.buckets_s), tag_keys=spec.labels)
            else:
                metric = ray_metrics.Gauge(spec.name, spec.doc, tag_keys=spec.labels)
            self._metrics[spec.name] = metric
        self._labels = {spec.name: spec.labels for spec in specs}

    def inc(self, name: str, labels: Mapping[str, str], value: float) -> None:
        if value > 0:
            self._metrics[name].inc(float(value), tags=self._tags(name, labels))

    def observe(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._metrics[name].observe(float(value), tags=self._tags(name, labels))

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._metrics[name].set(float(value), tags=self._tags(name, labels))

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        # Ray's gauges cannot drop a series (``set(None)`` is a no-op): the last value stays
        # exported until the worker exits. Only rare transitions remove gauges (a budget
        # lifted), so the stale value is accepted rather than exporting a made-up one.
        return None

    def _tags(self, name: str, labels: Mapping[str, str]) -> dict[str, str]:
        return {k: labels[k] for k in self._labels[name]}
