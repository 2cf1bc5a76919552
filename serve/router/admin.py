"""The usage and admin endpoints, as a FastAPI router to include in the router app.

- ``GET /v1/usage?start=&end=``: the calling tenant's own usage (bearer API key).
- ``/admin/...`` (bearer admin key): keys (create, list, get, update, revoke), tenants (list,
  set tier and budget), usage grouped by tenant/model/day (JSON or ``format=csv``), invoices.

Errors leave as FrugalError (the app's handlers make them OpenAI-shaped JSON); malformed
bodies and parameters are 400s naming the parameter, through the same handlers. The app
must have ``install_error_handlers`` installed.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from serve.router.errors import bad_request
from serve.tenants.auth import TenantContext
from serve.tenants.config import TENANT_ID_PATTERN
from serve.tenants.keyadmin import CreatedKey, KeyView, TenantView
from serve.tenants.keys import KEY_ID_PATTERN
from serve.tenants.reports import TenantUsage
from serve.tenants.service import Tenants
from serve.tenants.usage import GROUP_KEYS, GroupKey, Invoice, UsageGroup, to_csv

T = TypeVar("T")
PERIOD_PATTERN = r"^\d{4}-\d{2}$"


class AdminModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateKeyRequest(AdminModel):
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    tier: str | None = Field(default=None, description="required for a new tenant; sets the tenant's tier")
    name: str = Field(default="", max_length=200)


class UpdateKeyRequest(AdminModel):
    name: str | None = Field(default=None, max_length=200)
    revoked: bool | None = None


class PutTenantRequest(AdminModel):
    tier: str
    monthly_budget_usd: float | None = Field(default=None, ge=0)


class ListResponse(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]


# Path and query parameters are checked here rather than by FastAPI, so the 400 names the
# parameter itself (the shared handler would name its location, "path" or "query").
def check_key_id(value: str) -> str:
    if not re.fullmatch(KEY_ID_PATTERN, value):
        raise bad_request(f"key_id must be the 12 hex digits after 'frg-', got {value!r}.", param="key_id")
    return value


def parse_date(value: str | None, param: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{param} must be a date, YYYY-MM-DD; got {value!r}.", param=param) from None


def parse_group_by(value: str) -> list[GroupKey]:
    keys = [k.strip() for k in value.split(",") if k.strip()]
    bad = [k for k in keys if k not in GROUP_KEYS]
    if bad or len(set(keys)) != len(keys):
        raise bad_request(
            f"group_by takes distinct values among {list(GROUP_KEYS)}, comma-separated.", param="group_by"
        )
    return keys  # type: ignore[return-value]


def build_admin_router(tenants: Tenants) -> APIRouter:
    router = APIRouter()

    async def tenant(authorization: Annotated[str | None, Header()] = None) -> TenantContext:
        return await tenants.authenticate(authorization)

    async def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        tenants.authenticate_admin(authorization)

    admin_only = [Depends(admin)]

    @router.get("/v1/usage", response_model_exclude_none=True)
    # Depends as a default value: a local dependency cannot be named in a (string) annotation.
    async def usage(
        context: TenantContext = Depends(tenant), start: str | None = None, end: str | None = None  # noqa: B008
    ) -> TenantUsage:
        return await tenants.reports.tenant_usage(context, parse_date(start, "start"), parse_date(end, "end"))

    @router.post("/admin/keys", status_code=201, dependencies=admin_only)
    async def create_key(body: CreateKeyRequest) -> CreatedKey:
        return await tenants.keys.create_key(body.tenant_id, body.tier, body.name)

    @router.get("/admin/keys", dependencies=admin_only)
    async def list_keys(tenant_id: str | None = None) -> ListResponse[KeyView]:
        return ListResponse(data=await tenants.keys.list_keys(tenant_id))

    @router.get("/admin/keys/{key_id}", dependencies=admin_only)
    async def get_key(key_id: str) -> KeyView:
        return await tenants.keys.get_key(check_key_id(key_id))

    @router.patch("/admin/keys/{key_id}", dependencies=admin_only)
    async def update_key(key_id: str, body: UpdateKeyRequest) -> KeyView:
        return await tenants.keys.update_key(check_key_id(key_id), body.name, body.revoked)

    @router.delete("/admin/keys/{key_id}", dependencies=admin_only)
    async def revoke_key(key_id: str) -> KeyView:
        return await tenants.keys.revoke_key(check_key_id(key_id))

    @router.get("/admin/tenants", dependencies=admin_only)
    async def list_tenants() -> ListResponse[TenantView]:
        return ListResponse(data=await tenants.keys.list_tenants())

    @router.put("/admin/tenants/{tenant_id}", dependencies=admin_only)
    async def put_tenant(tenant_id: str, body: PutTenantRequest) -> TenantView:
        if not re.fullmatch(TENANT_ID_PATTERN, tenant_id):
            raise bad_request(f"tenant_id must match {TENANT_ID_PATTERN}.", param="tenant_id")
        return await tenants.keys.put_tenant(tenant_id, body.tier, body.monthly_budget_usd)

    @router.get("/admin/usage", dependencies=admin_only, response_model=None)
    async def admin_usage(
        start: str | None = None,
        end: str | None = None,
        group_by: str = "tenant,model,day",
        tenant_id: str | None = None,
        format: str = "json",
    ) -> ListResponse[UsageGroup] | Response:
        by = parse_group_by(group_by)
        if format not in ("json", "csv"):
            raise bad_request("format is json or csv.", param="format")
        groups = await tenants.reports.usage(parse_date(start, "start"), parse_date(end, "end"), by, tenant_id)
        if format == "csv":
            return Response(
                to_csv(groups, by),
                media_type="text/csv",
                headers={"content-disposition": 'attachment; filename="frugal-usage.csv"'},
            )
        return ListResponse(data=groups)

    @router.get("/admin/invoices", dependencies=admin_only)
    async def invoices(period: str | None = None, tenant_id: str | None = None) -> ListResponse[Invoice]:
        if period is not None and not re.fullmatch(PERIOD_PATTERN, period):
            raise bad_request(f"period must read YYYY-MM, got {period!r}.", param="period")
        return ListResponse(data=await tenants.reports.invoices(period, tenant_id))

    @router.get("/admin/status", dependencies=admin_only)
    async def status() -> JSONResponse:
        return JSONResponse({"counters": tenants.counters()})

    return router
