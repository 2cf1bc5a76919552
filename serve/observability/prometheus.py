"""The metrics table as prometheus_client objects in a registry of their own.

A private ``CollectorRegistry`` per instance (never the process-wide default) lets tests build
as many as they like and keeps Frugal's series apart from anything else in the process.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from serve.observability.catalog import METRICS, MetricSpec

# The classic text format: every Prometheus version parses it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class PrometheusSink:
    """Records into prometheus_client metrics; ``render`` is the text a scrape returns."""

    def __init__(self, specs: tuple[MetricSpec, ...] = METRICS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}
        for spec in specs:
            self._metrics[spec.name] = _build(spec, self.registry)
        self._labels = {spec.name: spec.labels for spec in specs}

    def inc(self, name: str, labels: Mapping[str, str], value: float) -> None:
        metric = self._child(name, labels)
        metric.inc(value)  # type: ignore[union-attr]

    def observe(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._child(name, labels).observe(value)  # type: ignore[union-attr]

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._child(name, labels).set(value)  # type: ignore[union-attr]

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        """Drop one labelled series (a gauge whose value no longer exists)."""
        metric = self._metrics[name]
        values = [labels[k] for k in self._labels[name]]
        try:
            metric.remove(*values)
        except KeyError:
            pass  # never set: nothing to drop

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of a scrape."""
        return generate_latest(self.registry), CONTENT_TYPE

    def _child(self, name: str, labels: Mapping[str, str]) -> Counter | Gauge | Histogram:
        metric = self._metrics[name]
        if not self._labels[name]:
            return metric
        return metric.labels(**{k: labels[k] for k in self._labels[name]})


def _build(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    if spec.kind == "counter":
        return Counter(spec.name, spec.doc, spec.labels, registry=registry)
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.doc, spec.labels, registry=registry, buckets=spec.buckets_s)
    return Gauge(spec.name, spec.doc, spec.labels, registry=registry)
