"""SSRF: every forbidden target is refused when the rule is saved (config validation) and when it is
sent (no connection is attempted). DNS answers are faked with ``socket.getaddrinfo``."""

import contextlib
import ipaddress
import socket

import pytest

from automations import webhooks
from automations.action_types import action_types
from automations.context import RunContext
from automations.exceptions import ConfigInvalid, PermanentActionError
from tests.factories import AutomationRuleFactory, RecordFactory

pytestmark = pytest.mark.django_db

FAKE_DNS = {
    "public.example": ["93.184.216.34"],
    "public6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example": ["10.0.0.5"],
    "metadata.example": ["169.254.169.254"],
    "loopback.example": ["127.0.0.1"],
    "cgnat.example": ["100.64.1.1"],
    "ula.example": ["fd00:ec2::254"],
    "mapped.example": ["::ffff:169.254.169.254"],
    # The first answer is public, a later one private: refused (checking only the first is not enough).
    "mixed.example": ["93.184.216.34", "10.1.2.3"],
    "mixed6.example": ["93.184.216.34", "::1"],
}

FORBIDDEN_URLS = [
    "http://127.0.0.1/hook",
    "http://127.9.9.9:8080/hook",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fd00:ec2::254]/",
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2852039166/",
    "http://0251.0376.0251.0376/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://0xa9fea9fe/",
    "http://127.1/",
    "http://0/",
    "http://localhost/",
    "http://LOCALHOST:8000/",
    "http://localhost./",
    "http://api.localhost/",
    "http://224.0.0.1/",
    "http://internal.example/hook",
    "http://metadata.example/",
    "http://loopback.example/",
    "http://cgnat.example/",
    "http://ula.example/",
    "http://mapped.example/",
    "http://mixed.example/",
    "http://mixed6.example/",
    # Not http(s), or userinfo tricks.
    "ftp://public.example/",
    "file:///etc/passwd",
    "gopher://public.example/",
    "javascript:alert(1)",
    "//public.example/",
    "public.example/hook",
    "http://user:pass@public.example/",
    "http://public.example@169.254.169.254/",
    "http://169.254.169.254#@public.example/",
    "http://public.example\\@169.254.169.254/",
    "http:// public.example/",
    "http://public.example/\r\nX-Injected: 1",
    "http:///path-only",
]


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """Answer from FAKE_DNS; every other name fails to resolve (no real DNS in tests)."""

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        host = str(host).lower().rstrip(".")
        answers = FAKE_DNS.get(host)
        with contextlib.suppress(ValueError):
            answers = [str(ipaddress.ip_address(host))]  # literals resolve to themselves (pinned connects)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        port = int(port or 0)
        result = []
        for ip in answers:
            if ":" in ip:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    """Every connection attempt (none may happen in this module)."""
    attempts = []

    def refuse(sock, address):
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def call_webhook():
    return action_types.get("call_webhook")


def ctx_for(url):
    record = RecordFactory()
    rule = AutomationRuleFactory(entity=record.entity, action_type="call_webhook", action_config={"url": url})
    return RunContext(rule=rule, entity=record.entity, record=record.as_snapshot(), event_type="created")


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_refused_at_save_time(call_webhook, url):
    with pytest.raises(ConfigInvalid) as info:
        call_webhook.validate_config({"url": url})
    assert "url" in info.value.errors


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_refused_at_send_time_without_a_connection(call_webhook, url, connections):
    with pytest.raises(PermanentActionError):
        call_webhook.execute(ctx_for(url))
    assert connections == []


@pytest.mark.parametrize(
    "url", ["https://public.example/hooks/1?x=1", "http://public.example:8080/", "https://public6.example/"]
)
def test_public_hosts_are_accepted_at_save_time(call_webhook, url):
    assert call_webhook.validate_config({"url": url})["url"] == url


def test_unresolvable_hosts_are_refused_at_save_time(call_webhook):
    with pytest.raises(ConfigInvalid, match="could not be resolved"):
        call_webhook.validate_config({"url": "https://no-such-host.example/"})


def test_private_targets_open_with_allow_private(call_webhook, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    for url in ("http://127.0.0.1:8000/", "http://localhost:8000/", "http://internal.example/", "http://[::1]/"):
        assert call_webhook.validate_config({"url": url})["url"] == url
    # Still never: other schemes, credentials, ambiguous numeric forms.
    for url in ("ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "http://2130706433/"):
        with pytest.raises(ConfigInvalid):
            call_webhook.validate_config({"url": url})


def test_allowed_cidrs_and_hosts_open_only_what_they_name(call_webhook, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/24", "metadata.example"]
    assert call_webhook.validate_config({"url": "http://10.0.0.7/"})
    assert call_webhook.validate_config({"url": "http://internal.example/"})  # resolves to 10.0.0.5
    assert call_webhook.validate_config({"url": "http://metadata.example/"})  # named explicitly
    for url in ("http://10.0.1.7/", "http://169.254.169.254/", "http://mixed.example/"):
        with pytest.raises(ConfigInvalid):
            call_webhook.validate_config({"url": url})


def test_ip_policy():
    from ipaddress import ip_address

    allowed = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]
    refused = [
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104
        "10.1.1.1",
        "172.20.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "100.100.100.200",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "192.0.0.1",
        "198.18.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "224.0.0.1",
    ]
    for ip in allowed:
        assert webhooks.ip_is_allowed(ip_address(ip)), ip
    for ip in refused:
        assert not webhooks.ip_is_allowed(ip_address(ip)), ip


def test_rebinding_between_save_and_send_is_caught_at_send_time(call_webhook, connections):
    """The URL was fine when saved; by send time the name points inside: refused, nothing connects."""
    assert call_webhook.validate_config({"url": "http://public.example/hook"})
    FAKE_DNS["public.example"] = ["169.254.169.254"]
    try:
        with pytest.raises(PermanentActionError, match="169.254.169.254"):
            call_webhook.execute(ctx_for("http://public.example/hook"))
    finally:
        FAKE_DNS["public.example"] = ["93.184.216.34"]
    assert connections == []


def test_the_pinned_address_is_a_checked_one(monkeypatch, connections):
    """The connection goes to the address that was checked (resolved once, pinned)."""
    with pytest.raises(AssertionError):
        webhooks.deliver(url="http://public.example:8080/hook", method="POST", body=b"{}", headers={})
    assert connections and connections[0][0] == "93.184.216.34"
