"""A local Ray instance with Ray Serve's HTTP ingress on one port, for the test fixtures and
the benchmarks: started in this process, and stopped (Serve, then Ray) when the block ends.

Ray's processes inherit their environment from the process that starts Ray, so
``RAY_ENV_DEFAULTS`` and the HAProxy launcher (``serve/haproxy_launcher.py``) are applied
first (what is already set wins). HAProxy's stats page and
Prometheus exporter get free ports unless set, so a local instance never collides with
another one (or with ``scripts/serve``) on the fixed defaults, 8404 and 9101.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serve.constants import (
    HAPROXY_BINARY_ENV,
    HAPROXY_LAUNCHER,
    HAPROXY_PORT_ENVS,
    LOCAL_PORT_RANGE,
    RAY_ENV_DEFAULTS,
)

FREE_PORT_ATTEMPTS = 200


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, drawn at random from ``LOCAL_PORT_RANGE``.

    A port the kernel hands out for ``bind(0)`` comes from its ephemeral range, where any of
    the sockets Ray opens while it starts can take it before the caller binds it again (HAProxy
    once failed to start on such a port). Ports in ``LOCAL_PORT_RANGE`` are given out by no one."""
    low, high = LOCAL_PORT_RANGE
    for port in random.sample(range(low, high + 1), k=FREE_PORT_ATTEMPTS):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high} after {FREE_PORT_ATTEMPTS} tries")


def haproxy_launcher() -> str:
    """The ``frugal-haproxy`` console script of this interpreter's environment."""
    path = Path(sys.executable).parent / HAPROXY_LAUNCHER
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall Frugal (scripts/install.sh) to get {HAPROXY_LAUNCHER}")
    return str(path)


def apply_ray_env() -> None:
    """Set ``RAY_ENV_DEFAULTS``, the HAProxy launcher and free HAProxy side ports in this
    process's environment, keeping whatever is already set."""
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if HAPROXY_BINARY_ENV not in os.environ:
        os.environ[HAPROXY_BINARY_ENV] = haproxy_launcher()
    for key in HAPROXY_PORT_ENVS:
        os.environ.setdefault(key, str(free_port("0.0.0.0")))


@contextmanager
def local_serve(port: int, namespace: str | None = None, **ray_init: object) -> Iterator[str]:
    """Ray plus Serve's HTTP ingress on ``127.0.0.1:port``; yields the base URL."""
    apply_ray_env()
    import ray
    from ray import serve

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process")
    ray.init(include_dashboard=False, namespace=namespace, **ray_init)  # type: ignore[arg-type]
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
