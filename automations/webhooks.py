"""Outgoing webhooks: Standard Webhooks signatures, secret rotation, SSRF protection and one guarded HTTP
delivery function.

- ``validate_webhook_url(url)``: the save-time check (scheme, userinfo, numeric IP tricks, and every
  address the host resolves to must be global unless allowed by settings).
- ``signature_headers(rule, msg_id, body)``: ``webhook-id`` / ``webhook-timestamp`` /
  ``webhook-signature`` (two signatures while a rotated-out secret is still valid).
- ``rule_rotate_secret(rule)``: new secret, the old one keeps signing for 24 h.
- ``deliver(...)``: sends through a requests-hardened session whose adapter resolves the host itself,
  checks every address, pins the connection to a checked address, never follows redirects, ignores
  proxy variables, and enforces a total deadline (a receiver trickling bytes is cut off). Returns a
  ``WebhookResponse``; ``raise_for_status`` classifies it (2xx ok, 408/429/5xx retry, 410 disables the
  rule, other statuses fail at once).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import certifi
import urllib3
from django.conf import settings
from django.utils import timezone
from requests.utils import get_encoding_from_headers
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES
from urllib3 import BaseHTTPResponse, HTTPHeaderDict, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import allowed_gai_family

from .exceptions import PermanentActionError, RetryableActionError
from .models import AutomationRule, new_signing_secret

SECRET_GRACE_PERIOD = dt.timedelta(hours=24)
REDACTED = "[redacted]"
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
# Headers a rule may not set: we own them (framing, host pinning, signatures).
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
USER_AGENT = "workspace-automations-webhooks/1.0"


class WebhookURLError(ValueError):
    """A webhook URL (or the address it resolves to) is not allowed. The message is shown to the user."""


# --------------------------------------------------------------------------------------------------
# SSRF policy


def _allowed_setting() -> tuple[str, ...]:
    return tuple(str(x) for x in getattr(settings, "AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS", None) or ())


def _allowed_networks() -> tuple[frozenset[str], tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
    return _parse_allowed(_allowed_setting())


@functools.lru_cache(maxsize=16)
def _parse_allowed(entries: tuple[str, ...]):
    hosts: set[str] = set()
    networks = []
    for entry in entries:
        entry = str(entry).strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry.rstrip("."))
    return frozenset(hosts), tuple(networks)


def _allow_private() -> bool:
    return bool(getattr(settings, "AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE", False))


def _unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:169.254.169.254 is 169.254.169.254
        return ip.ipv4_mapped
    return ip


def ip_is_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast addresses are allowed; private, loopback, link-local (metadata), CG-NAT, reserved,
    multicast and translation ranges are not, unless opened by settings."""
    if _allow_private():
        return True
    ip = _unmapped(ip)
    _, networks = _allowed_networks()
    if any(ip.version == net.version and ip in net for net in networks):
        return True
    if not ip.is_global or ip.is_multicast:
        return False
    return not any(ip.version == net.version and ip in net for net in EXTRA_BLOCKED_NET_RANGES)


