"""free_port: ports outside the kernel's ephemeral range, never one that is taken."""

from __future__ import annotations

import socket

import pytest

from serve import local_ray
from serve.constants import LOCAL_PORT_RANGE


def test_a_free_port_is_in_the_local_range_and_bindable():
    port = local_ray.free_port()
    assert LOCAL_PORT_RANGE[0] <= port <= LOCAL_PORT_RANGE[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_taken_port_is_skipped(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        other = local_ray.free_port()
        monkeypatch.setattr(local_ray.random, "sample", lambda population, k: [busy, other])
        assert local_ray.free_port() == other


def test_no_free_port_is_an_error(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(local_ray.random, "sample", lambda population, k: [busy])
        with pytest.raises(RuntimeError, match="no free port"):
            local_ray.free_port()
