"""Per-request cache controls: the ``cache`` field of a request body.

The shape follows LiteLLM's (clients send it through the OpenAI SDK's ``extra_body``)::

    "cache": {"no-cache": true, "no-store": true, "ttl": 60, "s-maxage": 600,
              "allow-nondeterministic": true}

- ``no-cache``: do not answer from the cache (the fresh answer may still be stored);
- ``no-store``: do not store this answer;
- ``ttl``: seconds to keep this answer, instead of the configured ``ttl_s``;
- ``s-maxage``: accept only a cached answer at most this many seconds old;
- ``allow-nondeterministic``: cache this request although it has neither temperature 0 nor
  a fixed seed.

The namespace is not a request control: the router sets it per tenant.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serve.constants import CACHE_MAX_TTL_S
from serve.router.errors import FrugalError, bad_request

CACHE_FIELD = "cache"


class CacheControls(BaseModel):
    """Validated controls; the default instance means "no controls given"."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    no_cache: bool = Field(default=False, alias="no-cache")
    no_store: bool = Field(default=False, alias="no-store")
    ttl_s: Annotated[float, Field(gt=0, le=CACHE_MAX_TTL_S)] | None = Field(default=None, alias="ttl")
    max_age_s: Annotated[float, Field(ge=0, le=CACHE_MAX_TTL_S)] | None = Field(default=None, alias="s-maxage")
    allow_nondeterministic: bool = Field(default=False, alias="allow-nondeterministic")


def take_cache_controls(data: dict[str, Any]) -> CacheControls:
    """Remove ``cache`` from the request body ``data`` (so the engine never sees it) and
    return it validated. Absent or ``null`` gives the defaults.

    Raises ``FrugalError`` (400, ``param="cache"``) when it is not an object, has an unknown
    key, or a value of the wrong type or out of range.
    """
    raw = data.pop(CACHE_FIELD, None)
    if raw is None:
        return CacheControls()
    if not isinstance(raw, dict):
        raise bad_request('cache must be an object, e.g. {"no-cache": true}.', param=CACHE_FIELD)
    try:
        return CacheControls.model_validate(raw)
    except ValidationError as e:
        raise _controls_error(e) from None


def _controls_error(err: ValidationError) -> FrugalError:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    allowed = ", ".join(f.alias or name for name, f in CacheControls.model_fields.items())
    detail = f"cache.{where}: {msg}" if where else f"cache: {msg}"
    if first.get("type") == "extra_forbidden":
        detail += f" (allowed: {allowed})"
    return bad_request(detail, param=CACHE_FIELD)