def _parse_ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP a host name denotes literally, refusing the ambiguous forms resolvers accept
    (``2852039166``, ``0251.0376.0251.0376``, ``0xa9.254.169.254``, ``127.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        if re.fullmatch(r"[0-9.]+|0x[0-9a-f.x]+", host, re.IGNORECASE):
            raise WebhookURLError("Write IP addresses in dotted-quad form or use a host name.") from None
        return None
    raise WebhookURLError("Write IP addresses in dotted-quad form or use a host name.")


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # lower-case, no brackets, no trailing dot
    port: int
    ip_literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None


def parse_webhook_url(url: Any) -> WebhookTarget:
    """Static checks that need no DNS: scheme, userinfo, host form. Raises ``WebhookURLError``.

    Pure for a given URL and settings, so remembered (every delivery checks its URL twice)."""
    if not isinstance(url, str):
        return _parse_webhook_url(url)
    return _parse_remembered(url, _allow_private(), _allowed_setting())


@functools.lru_cache(maxsize=4096)
def _parse_remembered(url: str, allow_private: bool, allowed: tuple[str, ...]) -> WebhookTarget:
    return _parse_webhook_url(url)  # the key holds the settings it reads


def _parse_webhook_url(url: Any) -> WebhookTarget:
    if not isinstance(url, str) or not url.strip():
        raise WebhookURLError("Enter a URL.")
    if len(url) > 2048:
        raise WebhookURLError("The URL is too long (2048 characters at most).")
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        raise WebhookURLError("The URL may not contain whitespace, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"Invalid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookURLError("Only http:// and https:// URLs are allowed.")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise WebhookURLError("URLs with credentials (user:password@) are not allowed; use a header instead.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise WebhookURLError("The URL has no host.")
    try:
        host.encode("idna")
    except UnicodeError:
        raise WebhookURLError("The host name is not valid.") from None
    port = port or (443 if scheme == "https" else 80)
    ip_literal = _parse_ip_literal(host)
    hosts, _ = _allowed_networks()
    explicitly_allowed = _allow_private() or host in hosts
    if not explicitly_allowed:
        if ip_literal is None and (host == "localhost" or host.endswith(".localhost")):
            raise WebhookURLError("'localhost' is not allowed as a webhook target.")
        if ip_literal is not None and not ip_is_allowed(ip_literal):
            raise WebhookURLError(f"The address {ip_literal} is private, loopback, link-local or reserved.")
    return WebhookTarget(scheme=scheme, host=host, port=port, ip_literal=ip_literal)


def resolve_allowed(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Resolve ``host`` and check every address (a host with one private answer among public ones is
    refused). Returns the addresses in resolver order; raises ``WebhookURLError`` or ``socket.gaierror``."""
    infos = socket.getaddrinfo(host, port, family=allowed_gai_family(), type=socket.SOCK_STREAM)
    addresses = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addresses.append(ipaddress.ip_address(sockaddr[0].split("%", 1)[0]))
    if not addresses:
        raise WebhookURLError(f"The host {host} has no usable address.")
    hosts, _ = _allowed_networks()
    if host not in hosts:
        refused = [ip for ip in addresses if not ip_is_allowed(ip)]
        if refused:
            raise WebhookURLError(
                f"The host {host} resolves to a private, loopback, link-local or reserved address ({refused[0]})."
            )
    return addresses


def validate_webhook_url(url: Any) -> str:
    """Save-time check of a webhook URL. Returns the URL or raises ``WebhookURLError``."""
    target = parse_webhook_url(url)
    hosts, _ = _allowed_networks()
    if target.ip_literal is None and not _allow_private() and target.host not in hosts:
        try:
            resolve_allowed(target.host, target.port)
        except (socket.gaierror, UnicodeError):
            raise WebhookURLError(f"The host {target.host} could not be resolved.") from None
    return url


# --------------------------------------------------------------------------------------------------
# Signing


def _secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed by the base64-decoded ``whsec_`` secret."""
    payload = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def active_secrets(rule: AutomationRule, *, now: dt.datetime | None = None) -> list[str]:
    """The current secret, plus the previous one while its grace period lasts."""
    now = now or timezone.now()
    secrets = [rule.signing_secret]
    if rule.previous_signing_secret and rule.previous_secret_expires_at and rule.previous_secret_expires_at > now:
        secrets.append(rule.previous_signing_secret)
    return secrets


def signature_headers(rule: AutomationRule, msg_id: str, body: bytes, *, now: dt.datetime | None = None) -> dict:
    """Standard Webhooks headers for one attempt: the id is the run's delivery id (stable across
    retries), the timestamp is this attempt's."""
    now = now or timezone.now()
    timestamp = int(now.timestamp())
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in active_secrets(rule, now=now))
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def rule_rotate_secret(rule: AutomationRule, *, grace: dt.timedelta = SECRET_GRACE_PERIOD) -> AutomationRule:
    """Give ``rule`` a new signing secret; deliveries carry a second signature with the old one for
    ``grace`` (24 h) so receivers can switch without dropping messages."""
    rule.previous_signing_secret = rule.signing_secret
    rule.previous_secret_expires_at = timezone.now() + grace
    rule.signing_secret = new_signing_secret()
    rule.save(update_fields=["signing_secret", "previous_signing_secret", "previous_secret_expires_at", "updated_at"])
    return rule


# --------------------------------------------------------------------------------------------------
# Headers


def validate_headers(headers: Any) -> dict[str, str]:
    """A rule's custom headers: names are HTTP tokens, values single-line strings, none reserved."""
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict):
        raise ValueError("Must be an object of header names to values.")
    if len(headers) > 50:
        raise ValueError("At most 50 headers.")
    cleaned = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            raise ValueError(f"'{name}' is not a valid header name.")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"The header '{name}' is set by the webhook sender and cannot be overridden.")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"The value of '{name}' must be a string.")
        value = str(value)
        if value == REDACTED:
            raise ValueError(f"'{name}' has no stored value to keep; send its real value instead of {REDACTED}.")
        if any(ch in value for ch in "\r\n\0") or len(value) > 8192:
            raise ValueError(f"The value of '{name}' may not contain line breaks (8192 characters at most).")
        cleaned[name] = value
    return cleaned


