"""Read a Prometheus text scrape back into numbers: for tests and checks that compare the
metrics with responses and the ledger (``sum_samples(text, "frugal_cost_usd_total")``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    """Every sample of a scrape in the Prometheus text format. Raises ``ValueError`` for
    text that is not in that format."""
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def sum_samples(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        s.value for s in parse_samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
