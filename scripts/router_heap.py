"""What the router's Python code keeps per request: ``tracemalloc`` around a run of requests
through the router app in process (full request path, fake engine, a redis-server started
here). Prints the net growth per request and the top allocation sites; --json writes them.

    python scripts/router_heap.py                       # 500 warm-up, then 4,000 streamed requests
    python scripts/router_heap.py --requests 8000 --no-stream
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serve.bench.heap import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = measure(args.warmup, args.requests, not args.no_stream, args.top)
    print(f"{report.requests} {'streamed' if report.stream else 'plain'} requests: net {report.net_kib:.1f} KiB, "
          f"{report.bytes_per_request:.0f} B per request")
    for site in report.top:
        print(f"  {site.kib:+8.1f} KiB {site.blocks:+6d} blocks  {' <- '.join(reversed(site.where[-2:]))}")
    if args.json is not None:
        args.json.write_text(report.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
