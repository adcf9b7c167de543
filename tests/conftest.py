"""Shared fixtures and the `require` helper (fail in CI, skip locally, never silently)."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip the test locally when ``what`` is missing; fail it in CI (``CI=true``)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test but missing in CI: {what}")
    pytest.skip(f"missing: {what}")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session uses its own decode cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "cnnkit-cache"
    monkeypatch.setenv("CNNKIT_CACHE_DIR", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """No test reaches beyond this machine: cnnkit never downloads at run or test time (only
    ``cnnkit weights fetch``, tested against a server on 127.0.0.1). A connection to any other
    address fails the test with the address named."""
    connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise AssertionError(f"a test tried to reach {address[0]}:{address[1]}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sigint_default() -> None:
    """``preexec_fn`` of a child the test will Ctrl-C: SIGINT back to its default action.

    A shell starts a background job (``pytest ... &`` in a script) with SIGINT ignored, and
    a child inherits that: Python then keeps SIGINT ignored and no Ctrl-C ever arrives. A
    user's Ctrl-C comes from a terminal, where it is not ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_reaches():
    """The ``preexec_fn`` for a child the test sends Ctrl-C (:func:`_sigint_default`)."""
    return _sigint_default


@pytest.fixture
def sigint_as_in_a_terminal():
    """Python's own SIGINT handler in this process for the test (see :func:`_sigint_default`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(name="require")
def _require_fixture():
    """The :func:`require` helper as a fixture: ``def test_x(require): require(ok, "what")``."""
    return require


def pytest_configure(config):
    """One intra-op thread per test process: tests use tiny tensors, where a second thread
    only adds contention (measured 50x slower forward passes on a loaded 2-core machine)."""
    import torch

    torch.set_num_threads(1)
