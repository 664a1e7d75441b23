"""call_webhook against a real local receiver (pytest-httpserver): signatures verified independently with
``standardwebhooks``, retries/classification, caps, timeouts and redaction."""

import base64
import datetime as dt
import http.server
import json
import socket
import ssl
import threading
import time

import pytest
import requests
import urllib3
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Response

from automations import webhooks
from automations.action_types import action_types
from automations.context import RunContext
from automations.exceptions import PermanentActionError, RetryableActionError
from automations.models import AutomationLog
from tests.factories import AutomationRuleFactory, RecordFactory

pytestmark = pytest.mark.django_db

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def socket_guard(monkeypatch):
    """Fail the test if any socket connects anywhere but loopback (the test receivers)."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        attempts.append(host)
        if host not in LOOPBACK:
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.fixture
def receiver(httpserver, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    return httpserver


@pytest.fixture
def call_webhook():
    return action_types.get("call_webhook")


def make_ctx(url, *, log=True, **config):
    record = RecordFactory(data={"name": "Ada", "email": "ada@example.com", "status": "New"})
    rule = AutomationRuleFactory(
        entity=record.entity,
        trigger_type="status_changed",
        action_type="call_webhook",
        action_config={"url": url, "method": "POST", **config},
    )
    run = None
    if log:
        run = AutomationLog.objects.create(
            automation=rule,
            workspace_id=rule.workspace_id,
            entity_id=rule.entity_id,
            record_id=record.id,
            record_snapshot=record.as_snapshot(),
            trigger_type=rule.trigger_type,
            action_type=rule.action_type,
            event_type="updated",
        )
    return RunContext(
        rule=rule,
        entity=record.entity,
        record=record.as_snapshot(),
        event_type="updated",
        old_data={"status": "Contacted"},
        log=run,
    )


def received(server, index=-1):
    request, _ = server.log[index]
    return request


def test_delivery_is_signed_with_the_seed_payload(receiver, call_webhook):
    receiver.expect_request("/hook", method="POST").respond_with_json({"ok": True})
    ctx = make_ctx(receiver.url_for("/hook"))

    result = call_webhook.execute(ctx)

    request = received(receiver)
    body = request.get_data()
    payload = Webhook(ctx.rule.signing_secret).verify(body, dict(request.headers))
    assert payload["event"] == "automation_triggered"
    assert payload["workspace_id"] == str(ctx.rule.workspace_id)
    assert payload["entity_id"] == str(ctx.rule.entity_id)
    assert payload["record"] == ctx.record
    assert payload["timestamp"]
    assert payload["automation_id"] == str(ctx.rule.id)
    assert payload["trigger_type"] == "status_changed"
    assert payload["old_data"] == {"status": "Contacted"}
    assert payload["delivery_id"] == ctx.delivery_id
    assert request.headers["webhook-id"] == ctx.delivery_id == ctx.log.delivery_id
    assert request.headers["Content-Type"] == "application/json"
    assert result["status_code"] == 200
    assert json.loads(result["response"]) == {"ok": True}
    assert result["url"] == ctx.rule.action_config["url"]
    assert result["method"] == "POST"
    assert result["delivery_id"] == ctx.delivery_id
    assert isinstance(result["duration_ms"], int)
    assert result["request_headers"]["webhook-id"] == ctx.delivery_id


def test_a_wrong_secret_does_not_verify(receiver, call_webhook):
    receiver.expect_request("/hook").respond_with_data("ok")
    ctx = make_ctx(receiver.url_for("/hook"))
    call_webhook.execute(ctx)
    request = received(receiver)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.get_data(), dict(request.headers))


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_method_is_configurable(receiver, call_webhook, method):
    receiver.expect_request("/hook", method=method).respond_with_data("ok")
    ctx = make_ctx(receiver.url_for("/hook"), method=method)
    assert call_webhook.execute(ctx)["method"] == method


def test_retries_keep_the_id_and_refresh_the_timestamp(receiver, call_webhook, monkeypatch):
    receiver.expect_request("/hook").respond_with_data("busy", status=503)
    ctx = make_ctx(receiver.url_for("/hook"))
    base = webhooks.timezone.now()
    times = iter([base - dt.timedelta(seconds=30), base])
    monkeypatch.setattr(webhooks, "signature_headers", _with_now(webhooks.signature_headers, times))
    for _ in range(2):
        with pytest.raises(RetryableActionError):
            call_webhook.execute(ctx)
    first, second = received(receiver, 0), received(receiver, 1)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == ctx.delivery_id
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 30
    for request in (first, second):
        Webhook(ctx.rule.signing_secret).verify(request.get_data(), dict(request.headers))


def _with_now(func, times):
    def wrapper(rule, msg_id, body, now=None):
        return func(rule, msg_id, body, now=next(times))

    return wrapper


def test_secrets_are_whsec_32_bytes_and_unique_per_rule():
    first, second = AutomationRuleFactory(), AutomationRuleFactory()
    for rule in (first, second):
        assert rule.signing_secret.startswith("whsec_")
        assert len(base64.b64decode(rule.signing_secret.removeprefix("whsec_"))) == 32
    assert first.signing_secret != second.signing_secret


def test_rotation_sends_both_signatures_for_24_hours(receiver, call_webhook):
    receiver.expect_request("/hook").respond_with_data("ok")
    ctx = make_ctx(receiver.url_for("/hook"))
    old_secret = ctx.rule.signing_secret

    webhooks.rule_rotate_secret(ctx.rule)
    ctx.rule.refresh_from_db()
    assert ctx.rule.signing_secret != old_secret
    assert ctx.rule.previous_signing_secret == old_secret
    expires_in = ctx.rule.previous_secret_expires_at - webhooks.timezone.now()
    assert dt.timedelta(hours=23, minutes=59) < expires_in <= dt.timedelta(hours=24)

    call_webhook.execute(ctx)
    request = received(receiver)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, ctx.rule.signing_secret):
        Webhook(secret).verify(request.get_data(), dict(request.headers))

    # After the grace period only the new secret signs.
    ctx.rule.previous_secret_expires_at = webhooks.timezone.now() - dt.timedelta(seconds=1)
    call_webhook.execute(ctx)
    request = received(receiver)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(ctx.rule.signing_secret).verify(request.get_data(), dict(request.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(request.get_data(), dict(request.headers))


def test_custom_body_template_is_json_escaped(receiver, call_webhook):
    receiver.expect_request("/hook").respond_with_data("ok")
    ctx = make_ctx(
        receiver.url_for("/hook"),
        body_template='{"text": "New lead {{ name }}", "id": "{{ id }}", "payload": {{ payload|tojson }}}',
    )
    ctx.record["data"]["name"] = 'Ada "the first" \\ <script>\n'
    call_webhook.execute(ctx)
    request = received(receiver)
    body = Webhook(ctx.rule.signing_secret).verify(request.get_data(), dict(request.headers))
    assert body["text"] == 'New lead Ada "the first" \\ <script>\n'
    assert body["id"] == ctx.record["id"]
    assert body["payload"]["event"] == "automation_triggered"


def test_a_body_template_producing_invalid_json_fails_without_a_request(receiver, call_webhook):
    ctx = make_ctx(receiver.url_for("/hook"), body_template='{"amount": {{ amount }}}')  # amount missing -> ""
    with pytest.raises(PermanentActionError, match="valid JSON"):
        call_webhook.execute(ctx)
    assert receiver.log == []


def test_secret_headers_are_sent_but_stored_redacted(receiver, call_webhook):
    receiver.expect_request("/hook").respond_with_data("ok")
    headers = {
        "Authorization": "Bearer top-secret",
        "X-Api-Key": "key-123",
        "Cookie": "session=abc",
        "X-Signature-Token": "custom-secret",
        "X-Plain": "visible",
    }
    ctx = make_ctx(receiver.url_for("/hook"), headers=headers, secret_headers=["x-signature-token"])
    result = call_webhook.execute(ctx)
    request = received(receiver)
    for name, value in headers.items():
        assert request.headers[name] == value
    stored = result["request_headers"]
    for name in ("Authorization", "X-Api-Key", "Cookie", "X-Signature-Token"):
        assert stored[name] == webhooks.REDACTED
    assert stored["X-Plain"] == "visible"
    assert "top-secret" not in json.dumps(result)
    preview = call_webhook.preview(ctx)
    assert preview["headers"]["Authorization"] == webhooks.REDACTED
    assert "top-secret" not in json.dumps(preview)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_success(receiver, call_webhook, status):
    receiver.expect_request("/hook").respond_with_data("", status=status)
    assert call_webhook.execute(make_ctx(receiver.url_for("/hook")))["status_code"] == status


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_retry_with_the_result_attached(receiver, call_webhook, status):
    receiver.expect_request("/hook").respond_with_data("try later", status=status)
    with pytest.raises(RetryableActionError) as info:
        call_webhook.execute(make_ctx(receiver.url_for("/hook")))
    assert info.value.result["status_code"] == status
    assert info.value.result["response"] == "try later"
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422])
def test_other_4xx_fail_at_once(receiver, call_webhook, status):
    receiver.expect_request("/hook").respond_with_data("nope", status=status)
    with pytest.raises(PermanentActionError) as info:
        call_webhook.execute(make_ctx(receiver.url_for("/hook")))
    assert not info.value.disable_rule
    assert info.value.result["status_code"] == status


def test_410_disables_the_rule(receiver, call_webhook):
    receiver.expect_request("/hook").respond_with_data("gone", status=410)
    with pytest.raises(PermanentActionError) as info:
        call_webhook.execute(make_ctx(receiver.url_for("/hook")))
    assert info.value.disable_rule is True


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(receiver, call_webhook, status, socket_guard):
    receiver.expect_request("/hook").respond_with_data(
        "", status=status, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    with pytest.raises(PermanentActionError, match="169.254.169.254") as info:
        call_webhook.execute(make_ctx(receiver.url_for("/hook")))
    assert info.value.result["status_code"] == status
    assert len(receiver.log) == 1
    assert "169.254.169.254" not in socket_guard


def test_retry_after_seconds_and_http_date_are_honoured_and_capped(receiver, call_webhook, settings):
    settings.AUTOMATIONS_RETRY_AFTER_MAX = 3600
    receiver.expect_ordered_request("/hook").respond_with_data("", status=429, headers={"Retry-After": "120"})
    later = webhooks.timezone.now() + dt.timedelta(seconds=600)
    http_date = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.expect_ordered_request("/hook").respond_with_data("", status=503, headers={"Retry-After": http_date})
    receiver.expect_ordered_request("/hook").respond_with_data("", status=503, headers={"Retry-After": "999999"})
    ctx = make_ctx(receiver.url_for("/hook"))
    delays = []
    for _ in range(3):
        with pytest.raises(RetryableActionError) as info:
            call_webhook.execute(ctx)
        delays.append(info.value.retry_after)
    assert delays[0] == 120
    assert 595 <= delays[1] <= 600
    assert delays[2] == 3600


def test_parse_retry_after_edge_cases(settings):
    settings.AUTOMATIONS_RETRY_AFTER_MAX = 100
    assert webhooks.parse_retry_after(None) is None
    assert webhooks.parse_retry_after("soon") is None
    assert webhooks.parse_retry_after("0") == 0
    assert webhooks.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert webhooks.parse_retry_after("5000") == 100


def test_response_body_is_capped_at_4kb(receiver, call_webhook, settings):
    settings.AUTOMATIONS_WEBHOOK_RESPONSE_MAX_BYTES = 4096
    receiver.expect_request("/hook").respond_with_data("x" * 200_000)
    result = call_webhook.execute(make_ctx(receiver.url_for("/hook")))
    assert len(result["response"]) == 4096
    assert result["response_truncated"] is True


def test_connection_refused_retries(call_webhook, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableActionError) as info:
        call_webhook.execute(make_ctx(f"http://127.0.0.1:{port}/hook"))
    assert info.value.message == f"Connection refused by 127.0.0.1:{port}."
    assert info.value.result["status_code"] is None
    assert info.value.result["delivery_id"]


def test_an_unknown_host_reads_as_such(call_webhook, settings, monkeypatch):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True

    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(RetryableActionError) as info:
        call_webhook.execute(make_ctx("http://hooks.nowhere.example:8080/hook"))
    assert info.value.message == "Could not resolve the host hooks.nowhere.example."


def test_a_tls_failure_reads_as_such(receiver, call_webhook):
    receiver.expect_request("/hook").respond_with_data("plain http")
    with pytest.raises(RetryableActionError) as info:
        call_webhook.execute(make_ctx(receiver.url_for("/hook").replace("http://", "https://")))
    message = info.value.message
    assert message.startswith(f"TLS handshake with localhost:{receiver.port} failed: "), message
    assert "Pool" not in message and "Errno" not in message and "_ssl.c" not in message and len(message) < 120


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), "Connection reset by hooks.example.com:443."),
        (OSError(101, "Network is unreachable"), "Could not connect to hooks.example.com:443: network is unreachable."),
        (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS"),
    ],
)
def test_network_errors_are_short_human_sentences(error, expected):
    wrapped = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/hook", reason=error))
    message = webhooks.describe_network_error(wrapped, "https://hooks.example.com/hook")
    assert message.startswith(expected), message
    assert "MaxRetryError" not in message and "Errno" not in message


def test_a_trickling_receiver_is_cut_off_at_the_total_timeout(receiver, call_webhook, settings):
    settings.AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT = 0.5

    def trickle():
        for _ in range(40):  # 4 s if nobody cut it off; every read returns within the read timeout
            yield b"."
            time.sleep(0.1)

    receiver.expect_request("/slow").respond_with_handler(lambda request: Response(trickle(), status=200))
    started = time.monotonic()
    with pytest.raises(RetryableActionError, match="did not answer"):
        call_webhook.execute(make_ctx(receiver.url_for("/slow")))
    assert time.monotonic() - started < 1.5


def test_a_receiver_that_never_answers_costs_at_most_the_total_timeout(call_webhook, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    settings.AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT = 0.4
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(RetryableActionError):
            call_webhook.execute(make_ctx(f"http://127.0.0.1:{listener.getsockname()[1]}/hook"))
        assert time.monotonic() - started < 1.5
    finally:
        thread.join(1)
        for conn, _ in accepted:
            conn.close()
        listener.close()


def test_proxy_environment_variables_are_ignored(receiver, call_webhook, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://10.255.255.1:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    receiver.expect_request("/hook").respond_with_data("direct")
    assert call_webhook.execute(make_ctx(receiver.url_for("/hook")))["response"] == "direct"


def test_deliveries_to_one_receiver_reuse_one_connection(call_webhook, settings):
    """Keep-alive: one pool per pinned address, one TCP connection for back-to-back deliveries."""
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    connections = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            connections.append(self.client_address)
            super().setup()

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx = make_ctx(f"http://127.0.0.1:{server.server_address[1]}/hook")
        assert [call_webhook.execute(ctx)["response"] for _ in range(3)] == ["ok", "ok", "ok"]
        assert len(connections) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_preview_renders_the_request_without_sending(receiver, call_webhook):
    ctx = make_ctx(receiver.url_for("/hook"), log=False)
    preview = call_webhook.preview(ctx)
    assert receiver.log == []
    assert preview["method"] == "POST"
    assert json.loads(preview["body"])["event"] == "automation_triggered"
    assert set(preview["signature_headers"]) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    Webhook(ctx.rule.signing_secret).verify(preview["body"], preview["signature_headers"])
