"""The Frugal Ray Serve application.

- ``serve run deployments.app`` serves the embedded CPU default (``deployments/default.yaml``).
- ``serve run deployments:build_app config=PATH`` serves any config file.

Nothing is built at import: ``app`` is built on first access.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serve.builder import build_app as _build
from serve.config.loader import load_config


def build_app(args: dict[str, Any]) -> Application:
    """Ray Serve application builder: ``serve run deployments:build_app config=PATH``."""
    return _build(load_config(args.get("config")))


def __getattr__(name: str) -> Any:
    if name == "app":
        return _build(load_config())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
