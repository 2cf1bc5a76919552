"""Send sample traffic to a running Frugal so its ledger has something to report on: quiet
chat (the cheap pool), bursts (spill to the pricier pool), repeated questions (cache hits)
and embeddings, spread over one or more API keys.

    scripts/serve &                                   # the embedded default on :8000
    python scripts/sample_traffic.py --rounds 3
    python scripts/cost_report.py --ledger ~/.cache/frugal/state/ledger.jsonl --config deployments/default.yaml
"""

from __future__ import annotations

import argparse

from serve.bench.traffic import sample_traffic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", action="append", default=None, help="an API key (repeat for several tenants); "
                        "default EMPTY, the anonymous tenant when auth is off")
    parser.add_argument("--chat-model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--embed-model", default="all-MiniLM-L6-v2", help="'' to skip embeddings")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = sample_traffic(args.base_url, args.key or ["EMPTY"], args.chat_model, args.embed_model or None,
                             args.rounds)
    errors = sum(r.errors for r in results)
    print(f"{sum(r.requests for r in results)} requests, {errors} errors")
    raise SystemExit(1 if errors else 0)


if __name__ == "__main__":
    main()
