"""``metrics:`` in the Frugal config: label cardinality and where metrics are exported."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve.constants import METRICS_MAX_TENANT_LABELS


class MetricsConfig(BaseModel):
    """How the router's metrics are labelled and exported.

    ``tenant_label``: "none" (default) labels every series ``tenant="-"``, so the number of
    series does not grow with tenants; "id" labels by tenant id, for at most
    ``max_tenant_labels`` distinct tenants per router replica (later ones are "other"), and
    enables the per-tenant spend and budget gauges.

    ``export_to_ray``: "auto" mirrors every metric into Ray's metrics pipeline
    (``ray.util.metrics``, exported by each node's metrics agent with a ``ray_`` prefix) when
    the router runs inside an initialised Ray worker; "on" requires it, "off" never does it.
    The router's ``/metrics`` endpoint serves the same metrics in either case.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_label: Literal["none", "id"] = "none"
    max_tenant_labels: Annotated[int, Field(ge=1)] = METRICS_MAX_TENANT_LABELS
    export_to_ray: Literal["auto", "on", "off"] = "auto"