def redact_headers(headers: dict[str, str], secret_headers: Iterable[str] = ()) -> dict[str, str]:
    """Copy of ``headers`` safe to store: credentials and the rule's secret headers replaced."""
    secret = ALWAYS_SECRET_HEADERS | {name.lower() for name in secret_headers}
    return {name: (REDACTED if name.lower() in secret else value) for name, value in headers.items()}


# --------------------------------------------------------------------------------------------------
# Delivery


class _Watchdog:
    """One daemon thread per process that cuts the connections of requests past their deadline (a
    ``threading.Timer`` per request cost a thread start, about 0.3 ms of CPU and up to milliseconds of
    wall time on a busy machine, on every delivery).

    The thread is woken only for a deadline earlier than the moment it already sleeps until: with no
    request in flight it sleeps for the shortest timeout seen so far, so a new request (whose deadline is
    that far away at least) never wakes it, and a delivery costs no thread switch."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: set[_Deadline] = set()
        self._pid: int | None = None
        self._wake_at = 0.0  # when the thread wakes next (monotonic), by its own timeout
        self._idle = 60.0  # how long it sleeps with nothing in flight: the shortest timeout seen

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # first use, or a forked child (threads do not survive fork)
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="webhook-deadlines", daemon=True).start()

    def add(self, deadline: _Deadline) -> None:
        with self._cond:
            self._ensure_thread()
            self._active.add(deadline)
            self._idle = min(self._idle, deadline.seconds)
            if deadline.when < self._wake_at:
                self._cond.notify()

    def discard(self, deadline: _Deadline) -> None:
        with self._cond:  # under the lock: never cut a connection already handed back to the pool
            self._active.discard(deadline)
            deadline.sock = None

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d in self._active if d.when <= now]
                self._active.difference_update(due)
                for deadline in due:
                    deadline.expire()
                if not due:
                    wait = max(min((d.when for d in self._active), default=now + self._idle) - now, 0.001)
                    self._wake_at = now + wait
                    self._cond.wait(timeout=wait)
                    self._wake_at = 0.0  # awake: an add meanwhile needs no notify, the loop looks again


_watchdog = _Watchdog()


class _Deadline:
    """Cuts the connection of the current request when the total timeout passes (urllib3's timeouts
    are per socket operation, so a receiver sending a byte every few seconds would never time out)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.when = 0.0
        self.expired = False
        self.sock: socket.socket | None = None

    def expire(self) -> None:
        self.expired = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        _watch.deadline = self
        self.when = time.monotonic() + self.seconds
        _watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _watchdog.discard(self)
        _watch.deadline = None


_watch = threading.local()


class _WatchedMixin:
    """Hands the connection's socket to the current deadline (kept by us: http.client drops its own
    reference once the response owns the socket)."""

    def _watch_socket(self) -> None:
        deadline = getattr(_watch, "deadline", None)
        sock = getattr(self, "sock", None)
        if deadline is not None and sock is not None:
            deadline.sock = sock
            if deadline.expired:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watch_socket()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._watch_socket()  # a reused keep-alive connection is already connected
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_pools = threading.local()
POOLS_KEPT = 64  # per thread: connection pools (one per scheme, pinned address, port and host name) kept open


