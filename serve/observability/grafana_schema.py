"""A pydantic model of the Grafana dashboard JSON fields Frugal's dashboard uses.

Grafana publishes its dashboard schema as CUE (the "Dashboard" kind, schema 0.0, in
grafana/grafana ``kinds/dashboard/dashboard_kind.cue``), not as a JSON Schema any Python
package ships. This model transcribes the parts of that kind the dashboard relies on, with
its constraints (grid positions within 24 columns, positive heights, a non-empty panel type,
"light"/"dark" style, cursor sync 0-2, variable types and hide values), plus the checks
Grafana applies when it loads a dashboard or a query runs: unique panel ids, unique query
refIds within a panel, panels that do not overlap, and template variables that exist.

It is stricter than Grafana in one way (unknown keys are refused, so a typo fails the test)
and looser in another (panel ``options`` and ``fieldConfig.defaults`` are free-form: their
schemas belong to each panel plugin). Loading the file into a running Grafana remains the
final check; ``docs/observability.md`` says how.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

# Variables Grafana defines itself; a query may use them without declaring them.
BUILTIN_VARIABLES: frozenset[str] = frozenset({
    "__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__dashboard", "__from", "__to",
})
_VARIABLE = re.compile(r"\$\{?(\w+)")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DataSourceRef(_Closed):
    type: str | None = None
    uid: str | None = None


class GridPos(_Closed):
    h: Annotated[int, Field(gt=0)]
    w: Annotated[int, Field(gt=0, le=24)]
    x: Annotated[int, Field(ge=0, lt=24)]
    y: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _fits(self) -> GridPos:
        if self.x + self.w > 24:
            raise ValueError(f"gridPos x {self.x} + w {self.w} exceeds the 24 columns")
        return self

    def cells(self) -> set[tuple[int, int]]:
        return {(x, y) for x in range(self.x, self.x + self.w) for y in range(self.y, self.y + self.h)}


class PrometheusTarget(_Closed):
    """One query of a panel on a Prometheus data source."""

    refId: Annotated[str, Field(min_length=1)]
    expr: Annotated[str, Field(min_length=1)]
    datasource: DataSourceRef | None = None
    legendFormat: str | None = None
    instant: bool | None = None
    range: bool | None = None
    format: Literal["time_series", "table", "heatmap"] | None = None
    interval: str | None = None


class FieldConfigSource(_Closed):
    defaults: dict[str, JsonValue]
    overrides: list[dict[str, JsonValue]]


class Panel(_Closed):
    type: Annotated[str, Field(min_length=1, description="a panel plugin id; rows are RowPanel")]
    id: Annotated[int, Field(ge=0)]
    title: str
    description: str | None = None
    transparent: bool = False
    datasource: DataSourceRef
    gridPos: GridPos
    targets: Annotated[list[PrometheusTarget], Field(min_length=1)]
    options: dict[str, JsonValue]
    fieldConfig: FieldConfigSource
    transformations: list[dict[str, JsonValue]] = Field(default_factory=list)
    repeatDirection: Literal["h", "v"] = "h"
    interval: str | None = None
    maxDataPoints: int | None = None
    pluginVersion: str | None = None

    @model_validator(mode="after")
    def _unique_ref_ids(self) -> Panel:
        if self.type == "row":
            raise ValueError(f"panel {self.title!r}: a row needs collapsed, panels and no targets")
        ids = [t.refId for t in self.targets]
        if len(ids) != len(set(ids)):
            raise ValueError(f"panel {self.title!r}: duplicate refIds {ids}")
        return self


class RowPanel(_Closed):
    type: Literal["row"]
    id: Annotated[int, Field(ge=0)]
    title: str
    collapsed: bool = False
    gridPos: GridPos
    panels: list[Panel] = Field(default_factory=list, description="only when collapsed")
    datasource: DataSourceRef | None = None

    @model_validator(mode="after")
    def _open_rows_hold_nothing(self) -> RowPanel:
        if not self.collapsed and self.panels:
            raise ValueError(f"row {self.title!r}: an expanded row keeps its panels at the top level")
        return self


class VariableOption(_Closed):
    text: str
    value: str
    selected: bool = False


class Variable(_Closed):
    type: Literal["query", "adhoc", "constant", "datasource", "interval", "textbox", "custom", "system"]
    name: Annotated[str, Field(pattern=r"^\w+$")]
    label: str | None = None
    description: str | None = None
    hide: Literal[0, 1, 2] = 0
    skipUrlSync: bool = False
    query: str | dict[str, JsonValue] | None = None
    datasource: DataSourceRef | None = None
    current: dict[str, JsonValue] = Field(default_factory=dict)
    options: list[VariableOption] = Field(default_factory=list)
    includeAll: bool = False
    multi: bool = False
    refresh: Literal[0, 1, 2] | None = None
    regex: str | None = None


class Templating(_Closed):
    variables: list[Variable] = Field(default_factory=list, alias="list")


class TimeRange(_Closed):
    from_: str = Field(alias="from")
    to: str


class AnnotationQuery(_Closed):
    name: str
    datasource: DataSourceRef
    enable: bool = True
    hide: bool = False
    iconColor: str
    type: str | None = None
    builtIn: int | None = None


class Annotations(_Closed):
    queries: list[AnnotationQuery] = Field(default_factory=list, alias="list")


class Dashboard(_Closed):
    """The dashboard JSON as Grafana stores it (``GET /api/dashboards/uid/...`` ``.dashboard``)."""

    id: int | None = None
    uid: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
    title: Annotated[str, Field(min_length=1)]
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    style: Literal["light", "dark"] = "dark"
    timezone: str = "browser"
    editable: bool = True
    graphTooltip: Literal[0, 1, 2] = 0
    time: TimeRange
    refresh: str | Literal[False] | None = None
    schemaVersion: Annotated[int, Field(ge=0, lt=65536)]
    version: Annotated[int, Field(ge=0)] | None = None
    fiscalYearStartMonth: Annotated[int, Field(ge=0, lt=12)] = 0
    liveNow: bool | None = None
    weekStart: str | None = None
    panels: list[Panel | RowPanel]
    templating: Templating
    annotations: Annotations = Field(default_factory=Annotations)
    links: list[dict[str, JsonValue]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Dashboard:
        ids = [p.id for p in self.panels] + [q.id for p in self.panels if isinstance(p, RowPanel) for q in p.panels]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate panel ids {dupes}")
        taken: dict[tuple[int, int], str] = {}
        for panel in self.panels:
            for cell in panel.gridPos.cells():
                if cell in taken:
                    raise ValueError(f"panel {panel.title!r} overlaps {taken[cell]!r} at {cell}")
                taken[cell] = panel.title
        declared = {v.name for v in self.templating.variables} | BUILTIN_VARIABLES
        for panel in self.query_panels():
            for text in [panel.datasource.uid or ""] + [t.expr for t in panel.targets]:
                unknown = sorted(set(_VARIABLE.findall(text)) - declared)
                if unknown:
                    raise ValueError(f"panel {panel.title!r} uses undeclared variables {unknown}")
        return self

    def query_panels(self) -> list[Panel]:
        """Every panel that runs queries, collapsed rows' panels included."""
        out: list[Panel] = []
        for panel in self.panels:
            out.extend(panel.panels if isinstance(panel, RowPanel) else [panel])
        return out


def validate_dashboard(data: Any) -> Dashboard:
    """The dashboard parsed and checked; raises ``pydantic.ValidationError`` naming the path."""
    return Dashboard.model_validate(data)
