"""The suite's guard (tests/conftest.py): a test that reaches beyond this machine fails."""

from __future__ import annotations

import socket

import pytest


def test_a_connection_beyond_this_machine_fails_the_test():
    reach = pytest.raises(AssertionError, match="a test tried to reach 192.0.2.1:443")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, reach:
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: nothing is sent


def test_loopback_stays_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
