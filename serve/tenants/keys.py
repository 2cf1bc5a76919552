"""API keys: their format, generation and hashing.

A key reads ``frg-<id>.<secret>``: ``<id>`` (12 hex digits) is public, shown in listings,
logs and the ledger; ``<secret>`` is 256 random bits. Only ``sha256(key)`` is stored. A
salted or slow hash buys nothing here: the secret is random, not a password, so a stolen
hash cannot be reversed by guessing; plain SHA-256 keeps config files portable between
deployments.

``python -m serve.tenants.keys new`` prints a fresh key and its config entry;
``python -m serve.tenants.keys hash <key>`` prints the entry of an existing key.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import sys
from dataclasses import dataclass

from serve.constants import API_KEY_PREFIX

KEY_ID_HEX_DIGITS = 12
SECRET_BYTES = 32
KEY_ID_PATTERN = rf"^[0-9a-f]{{{KEY_ID_HEX_DIGITS}}}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_KEY_RE = re.compile(rf"^{re.escape(API_KEY_PREFIX)}([0-9a-f]{{{KEY_ID_HEX_DIGITS}}})\.([A-Za-z0-9_-]{{20,200}})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    key: str  # shown once, never stored
    sha256: str


def hash_key(key: str) -> str:
    """The stored form of a key (API or admin): hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, sha256: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(key), sha256)


def parse_key_id(key: str) -> str | None:
    """The public id of a well-formed key, None for anything else."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def looks_like_frugal_key(key: str) -> bool:
    return key.startswith(API_KEY_PREFIX)


def generate_key() -> NewKey:
    key_id = secrets.token_hex(KEY_ID_HEX_DIGITS // 2)
    key = f"{API_KEY_PREFIX}{key_id}.{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(key_id=key_id, key=key, sha256=hash_key(key))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None if absent or another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.tenants.keys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("new", help="generate a key; print it and its config entry")
    hash_parser = sub.add_parser("hash", help="print the config entry of an existing key (or admin key)")
    hash_parser.add_argument("key")
    args = parser.parse_args(argv)
    if args.command == "new":
        new = generate_key()
        print(f"key (give it to the tenant, it is not stored): {new.key}")
        print("config entry under tenants[].keys:", json.dumps({"id": new.key_id, "sha256": new.sha256}))
        return 0
    key_id = parse_key_id(args.key)
    entry = {"id": key_id, "sha256": hash_key(args.key)} if key_id else {"sha256": hash_key(args.key)}
    print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
