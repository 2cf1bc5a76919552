"""Run Frugal on a given port until SIGTERM (the benchmark's way to start the service).

    python -m serve.bench.run_frugal --config PATH --port 8100 [--app frugal|frugal-fake|ray-chain]

``frugal-fake`` serves every pool with ``serve.engine.fake`` (instant answers, no model
loaded): the router, proxy and Redis path alone, at request rates no CPU engine reaches.
``ray-chain`` serves ``serve.bench.noop.ray_chain_app`` instead of Frugal: the same Ray Serve
hops with none of Frugal's code (a control for the soak).
"""

from __future__ import annotations

import argparse
import signal
import threading

APPS = ("frugal", "frugal-fake", "ray-chain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--app", choices=APPS, default="frugal")
    args = parser.parse_args()

    from ray import serve

    from serve.builder import build_app
    from serve.config.loader import load_config
    from serve.local_ray import local_serve

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with local_serve(args.port):
        config = load_config(args.config)
        if args.app == "ray-chain":
            from serve.bench.noop import ray_chain_app

            app = ray_chain_app(config.router.max_ongoing_requests)
        elif args.app == "frugal-fake":
            from serve.engine.fake import fake_engine_factory

            app = build_app(config, engine_factory=fake_engine_factory)
        else:
            app = build_app(config)
        serve.run(app, name="frugal", route_prefix="/")
        print(f"frugal ready on port {args.port}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
