"""Run Frugal on a given port until SIGTERM (the benchmark's way to start the service).

    python -m serve.bench.run_frugal --config PATH --port 8100
"""

from __future__ import annotations

import argparse
import signal
import threading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()

    import os

    from serve.constants import RAY_ENV_DEFAULTS

    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import ray
    from ray import serve

    from serve.builder import build_app
    from serve.config.loader import load_config

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ray.init(include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(build_app(load_config(args.config)), name="frugal", route_prefix="/")
        print(f"frugal ready on port {args.port}", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
