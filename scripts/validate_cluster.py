"""Check a cloud deployment without the cloud: the Ray cluster config against Ray's autoscaler
schema and Frugal's cluster rules, each Frugal config's pools against the node types (accelerator,
GPUs, CPUs, memory, capacity at max scale) and, with --serve-config, the `serve deploy` config.
Prints each pool's memory per GPU and the cluster's cost per hour at minimum and maximum scale;
exits 1 if anything is wrong.

    python scripts/validate_cluster.py cluster.yaml deployments/gpu-production.yaml \
        --serve-config deployments/serve-gpu-production.yaml
"""

from __future__ import annotations

import argparse
import sys

from serve.cluster.validate import format_report, validate_deployment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cluster", help="the ray up config, e.g. cluster.yaml")
    parser.add_argument("configs", nargs="*", help="Frugal configs to place on it")
    parser.add_argument("--serve-config", help="a serve deploy config; the Frugal configs it names are checked too")
    args = parser.parse_args()
    report = validate_deployment(args.cluster, args.configs, args.serve_config)
    print(format_report(report))
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