def _pool(target: WebhookTarget, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> HTTPConnectionPool:
    """The keep-alive pool of connections to ``ip`` for ``target`` (one per process and thread: pools are
    not shared across a fork). The address is the one already checked (resolved once, pinned): the
    connection never resolves the name again. TLS verifies the certificate against the name, not the
    address, with the system's CA bundle (certifi's)."""
    cached = getattr(_pools, "value", None)
    if cached is None or cached[0] != os.getpid():
        cached = _pools.value = (os.getpid(), {})
    pools: dict = cached[1]
    key = (target.scheme, ip, target.port, target.host)
    pool = pools.pop(key, None)
    if pool is None:
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        if target.scheme == "https":
            pool = _WatchedHTTPSConnectionPool(
                host,
                target.port,
                maxsize=1,
                retries=False,
                cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(),
                assert_hostname=target.host,
                server_hostname=target.host,
            )
        else:
            pool = _WatchedHTTPConnectionPool(host, target.port, maxsize=1, retries=False)
        while len(pools) >= POOLS_KEPT:
            pools.pop(next(iter(pools))).close()  # the least recently used
    pools[key] = pool  # most recently used last
    return pool


@dataclass
class WebhookResponse:
    status_code: int
    body: str
    truncated: bool
    duration_ms: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def _read_capped(response: BaseHTTPResponse, deadline: _Deadline, cap: int) -> tuple[bytes, bool]:
    buffer = bytearray()
    for chunk in response.stream(1024, decode_content=True):
        buffer.extend(chunk)
        if len(buffer) > cap:
            return bytes(buffer[:cap]), True
        if deadline.expired:
            break
    return bytes(buffer), False


def _request_headers(parts: SplitResult, target: WebhookTarget, headers: dict[str, str]) -> HTTPHeaderDict:
    """What every delivery sends (``Host`` with the name, not the pinned address; our ``User-Agent``), then
    the rule's headers, which win (names compared case-insensitively)."""
    port = parts.port
    host = f"[{target.host}]" if ":" in target.host else target.host
    sent = HTTPHeaderDict(
        {
            "Host": host if port is None else f"{host}:{port}",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
        }
    )
    for name, value in headers.items():
        sent[name] = value
    return sent


def _path(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def deliver(*, url: str, method: str, body: bytes, headers: dict[str, str]) -> WebhookResponse:
    """Send one request with every guard on (urllib3, a keep-alive pool per pinned address). Raises
    ``PermanentActionError`` for a refused target or an invalid request, ``RetryableActionError`` for
    timeouts and connection errors (no request leaves for a refused target). No redirect is followed, no
    proxy or environment variable is used, and the whole exchange is cut at the total timeout."""
    try:
        target = parse_webhook_url(url)
    except WebhookURLError as exc:
        raise PermanentActionError(f"Webhook URL refused: {exc}") from None
    total = float(settings.AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT)
    connect = min(float(settings.AUTOMATIONS_WEBHOOK_CONNECT_TIMEOUT), total)
    cap = int(settings.AUTOMATIONS_WEBHOOK_RESPONSE_MAX_BYTES)
    started = time.monotonic()
    response = None
    try:
        with _Deadline(total) as deadline:
            try:
                ip = target.ip_literal
                if ip is None:
                    ip = resolve_allowed(target.host, target.port)[0]
                parts = urlsplit(url)
                response = _pool(target, ip).urlopen(
                    method,
                    _path(parts),
                    body=body or None,
                    headers=_request_headers(parts, target, headers),
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    timeout=Timeout(connect=connect, read=total),
                    preload_content=False,
                    decode_content=True,
                )
                content, truncated = _read_capped(response, deadline, cap)
                if deadline.expired:
                    raise urllib3.exceptions.ReadTimeoutError(None, url, "deadline")
            except WebhookURLError as exc:
                raise PermanentActionError(f"Webhook URL refused: {exc}") from None
            except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError subclass, for history
                raise RetryableActionError(describe_network_error(exc, url)) from None
            except urllib3.exceptions.ConnectTimeoutError:
                raise RetryableActionError(f"Connection to the webhook timed out after {connect:g} s.") from None
            except (urllib3.exceptions.TimeoutError, TimeoutError):
                raise RetryableActionError(f"The webhook did not answer within {total:g} s.") from None
            except (urllib3.exceptions.LocationParseError, urllib3.exceptions.LocationValueError, ValueError) as exc:
                raise PermanentActionError(f"The webhook request is invalid: {_short(exc)}") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if deadline.expired:
                    raise RetryableActionError(f"The webhook did not answer within {total:g} s.") from None
                raise RetryableActionError(describe_network_error(exc, url)) from None
    finally:
        if response is not None:
            response.close()
    return WebhookResponse(
        status_code=response.status,
        body=content.decode(get_encoding_from_headers(response.headers) or "utf-8", errors="replace"),
        truncated=truncated,
        duration_ms=int((time.monotonic() - started) * 1000),
        headers={k: v for k, v in response.headers.items() if k.lower() in ("content-type", "location", "retry-after")},
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (urllib3 wraps the socket's error), outermost first."""
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current in found:
            continue
        found.append(current)
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in wrapped if isinstance(item, BaseException))
    return found


def describe_network_error(exc: BaseException, url: str) -> str:
    """A short sentence for a failed connection (``Connection refused by 127.0.0.1:1.``), not the
    library's chain of wrapped errors with its class names."""
    try:
        target = urlsplit(url)
        host = target.hostname or "the webhook"
        where = f"{host}:{target.port or (443 if target.scheme == 'https' else 80)}"
    except ValueError:
        host = where = "the webhook"
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            problem = getattr(cause, "verify_message", None) or "not trusted"
            return f"TLS certificate of {where} not accepted: {problem}."
        if isinstance(cause, ssl.SSLError):
            reason = (getattr(cause, "reason", None) or "error").replace("_", " ").lower()
            return f"TLS handshake with {where} failed: {reason}."
        if isinstance(cause, socket.gaierror):
            return f"Could not resolve the host {host}."
        if isinstance(cause, ConnectionRefusedError):
            return f"Connection refused by {where}."
        if isinstance(cause, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            return f"Connection reset by {where}."
    if any(isinstance(cause, http.client.IncompleteRead) for cause in causes):  # urllib3's too
        return f"The connection to {where} broke off during the response."
    reasons = [cause.strerror for cause in causes if isinstance(cause, OSError) and cause.strerror]
    if reasons:
        return f"Could not connect to {where}: {reasons[-1][0].lower()}{reasons[-1][1:]}."
    return f"Could not connect to {where}."


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), capped at
    ``AUTOMATIONS_RETRY_AFTER_MAX``; ``None`` when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or timezone.now())).total_seconds()
    return float(max(0.0, min(seconds, float(settings.AUTOMATIONS_RETRY_AFTER_MAX))))


RETRYABLE_STATUSES = frozenset({408, 429})


def raise_for_status(response: WebhookResponse, *, result: dict[str, Any] | None = None) -> None:
    """2xx returns; 408/429/5xx raise ``RetryableActionError`` (with Retry-After); 410 raises a
    ``PermanentActionError`` that disables the rule; a 3xx (never followed) and other statuses raise
    ``PermanentActionError``."""
    status = response.status_code
    if response.ok:
        return
    if status in RETRYABLE_STATUSES or status >= 500:
        raise RetryableActionError(
            f"The webhook answered {status}; will retry.",
            result=result,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 410:
        raise PermanentActionError(
            "The webhook answered 410 Gone: the receiver asked to stop; the rule has been disabled.",
            result=result,
            disable_rule=True,
        )
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        raise PermanentActionError(
            f"The webhook answered {status} redirecting to {location or '(no Location)'}; redirects are not "
            "followed. Update the URL to the final address.",
            result=result,
        )
    raise PermanentActionError(f"The webhook answered {status}.", result=result)
