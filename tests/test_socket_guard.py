"""The guard itself: loopback is fine, the outside world fails the test."""

import socket

import pytest

from tests import socket_guard


def test_loopback_connections_are_allowed(httpserver):
    httpserver.expect_request("/ping").respond_with_data("pong")
    with socket.create_connection(("127.0.0.1", httpserver.port), timeout=2):
        pass


def test_outside_connections_are_refused_and_recorded():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(socket_guard.NetworkBlocked):
            sock.connect(("93.184.216.34", 80))
    finally:
        sock.close()
    assert socket_guard.violations == ["test tried to connect to ('93.184.216.34', 80)"]
    socket_guard.violations.clear()  # this test expected it; others fail on it


def test_name_resolution_outside_is_refused():
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 443)
    assert socket_guard.violations
    socket_guard.violations.clear()
