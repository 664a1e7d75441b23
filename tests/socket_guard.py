"""A pytest plugin (loaded with ``-p tests.socket_guard``): no test may open a connection or resolve a
name outside this machine. Loopback (the test receivers, PostgreSQL) and Unix sockets are allowed;
anything else is refused on the spot and fails the test, even when the code under test swallows the
error (an automation run would just log a failed delivery)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "testserver"}
violations: list[str] = []


class NetworkBlocked(OSError):
    """Raised instead of connecting anywhere but this machine during tests."""


def _is_local_host(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_local_host(host):
        message = f"test tried to connect to {address!r}"
        violations.append(message)
        raise NetworkBlocked(message)


def guarded_connect(self, address):
    _check_address(self, address)
    return _real_connect(self, address)


def guarded_connect_ex(self, address):
    _check_address(self, address)
    return _real_connect_ex(self, address)


def guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local_host(host):
        try:
            ipaddress.ip_address(str(host).strip("[]"))
        except ValueError:
            message = f"test tried to resolve {host!r} (DNS leaves the machine)"
            violations.append(message)
            raise socket.gaierror(socket.EAI_NONAME, message) from None
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config):
    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo


def pytest_unconfigure(config):
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(autouse=True)
def _fail_on_network_escape():
    violations.clear()
    yield
    if violations:
        found = "; ".join(violations)
        violations.clear()
        pytest.fail(f"network guard: {found}")
