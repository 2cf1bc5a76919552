"""Frugal's HAProxy launcher resolves the real binary, never itself."""

from __future__ import annotations

import os

from serve.constants import HAPROXY_BINARY_ENV
from serve.haproxy_launcher import real_binary


def test_the_real_binary_is_not_the_launcher(monkeypatch) -> None:
    monkeypatch.setenv(HAPROXY_BINARY_ENV, "/somewhere/bin/frugal-haproxy")
    binary = real_binary()
    assert os.path.basename(binary) == "haproxy" and os.access(binary, os.X_OK)
    assert HAPROXY_BINARY_ENV not in os.environ
